"""The outbound mail queue: every mail the server sends goes through here (docs/outbound-mail.md).

What must hold:
- `enqueue` runs inside the transaction of the change that causes the mail (a SendMail, a meeting
  save, a due reminder), so the mail exists if and only if the change committed;
- the idempotency key is unique: enqueueing the same key twice is a no-op that reports "already there";
- a row is claimed by exactly one worker at a time (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite
  serialises writers with BEGIN IMMEDIATE) under a lease; a claim whose lease ran out (its node died
  mid-send) is claimed again: delivery is at-least-once, and the resend is byte-identical (same
  Message-ID), so the only possible duplicate is the one SMTP transaction a dead node had in flight;
- failures are retried with exponential backoff up to `max_attempts`; permanent refusals (5xx) stop
  at once; every row stays visible (`oxsync mail queue`) until pruned after `keep_sent_days`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from oxsync.config import OutboundSettings
from oxsync.store import schema as s
from oxsync.store.engine import WRITE
from oxsync.store.errors import NotFound
from oxsync.store.tx import Tx, now_ms

log = logging.getLogger("oxsync.store.outbound")

QUEUED, SENDING, SENT, FAILED, DROPPED = "queued", "sending", "sent", "failed", "dropped"
STATES = (QUEUED, SENDING, SENT, FAILED, DROPPED)
MAX_KEY = 255


@dataclass
class OutboundMail:
    id: int
    tenant_id: int
    user_id: int | None
    kind: str
    key: str
    sender: str
    recipients: list[str]
    subject: str
    message: bytes | None
    payload: dict[str, Any] | None
    state: str
    attempts: int
    next_try_ms: int
    last_error: str
    created_ms: int
    sent_ms: int | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "key": self.key, "sender": self.sender,
                "recipients": self.recipients, "subject": self.subject, "state": self.state,
                "attempts": self.attempts, "next_try_ms": self.next_try_ms, "last_error": self.last_error,
                "created_ms": self.created_ms, "sent_ms": self.sent_ms, "user_id": self.user_id}


def _row(r: Any) -> OutboundMail:
    return OutboundMail(int(r.id), int(r.tenant_id), r.user_id, r.kind, r.idem_key, r.sender,
                        json.loads(r.recipients), r.subject, r.message,
                        json.loads(r.payload) if r.payload else None, r.state, int(r.attempts),
                        int(r.next_try_ms), r.last_error, int(r.created_ms), r.sent_ms)


def _insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on the unique key; True when the row was new."""
    table = s.outbound_mail
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=["idem_key"])
    return conn.execute(stmt.returning(table.c.id)).first() is not None  # rowcount is not reliable here


def enqueue(tx: Tx, *, kind: str, key: str, sender: str, recipients: Iterable[str], subject: str = "",
            message: bytes | None = None, payload: dict[str, Any] | None = None,
            user_id: int | None = None) -> bool:
    """Queue one mail in the caller's transaction; False when `key` was already queued (nothing added)."""
    if len(key) > MAX_KEY:
        raise ValueError("idempotency key too long")
    if message is None and payload is None:
        raise ValueError("a queued mail needs a message or a payload to render it from")
    if not tx.writable:
        raise RuntimeError("mail is queued in a write transaction (it commits with the change that caused it)")
    now = now_ms()
    fresh = _insert_ignoring_duplicates(tx.conn, {
        "tenant_id": tx.tenant_id, "user_id": user_id, "kind": kind, "idem_key": key, "sender": sender,
        "recipients": json.dumps(sorted(set(recipients))), "subject": subject[:255], "message": message,
        "payload": json.dumps(payload) if payload is not None else None, "state": QUEUED, "attempts": 0,
        "next_try_ms": now, "last_error": "", "created_ms": now, "updated_ms": now,
    })
    if fresh:
        tx.queued_mail = True
    return fresh


def backoff_ms(settings: OutboundSettings, attempts: int) -> int:
    """Delay before attempt `attempts + 1`: base * 2^(attempts-1), capped."""
    delay = settings.retry_base_seconds * (2 ** max(0, attempts - 1))
    return int(min(delay, settings.retry_max_seconds) * 1000)


