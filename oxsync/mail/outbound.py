"""Workers of the outbound mail queue: claim, render, submit over SMTP, record (store/outbound.py).

Never on the reactor thread: each attempt (claim, render, SMTP, record) runs on the worker's own
bounded thread pool (`[outbound] workers`; one on SQLite). The service wakes when this node queues
mail (a store mail listener hops to the reactor) and polls every `poll_seconds` for mail queued by
other nodes, retries that fell due and leases of dead nodes. Scheduling uses the given reactor as a
clock (LoopingCall), so tests can drive it with `twisted.internet.task.Clock`.

Rendering is deterministic per row (Date and Message-ID come from the row), so a resend after a lost
lease is the same message, which receivers can recognise by its Message-ID.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import uuid
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from oxsync.config import Settings
from oxsync.metrics import OUTBOUND_ATTEMPTS
from oxsync.store.api import Store
from oxsync.store.outbound import OutboundMail

log = logging.getLogger("oxsync.mail.outbound")

Renderer = Callable[[Store, OutboundMail], bytes]
RENDERERS: dict[str, Renderer] = {}
"""kind -> function building the MIME message of a queued row that carries a payload instead."""


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        return fn
    return register


class SubmissionError(Exception):
    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


def relay_of(settings: Settings) -> str:
    """Where mail goes: the SMTP relay, else (mail among the tenant's accounts only) the local LMTP server."""
    return settings.outbound.smtp_relay or settings.eas.smtp_smarthost or settings.outbound.lmtp_local


def lmtp_deliver(target: str, timeout: float, sender: str, recipient: str, message: bytes) -> None:
    """One LMTP transaction for one recipient (LMTP answers per recipient; one at a time keeps it exact)."""
    host, _, port = target.rpartition(":")
    try:
        with smtplib.LMTP(host, int(port), timeout=timeout) as lmtp:
            lmtp.sendmail(sender, [recipient], message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise SubmissionError(f"local delivery refused: {exc.recipients}", all(c >= 500 for c in codes)) from exc
    except smtplib.SMTPResponseException as exc:
        raise SubmissionError(f"local delivery answered {exc.smtp_code} {exc.smtp_error!r}", exc.smtp_code >= 500) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SubmissionError(f"local delivery failed: {exc}", False) from exc


def _deliver_locally(store: Store, settings: Settings, mail: OutboundMail, message: bytes, node: str) -> list[str]:
    """With `[outbound] lmtp_local`, deliver to the recipients that are accounts here over LMTP, one by one,
    recording each done one on the row (a retry never delivers it twice); returns the others."""
    target = settings.outbound.lmtp_local
    if not target:
        return mail.recipients
    remaining = list(mail.recipients)
    for recipient in mail.recipients:
        if store.resolve_login(recipient) is None:
            continue
        lmtp_deliver(target, settings.outbound.smtp_timeout_seconds, mail.sender, recipient, message)
        remaining.remove(recipient)
        store.outbound.narrow(mail.id, node, remaining)
    return remaining


def submit(relay: str, timeout: float, sender: str, recipients: list[str], message: bytes) -> dict[str, Any]:
    """One SMTP transaction; returns the recipients the relay refused (some accepted = sent).

    5xx answers are permanent failures; 4xx answers and network errors are worth retrying."""
    host, _, port = relay.rpartition(":") if ":" in relay else (relay, "", "25")
    try:
        with smtplib.SMTP(host or relay, int(port or 25), timeout=timeout) as smtp:
            return dict(smtp.sendmail(sender, recipients, message))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise SubmissionError(f"all recipients refused: {exc.recipients}", all(c >= 500 for c in codes)) from exc
    except smtplib.SMTPResponseException as exc:
        raise SubmissionError(f"relay answered {exc.smtp_code} {exc.smtp_error!r}", exc.smtp_code >= 500) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise SubmissionError(f"relay unreachable: {exc}", False) from exc


def render(store: Store, mail: OutboundMail) -> bytes:
    if mail.message is not None:
        return mail.message
    fn = RENDERERS.get(mail.kind)
    if fn is None:
        raise SubmissionError(f"no renderer for {mail.kind} mail", True)
    return fn(store, mail)


def process_one(store: Store, node: str, now: int | None = None, settings: Settings | None = None) -> OutboundMail | None:
    """Claim one due mail and try it once; returns it (None: nothing was due). Blocking: a worker thread."""
    settings = settings or store.settings
    claimed = store.outbound.claim(node, now=now, limit=1, settings=settings.outbound)
    if not claimed:
        return None
    mail = claimed[0]
    try:
        message = render(store, mail)
        remaining = _deliver_locally(store, settings, mail, message, node)
        refused: dict[str, Any] = {}
        if remaining:
            relay = settings.outbound.smtp_relay or settings.eas.smtp_smarthost
            if not relay:
                raise SubmissionError("no SMTP relay configured ([outbound] smtp_relay)", False)
            refused = submit(relay, settings.outbound.smtp_timeout_seconds, mail.sender, remaining, message)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the row, never lost
        permanent = exc.permanent if isinstance(exc, SubmissionError) else True
        state = store.outbound.mark_failed(mail.id, node, str(exc) or type(exc).__name__, permanent=permanent, now=now,
                                           settings=settings.outbound)
        log.warning("outbound mail %s not sent (%s): %s", mail.id, state, exc,
                    extra={"event": "outbound.failed", "kind": mail.kind, "mail_id": mail.id, "state": state})
        mail.state = state
        OUTBOUND_ATTEMPTS.labels(mail.kind, state or "lost").inc()
        return mail
    store.outbound.mark_sent(mail.id, node)
    OUTBOUND_ATTEMPTS.labels(mail.kind, "sent").inc()
    log.info("outbound mail sent", extra={"event": "outbound.sent", "kind": mail.kind, "mail_id": mail.id,
                                          "recipients": len(mail.recipients), "refused": len(refused)})
    mail.state = "sent"
    return mail


def node_name() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboundWorker(Service):
    """Works the queue from this node: woken on enqueue, polling as a fallback, bounded concurrency."""

    name = "outbound"

    def __init__(self, store: Store, reactor: Any, *, settings: Settings | None = None, node: str | None = None,
                 extra_tasks: list[tuple[float, Callable[[], Any]]] | None = None) -> None:
        self.store = store
        self.reactor = reactor
        self.node = node or node_name()
        self.settings = settings or store.settings
        outbound = self.settings.outbound
        sqlite = store.engine.dialect.name == "sqlite"
        self.concurrency = 1 if sqlite else max(1, outbound.workers)
        self.pool = ThreadPool(minthreads=0, maxthreads=self.concurrency + len(extra_tasks or []),
                               name="oxsync-outbound")
        self.in_flight = 0
        self.processed = 0
        self._wake_pending = False
        self._poll = LoopingCall(self.kick)
        self._poll.clock = reactor
        self._extra = [(interval, self._periodic(fn)) for interval, fn in (extra_tasks or [])]
        self._loops: list[LoopingCall] = []
        store.add_mail_listener(self._woken)

    def _woken(self) -> None:
        if self.running:
            self.reactor.callFromThread(self.kick)

    def startService(self) -> None:
        super().startService()
        self.pool.start()
        self._poll.start(self.settings.outbound.poll_seconds, now=True)
        for interval, fn in self._extra:
            if interval > 0:
                loop = LoopingCall(fn)
                loop.clock = self.reactor
                loop.start(interval, now=True)
                self._loops.append(loop)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        for loop in [self._poll, *self._loops]:
            if loop.running:
                loop.stop()
        self._loops = []
        self.pool.stop()
        return None

    def kick(self) -> None:
        """Start attempts until the concurrency bound; each finished attempt that found mail starts another.

        A wake that finds every slot busy is remembered: the attempts in flight may have looked at the queue
        before the mail that woke us committed, so the next one to finish starts another (else that mail
        would wait for the next poll)."""
        self._wake_pending = True
        while self.running and self.in_flight < self.concurrency:
            self._wake_pending = False
            self.in_flight += 1
            d = deferToThreadPool(self.reactor, self.pool, process_one, self.store, self.node, None, self.settings)
            d.addBoth(self._done)

    def _done(self, result: Any) -> None:
        self.in_flight -= 1
        if isinstance(result, OutboundMail):
            self.processed += 1
        elif result is not None and hasattr(result, "getErrorMessage"):
            log.error("outbound worker attempt failed: %s", result.getErrorMessage(),
                      extra={"event": "outbound.worker_error"})
        if isinstance(result, OutboundMail) or self._wake_pending:
            self.kick()

    def _periodic(self, fn: Callable[[], Any]) -> Callable[[], Deferred[Any]]:
        def run() -> Deferred[Any]:
            d = deferToThreadPool(self.reactor, self.pool, fn)
            d.addErrback(lambda f: log.error("outbound periodic task failed: %s", f.getErrorMessage(),
                                             extra={"event": "outbound.task_error"}))
            return d
        return run
