"""Mail a user sends through oxsync (SendMail, SmartReply, SmartForward): who may send as whom,
and the queue entry, in the same transaction as the rest of the request.

What must hold (hosting FAQ, seed 000: "par défaut, seule l'adresse principale du compte peut
envoyer"): an account sends as its primary address, or as a send-as address an administrator
declared for it; login aliases (the `addresses` table) receive mail and log in but do not send unless
also declared here. A refused From queues nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, delete, insert, select

from oxsync.store import accounts, outbound
from oxsync.store import schema as s
from oxsync.store.collect import collect
from oxsync.store.errors import Conflict, InvalidData, NotFound, PermissionDenied
from oxsync.store.tx import Tx

SENDMAIL = "sendmail"


def normalise(address: str) -> str:
    address = address.strip().lower()
    local, at, domain = address.partition("@")
    if not at or not local or "." not in domain or len(address) > 320 or any(c.isspace() for c in address):
        raise InvalidData(f"not an e-mail address: {address!r}", field="address")
    return address


def send_as_addresses(tx: Tx, user_id: int) -> list[str]:
    sa = s.send_as_addresses
    return [r.address for r in tx.conn.execute(select(sa.c.address).where(
        and_(sa.c.tenant_id == tx.tenant_id, sa.c.user_id == user_id)).order_by(sa.c.address))]


def add_send_as(tx: Tx, user_id: int, address: str) -> None:
    user = accounts.get_user(tx, user_id)
    address = normalise(address)
    if address == user.email.lower() or address in send_as_addresses(tx, user_id):
        raise Conflict(f"{address} may already send for {user.login}")
    tx.conn.execute(insert(s.send_as_addresses).values(tenant_id=tx.tenant_id, user_id=user_id, address=address))
    tx.stamp  # noqa: B018 - an account change: one revision, like other account edits


def remove_send_as(tx: Tx, user_id: int, address: str) -> None:
    sa = s.send_as_addresses
    gone = tx.conn.execute(delete(sa).where(and_(sa.c.tenant_id == tx.tenant_id, sa.c.user_id == user_id,
                                                 sa.c.address == address.strip().lower()))).rowcount
    if not gone:
        raise NotFound(f"{address} is not a send-as address of user {user_id}")


def allowed_senders(tx: Tx, user_id: int) -> list[str]:
    """The From addresses this account may use: its primary address first, then its send-as addresses."""
    return [accounts.get_user(tx, user_id).email.lower(), *send_as_addresses(tx, user_id)]


def queue_user_mail(tx: Tx, user_id: int, *, key: str, from_address: str, recipients: Iterable[str],
                    message: bytes, subject: str = "", names: dict[str, str] | None = None) -> bool:
    """Check the From and queue the message; False when this key was already queued (never sent twice).
    A newly queued message's recipients are collected when the account collects addresses."""
    sender = from_address.strip().lower()
    if sender not in allowed_senders(tx, user_id):
        raise PermissionDenied(f"user {user_id} may not send as {from_address}")
    wanted = sorted({r.strip() for r in recipients if "@" in r})
    if not wanted:
        raise InvalidData("the message has no recipient", field="recipients")
    if len(wanted) > tx.settings.outbound.max_recipients:
        raise InvalidData("too many recipients", field="recipients")
    fresh = outbound.enqueue(tx, kind=SENDMAIL, key=key, sender=sender, recipients=wanted, subject=subject,
                             message=message, user_id=user_id)
    if fresh:
        collect(tx, user_id, [((names or {}).get(r.lower(), ""), r) for r in wanted])
    return fresh
