"""What every account does for itself (the OXtender plug-ins of the manual, chapter 6): change its
password (the current one first), edit its own global address book entry, set its out-of-office.

The out-of-office is the same record ActiveSync's Settings Oof reads and writes (user setting
`eas_oof`: state 0 off / 1 on / 2 scheduled, start/end, per-audience messages), so a phone shows what
the console set and the other way round.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select

from oxsync.model import Contact
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.store import accounts, reminders
from oxsync.store import schema as s
from oxsync.store.admin import Actor, audit
from oxsync.store.api import Store
from oxsync.store.errors import AuthenticationFailed, InvalidData
from oxsync.store.session import UserSession

OOF_KEY = "eas_oof"
OOF_STATES = ("0", "1", "2")
OOF_AUDIENCES = ("AppliesToInternal", "AppliesToExternalKnown", "AppliesToExternalUnknown")
"""Keys of the stored messages: the ActiveSync element names, as Settings Oof stores them."""
MIN_PASSWORD_LENGTH = 8
GAB_FIELDS = ("display_name", "first_name", "last_name", "title", "position", "department", "company",
              "phone_business", "mobile1", "room_number")
"""Fields of one's own address book entry the self-service page edits (OX contact field names)."""


def change_password(store: Store, actor: Actor, tenant_id: int, user_id: int, current: str, new: str,
                    repeat: str) -> None:
    if new != repeat:
        raise InvalidData("the two new passwords differ", field="new")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidData(f"the new password needs at least {MIN_PASSWORD_LENGTH} characters", field="new")
    with store.transaction(tenant_id, write=True) as tx:
        u = s.users
        stored = tx.conn.execute(select(u.c.password_hash).where(and_(u.c.tenant_id == tenant_id, u.c.id == user_id))).scalar_one_or_none()
        if not accounts.verify_password(stored, current, store.settings.auth):
            raise AuthenticationFailed("the current password is wrong")
        user = accounts.update_user(tx, user_id, password=new)
        audit(tx.conn, actor, tenant_id, "self.password", user.email)


def gab_entry(store: Store, tenant_id: int, user_id: int) -> dict[str, str]:
    with store.session(tenant_id, user_id) as session:
        contact = _own_entry(session)
        return {f: str(getattr(contact, f, "") or "") for f in GAB_FIELDS}


def _own_entry(session: UserSession) -> Contact:
    me = session.me()
    if me.contact_id is None:
        raise InvalidData("this account has no address book entry", field="contact")
    contact = session.get_object(GLOBAL_ADDRESS_BOOK, me.contact_id)
    assert isinstance(contact, Contact)
    return contact


def update_gab_entry(store: Store, actor: Actor, tenant_id: int, user_id: int, values: dict[str, str]) -> None:
    """Through the user's own session: the global address book's write-own right applies."""
    with store.session(tenant_id, user_id, write=True) as session:
        contact = _own_entry(session)
        for name in GAB_FIELDS:
            if name in values:
                setattr(contact, name, values[name].strip())
        session.update_object(GLOBAL_ADDRESS_BOOK, contact)
        audit(session.tx.conn, actor, tenant_id, "self.gab", session.me().email)


def get_oof(store: Store, tenant_id: int, user_id: int) -> dict[str, Any]:
    with store.session(tenant_id, user_id) as session:
        oof = session.get_settings().get(OOF_KEY) or {}
    messages = oof.get("messages", {}) if isinstance(oof.get("messages"), dict) else {}
    first = next((m for m in messages.values() if isinstance(m, dict)), {})
    return {"state": str(oof.get("state", "0")), "start": oof.get("start", ""), "end": oof.get("end", ""),
            "message": first.get("reply", ""), "messages": messages}


def set_oof(store: Store, actor: Actor, tenant_id: int, user_id: int, state: str, message: str,
            start: str = "", end: str = "") -> None:
    """One message for every audience (internal, known and unknown external), as simple clients offer."""
    if state not in OOF_STATES:
        raise InvalidData("out-of-office state is 0 (off), 1 (on) or 2 (scheduled)", field="state")
    if state == "2" and not (start and end):
        raise InvalidData("a scheduled out-of-office needs a start and an end", field="start")
    with store.session(tenant_id, user_id, write=True) as session:
        stored = session.get_settings()
        entry = {"enabled": "1" if state != "0" else "0", "reply": message[:65536], "body_type": "Text"}
        oof: dict[str, Any] = {"state": state, "messages": {a: dict(entry) for a in OOF_AUDIENCES}}
        if state == "2":
            oof.update(start=start, end=end)
        session.put_settings({**stored, OOF_KEY: oof})
        audit(session.tx.conn, actor, tenant_id, "self.oof", session.me().email, f"state={state}")


def record(session: UserSession, actor: Actor, tenant_id: int, action: str, detail: str = "") -> None:
    """One audit row for a self-service change made in `session` (by callers outside the store, e.g. the
    console's mail rules page, whose edit code lives in oxsync.mail)."""
    audit(session.tx.conn, actor, tenant_id, action, session.me().email, detail)


def mail_options(store: Store, tenant_id: int, user_id: int) -> dict[str, Any]:
    """Task reminder mails and the daily digest hour (`oxsync user mail-options`'s store record)."""
    with store.transaction(tenant_id) as tx:
        return reminders.options(tx, user_id)


def set_mail_options(store: Store, actor: Actor, tenant_id: int, user_id: int, *, reminder_mails: bool,
                     digest_hour: int | None) -> dict[str, Any]:
    """One's own reminder mails and digest hour (0-23 UTC, None = no digest); the collection switch stays
    the administrator's (hosting FAQ)."""
    if digest_hour is not None and not 0 <= digest_hour <= 23:
        raise InvalidData("the digest hour is 0-23 (UTC)", field="digest_hour")
    with store.transaction(tenant_id, write=True) as tx:
        user = accounts.get_user(tx, user_id)
        merged = reminders.set_options(tx, user_id, reminder_mails=reminder_mails, digest_hour=digest_hour)
        audit(tx.conn, actor, tenant_id, "self.mail_options", user.email,
              f"reminder_mails={reminder_mails}, digest_hour={digest_hour}")
    return merged