class OutboundQueue:
    """Queue operations that are their own transactions (workers and the CLI)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @property
    def settings(self) -> OutboundSettings:
        return self.store.settings.outbound

    def _write(self):
        return self.store.engine.connect().execution_options(**WRITE)

    def claim(self, node: str, now: int | None = None, limit: int = 1,
              settings: OutboundSettings | None = None) -> list[OutboundMail]:
        """Lease up to `limit` due rows to `node` (attempts counted); other workers skip them."""
        now = now_ms() if now is None else now
        o = s.outbound_mail
        due = or_(and_(o.c.state == QUEUED, o.c.next_try_ms <= now),
                  and_(o.c.state == SENDING, o.c.lease_until_ms < now))
        query = select(o.c.id).where(due).order_by(o.c.next_try_ms, o.c.id).limit(limit)
        with self._write() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [r.id for r in conn.execute(query)]
            if not ids:
                return []
            lease = now + int((settings or self.settings).lease_seconds * 1000)
            conn.execute(update(o).where(o.c.id.in_(ids)).values(
                state=SENDING, lease_owner=node[:64], lease_until_ms=lease, attempts=o.c.attempts + 1,
                updated_ms=now))
            rows = conn.execute(select(o).where(o.c.id.in_(ids)).order_by(o.c.next_try_ms, o.c.id)).all()
        return [_row(r) for r in rows]

    def mark_sent(self, mail_id: int, node: str) -> bool:
        """Record the relay's acceptance; False if the lease was lost meanwhile (logged)."""
        o = s.outbound_mail
        now = now_ms()
        with self._write() as conn, conn.begin():
            done = conn.execute(update(o).where(and_(o.c.id == mail_id, o.c.state == SENDING,
                                                     o.c.lease_owner == node[:64])).values(
                state=SENT, sent_ms=now, updated_ms=now, last_error="", lease_owner=None, lease_until_ms=None
            )).rowcount
        if not done:
            log.warning("sent mail %s after its lease was lost", mail_id, extra={"event": "outbound.lease_lost"})
        return bool(done)

    def narrow(self, mail_id: int, node: str, recipients: list[str]) -> None:
        """Some recipients got the mail (delivered locally): only the others remain to be sent to."""
        o = s.outbound_mail
        with self._write() as conn, conn.begin():
            conn.execute(update(o).where(and_(o.c.id == mail_id, o.c.state == SENDING, o.c.lease_owner == node[:64]))
                         .values(recipients=json.dumps(sorted(recipients)), updated_ms=now_ms()))

    def mark_failed(self, mail_id: int, node: str, error: str, *, permanent: bool, now: int | None = None,
                    settings: OutboundSettings | None = None) -> str:
        """A failed attempt: back to the queue after the backoff, or `failed` for good. Returns the new state."""
        settings = settings or self.settings
        o = s.outbound_mail
        now = now_ms() if now is None else now
        with self._write() as conn, conn.begin():
            row = conn.execute(select(o.c.attempts).where(and_(
                o.c.id == mail_id, o.c.state == SENDING, o.c.lease_owner == node[:64]))).one_or_none()
            if row is None:
                return ""
            final = permanent or row.attempts >= settings.max_attempts
            state = FAILED if final else QUEUED
            conn.execute(update(o).where(o.c.id == mail_id).values(
                state=state, last_error=error[:2000], updated_ms=now, lease_owner=None, lease_until_ms=None,
                next_try_ms=now if final else now + backoff_ms(settings, row.attempts)))
        return state

    def next_due_ms(self) -> int | None:
        """When the earliest queued row becomes due (None: nothing queued)."""
        o = s.outbound_mail
        with self.store.engine.connect() as conn:
            found = conn.execute(select(o.c.next_try_ms).where(o.c.state == QUEUED)
                                 .order_by(o.c.next_try_ms).limit(1)).scalar_one_or_none()
        return int(found) if found is not None else None

    # ------------------------------------------------------------ administration

    def list(self, tenant_id: int | None = None, states: Iterable[str] = (), limit: int = 100) -> list[OutboundMail]:
        o = s.outbound_mail
        query = select(o).order_by(o.c.id.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(o.c.tenant_id == tenant_id)
        wanted = list(states)
        if wanted:
            query = query.where(o.c.state.in_(wanted))
        with self.store.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def get(self, mail_id: int, tenant_id: int | None = None) -> OutboundMail:
        o = s.outbound_mail
        query = select(o).where(o.c.id == mail_id)
        if tenant_id is not None:
            query = query.where(o.c.tenant_id == tenant_id)
        with self.store.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFound(f"no queued mail {mail_id}")
        return _row(row)

    def retry(self, mail_id: int, tenant_id: int | None = None) -> None:
        """Try a failed or waiting mail again now (a sent one is never resent)."""
        self.get(mail_id, tenant_id)
        o = s.outbound_mail
        with self._write() as conn, conn.begin():
            done = conn.execute(update(o).where(and_(o.c.id == mail_id, o.c.state.in_((QUEUED, FAILED, DROPPED))))
                                .values(state=QUEUED, next_try_ms=now_ms(), updated_ms=now_ms())).rowcount
        if not done:
            raise NotFound(f"mail {mail_id} is being sent or was sent; it is not sent again")
        self._wake()

    def drop(self, mail_id: int, tenant_id: int | None = None) -> None:
        """Give up on a mail that was not sent yet (kept, as `dropped`, for the record)."""
        self.get(mail_id, tenant_id)
        o = s.outbound_mail
        with self._write() as conn, conn.begin():
            done = conn.execute(update(o).where(and_(o.c.id == mail_id, o.c.state.in_((QUEUED, FAILED))))
                                .values(state=DROPPED, updated_ms=now_ms())).rowcount
        if not done:
            raise NotFound(f"mail {mail_id} is being sent or was sent; it cannot be dropped")

    def prune(self, older_than_days: int | None = None) -> int:
        """Forget sent and dropped mails older than `keep_sent_days` (their keys may then be reused)."""
        days = self.settings.keep_sent_days if older_than_days is None else older_than_days
        o = s.outbound_mail
        with self._write() as conn, conn.begin():
            return int(conn.execute(delete(o).where(and_(o.c.state.in_((SENT, DROPPED)),
                                                         o.c.updated_ms < now_ms() - days * 86_400_000))).rowcount)

    def _wake(self) -> None:
        self.store.mail_queued()
