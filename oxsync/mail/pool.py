"""IMAP connections: a bounded pool per account and per node, used only from a dedicated thread pool.

imapclient blocks, so every IMAP exchange runs on `ImapPool.threads` (never the reactor, never the
store's pool). What must hold:
- at most `max_connections_per_account` connections to one mailbox and `max_connections` per node
  (Dovecot's mail_max_userip_connections counts all of a node's connections to one user);
- a connection that failed (socket error, protocol abort) is closed, never handed out again;
- idle connections are closed after `idle_connection_seconds` (`close_idle`, called by the watcher);
- a parked Ping holds no connection: connections are borrowed for one unit of work and returned.
oxsync logs in as the Dovecot master user (`account*master`), so no user password is kept.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from oxsync.config import MailSettings

log = logging.getLogger("oxsync.mail.pool")
T = TypeVar("T")
BROKEN = (OSError, socket.timeout, imaplib.IMAP4.abort, ssl.SSLError)


class MailUnavailable(Exception):
    """The IMAP server cannot be reached or refused the gateway's login."""


@dataclass
class Pooled:
    client: IMAPClient
    last_used: float


class ImapPool:
    def __init__(self, settings: MailSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.threads = ThreadPool(minthreads=0, maxthreads=max(1, settings.thread_pool_size), name="oxsync-imap")
        self.idle: dict[str, list[Pooled]] = {}
        self.open_per_account: dict[str, int] = {}
        self.open_total = 0
        self.cond = threading.Condition()
        self.commands = 0
        """IMAP commands issued by this node (benchmarks and tests count round trips with it)."""
        self.logins = 0
        self._running = False

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if not self._running:
            self._running = True
            self.threads.start()

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.threads.stop()
        with self.cond:
            for conns in self.idle.values():
                for pooled in conns:
                    self._close(pooled.client)
            self.idle.clear()
            self.open_per_account.clear()
            self.open_total = 0

    # ------------------------------------------------------------ work

    def run(self, account: str, fn: Callable[[IMAPClient], T]) -> Deferred[T]:
        """`fn(client)` on the IMAP thread pool with a connection to `account`'s mailbox."""
        return deferToThreadPool(self.reactor, self.threads, self.call, account, fn)

    def call(self, account: str, fn: Callable[[IMAPClient], T]) -> T:
        """Synchronous form (already on an IMAP thread)."""
        pooled = self._acquire(account.lower())
        try:
            result = fn(pooled.client)
        except BROKEN as exc:
            self._discard(account.lower(), pooled)
            raise MailUnavailable(f"IMAP connection failed: {exc}") from exc
        except BaseException:
            self._discard(account.lower(), pooled)
            raise
        self._release(account.lower(), pooled)
        return result

    def _acquire(self, account: str) -> Pooled:
        cfg = self.settings
        deadline = time.monotonic() + cfg.timeout_seconds
        with self.cond:
            while True:
                idle = self.idle.get(account)
                if idle:
                    return idle.pop()
                if self.open_per_account.get(account, 0) < cfg.max_connections_per_account and \
                        self.open_total < cfg.max_connections:
                    self.open_per_account[account] = self.open_per_account.get(account, 0) + 1
                    self.open_total += 1
                    break
                if not self._evict_idle_other(account):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise MailUnavailable("no IMAP connection free within the timeout")
                    self.cond.wait(remaining)
        try:
            return Pooled(self._connect(account), time.monotonic())
        except BaseException:
            with self.cond:
                self._forget(account)
            raise

    def _evict_idle_other(self, account: str) -> bool:
        """Node limit reached: close one idle connection of another account to make room."""
        if self.open_total < self.settings.max_connections:
            return False
        for other, conns in self.idle.items():
            if other != account and conns:
                self._close(conns.pop(0).client)
                self._forget(other)
                return True
        return False

    def _forget(self, account: str) -> None:
        self.open_per_account[account] = max(0, self.open_per_account.get(account, 1) - 1)
        if not self.open_per_account[account]:
            del self.open_per_account[account]
        self.open_total = max(0, self.open_total - 1)
        self.cond.notify_all()

    def _release(self, account: str, pooled: Pooled) -> None:
        pooled.last_used = time.monotonic()
        with self.cond:
            self.idle.setdefault(account, []).append(pooled)
            self.cond.notify_all()

    def _discard(self, account: str, pooled: Pooled) -> None:
        self._close(pooled.client)
        with self.cond:
            self._forget(account)

    def close_idle(self) -> int:
        """Close connections unused for `idle_connection_seconds`; returns how many."""
        horizon = time.monotonic() - self.settings.idle_connection_seconds
        closed: list[IMAPClient] = []
        with self.cond:
            for account, conns in list(self.idle.items()):
                keep = [p for p in conns if p.last_used >= horizon]
                for p in conns:
                    if p.last_used < horizon:
                        closed.append(p.client)
                        self._forget(account)
                self.idle[account] = keep
                if not keep:
                    del self.idle[account]
        for client in closed:
            self._close(client)
        return len(closed)

    def open_connections(self) -> int:
        with self.cond:
            return self.open_total

    # ------------------------------------------------------------ connections

    def _connect(self, account: str) -> IMAPClient:
        cfg = self.settings
        context = ssl.create_default_context(cafile=cfg.imap_ca_file or None)
        try:
            client = IMAPClient(cfg.imap_host, port=cfg.imap_port, ssl=cfg.imap_tls == "implicit",
                                ssl_context=context if cfg.imap_tls == "implicit" else None,
                                timeout=cfg.timeout_seconds)
            if cfg.imap_tls == "starttls":
                client.starttls(context)
            self._count_commands(client)
            client.login(f"{account}{cfg.master_separator}{cfg.master_user}", cfg.master_password)
            client.enable("QRESYNC")
        except IMAPClientError as exc:
            raise MailUnavailable(f"IMAP login for {account} refused: {exc}") from exc
        except BROKEN as exc:
            raise MailUnavailable(f"IMAP server unreachable: {exc}") from exc
        self.logins += 1
        return client

    def _count_commands(self, client: IMAPClient) -> None:
        inner: Any = imaplib_of(client)  # its `_command` is not in imaplib's declared interface
        original = inner._command  # noqa: SLF001 - imaplib sends every command through this one method

        def counted(*args: Any, **kw: Any) -> Any:
            self.commands += 1
            return original(*args, **kw)

        inner._command = counted  # noqa: SLF001 - counted: the pool's command metric and the tests' budgets

    @staticmethod
    def _close(client: IMAPClient) -> None:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - closing a connection that may already be dead
            with contextlib.suppress(Exception):
                client.shutdown()


def imaplib_of(conn: IMAPClient) -> imaplib.IMAP4:
    """The imaplib connection under `conn`: imapclient has no public call for a UID FETCH over a
    sequence-set string with modifiers, nor for the untagged VANISHED and COPYUID responses, nor a
    hook to count the commands a connection sends."""
    return conn._imap  # noqa: SLF001 - imapclient exposes no public handle on its imaplib connection
