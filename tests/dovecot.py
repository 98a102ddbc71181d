"""A throwaway Dovecot (IMAP + LMTP + ManageSieve) in a temporary directory, authenticating against a store.

Dovecot refuses to run as root, so under root it runs as the `dovecot` system user (as tests/pgcluster.py
runs PostgreSQL as `postgres`), and the SQLite store it reads is handed to that user (root keeps access).
Free ports per instance; `stop()` waits for the master to exit before anything reuses its ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
from pathlib import Path

from oxsync.mail.dovecot import Listeners
from oxsync.mail.runner import (
    MASTER_USER,
    START_ATTEMPTS,
    DovecotProcess,
    DovecotUnavailable,
    distinct_ports,
    hand_to,
)
from tests.procstat import proc_stat

MASTER_PASSWORD = "master-secret"
__all__ = ["MASTER_PASSWORD", "MASTER_USER", "Dovecot", "DovecotUnavailable", "MailWorld", "hand_to", "make_message", "start_mail_backend"]


class Dovecot(DovecotProcess):
    """A DovecotProcess in a fresh temporary directory on free ports, removed by `stop`."""

    source_counter = 0

    def __init__(self, store_url: str) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="oxsync-dovecot-")), store_url,
                         Listeners(*distinct_ports(3)), MASTER_PASSWORD,
                         extra="auth_failure_delay = 0\nlogin_trusted_networks = 127.0.0.0/8\n")
        self.cleanup: list[Path] = [self.dir]

    def start(self, timeout: float = 15.0, attempts: int = START_ATTEMPTS) -> None:
        """On fresh ports again when one was taken after it was chosen (runner.START_ATTEMPTS)."""
        super().start(timeout, attempts)

    def stop(self) -> None:
        try:
            self._stop_master()
            super().stop()
        finally:
            for path in self.cleanup:
                shutil.rmtree(path, ignore_errors=True)

    def _stop_master(self) -> None:
        """Under root `proc` is `runuser`, which on SIGTERM passes it on and then sleeps 2 s before it
        SIGKILLs its child, whatever the child did (util-linux su-common): 2 s per Dovecot stopped, two per
        mail test module. SIGTERM goes to Dovecot's master itself (its pid file); `runuser` exits with it."""
        if not self.as_root or self.proc is None or self.proc.poll() is not None:
            return
        try:
            master = int((self.dir / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return  # not written yet: the parent's stop signals runuser
        if _parent_of(master) != self.proc.pid:
            return  # not our master (a stale file): never signal another process
        os.kill(master, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)

    # ------------------------------------------------------------ helpers for tests

    def deliver(self, recipient: str, raw: bytes | str, sender: str = "sender@example.net") -> None:
        """Deliver one message through LMTP (as a real MTA would)."""
        data = raw.encode() if isinstance(raw, str) else raw
        with smtplib.LMTP("127.0.0.1", self.listeners.lmtp, timeout=30) as lmtp:
            lmtp.sendmail(sender, [recipient], data)

    def imap(self, login: str, password: str):  # type: ignore[no-untyped-def]
        """A logged-in IMAPClient (the 'other client' changing the mailbox behind the phone's back)."""
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.listeners.imap, ssl=False, timeout=30)
        client.login(login, password)
        return client

    def login_refused(self, login: str, password: str) -> bool:
        """One LOGIN from a fresh loopback source address: Dovecot delays failures per client IP (growing
        up to 15 s), so each expected refusal comes from its own 127.x address and never slows the others."""
        Dovecot.source_counter += 1
        n = Dovecot.source_counter
        with socket.create_connection(("127.0.0.1", self.listeners.imap), timeout=30,
                                      source_address=(f"127.1.{n // 250 % 250}.{n % 250 + 2}", 0)) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            quoted = [f'"{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for v in (login, password)]
            sock.sendall(f"a1 LOGIN {quoted[0]} {quoted[1]}\r\n".encode())
            while True:
                line = reader.readline()
                if not line:
                    return True
                if line.startswith(b"a1 "):
                    return not line.startswith(b"a1 OK")


def _parent_of(pid: int) -> int | None:
    try:
        return proc_stat(pid).ppid
    except OSError:
        return None


def make_message(subject: str, body: str = "Hello", *, to: str = "alice@example.com",
                 sender: str = "Bob <bob@example.net>", date: str | None = None, html: str | None = None,
                 attachment: tuple[str, bytes] | None = None, extra: dict[str, str] | None = None) -> bytes:
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = date or formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="example.net")
    for key, value in (extra or {}).items():
        msg[key] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment[1], maintype="application", subtype="octet-stream", filename=attachment[0])
    return msg.as_bytes()


class MailWorld:
    """One fresh tenant (alice, bob) on a session-wide store + Dovecot pair of one backend."""

    counter = 0

    def __init__(self, store, dovecot: Dovecot) -> None:  # type: ignore[no-untyped-def]
        from oxsync.store import accounts

        MailWorld.counter += 1
        self.store, self.dovecot = store, dovecot
        self.domain = f"m{MailWorld.counter}.example"
        tenant = store.create_tenant(self.domain)
        self.tenant_id = tenant.id
        n = MailWorld.counter  # logins are unique across tenants
        with store.transaction(tenant.id, write=True) as tx:
            alice = accounts.create_user(tx, f"alice.m{n}", "alice-pw", first_name="Alice", last_name="Martin")
            bob = accounts.create_user(tx, f"bob.m{n}", "bob-pw", first_name="Bob", last_name="Durand")
        self.alice, self.bob = alice.id, bob.id
        self.alice_address = alice.email.lower()
        self.bob_address = bob.email.lower()

    def deliver(self, raw: bytes, to: str | None = None) -> None:
        self.dovecot.deliver(to or self.alice_address, raw)

    def imap(self, who: str = "alice"):  # type: ignore[no-untyped-def]
        return self.dovecot.imap(self.alice_address if who == "alice" else self.bob_address, f"{who}-pw")


def start_mail_backend(backend: str, pg_url: str | None):  # type: ignore[no-untyped-def]
    """(store, dovecot) for one backend; the SQLite file is handed to the Dovecot user under root (its
    directory must be reachable by that user, hence a fresh temporary directory, removed by `stop`)."""
    from tests.fixtures import make_store

    base = Path(tempfile.mkdtemp(prefix="oxsync-mailstore-"))
    url = pg_url if backend == "postgresql" else f"sqlite:///{base}/db/oxsync.db"
    store = make_store(url)  # type: ignore[arg-type]
    if backend == "sqlite" and os.geteuid() == 0:
        os.chmod(base, 0o755)
        hand_to(base / "db", "dovecot")
    dovecot = Dovecot(url)  # type: ignore[arg-type]
    dovecot.cleanup.append(base)
    try:
        dovecot.start()
    except Exception:
        store.dispose()
        raise
    return store, dovecot
