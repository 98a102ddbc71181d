"""Per-account mail settings for admins (console and API): send-as addresses and the address collection
switch, over the same store calls as `oxsync user alias` and `oxsync user mail-options`.

What must hold: one transaction per change, scoped by `admin_tx` (another tenant's account is NotFound),
and one audit row per admin change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, func, select

from oxsync.store import accounts, dataclass_json, reminders, sending
from oxsync.store import schema as s
from oxsync.store.admin import Actor, admin_tx, audit
from oxsync.store.api import Store
from oxsync.store.errors import InvalidData
from oxsync.store.tx import Tx


def _state(tx: Tx, user_id: int) -> dict[str, Any]:
    return {"send_as": sending.send_as_addresses(tx, user_id), **reminders.options(tx, user_id)}


def account_mail(store: Store, actor: Actor, tenant_id: int, user_id: int) -> dict[str, Any]:
    """{"send_as": [...], "collect_addresses", "reminder_mails", "digest_hour"} for one account."""
    with admin_tx(store, actor, tenant_id) as tx:
        accounts.get_user(tx, user_id)
        return _state(tx, user_id)


def set_account_mail(store: Store, actor: Actor, tenant_id: int, user_id: int, *, add_send_as: Iterable[str] = (),
                     remove_send_as: Iterable[str] = (), collect_addresses: bool | None = None,
                     options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add/remove send-as addresses, flip the collection switch and set the task mail `options`
    (reminder_mails, digest_hour: as `oxsync user mail-options`) in one transaction, audited."""
    add, remove = [sending.normalise(a) for a in add_send_as], [a.strip().lower() for a in remove_send_as]
    if collect_addresses is not None and not isinstance(collect_addresses, bool):
        raise InvalidData("collect_addresses must be true or false", field="collect_addresses")
    options = dict(options or {})
    if set(options) - {"reminder_mails", "digest_hour"} or not isinstance(options.get("reminder_mails", True), bool):
        raise InvalidData("options are reminder_mails (true/false) and digest_hour", field="options")
    hour = options.get("digest_hour")
    if hour is not None and (isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23):
        raise InvalidData("digest_hour is 0-23 (UTC) or null", field="digest_hour")
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        user = accounts.get_user(tx, user_id)
        for address in remove:
            sending.remove_send_as(tx, user_id, address)
        for address in add:
            sending.add_send_as(tx, user_id, address)
        if add or remove:
            audit(tx.conn, actor, tenant_id, "account.send_as", user.email,
                  f"add={','.join(add)}, remove={','.join(remove)}")
        before = bool(reminders.options(tx, user_id)["collect_addresses"])
        if collect_addresses is not None and collect_addresses != before:
            reminders.set_options(tx, user_id, collect_addresses=collect_addresses)
            audit(tx.conn, actor, tenant_id, "account.collect_addresses", user.email, f"on={collect_addresses}")
        if options:
            reminders.set_options(tx, user_id, **options)
            audit(tx.conn, actor, tenant_id, "account.mail_options", user.email,
                  ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
        return _state(tx, user_id)


def mail_summary(tx: Tx, user_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per account of a page: how many send-as addresses, and whether it collects contacts (the FAQ's
    icons in the accounts table). Two queries for the whole page."""
    if not user_ids:
        return {}
    sa, u = s.send_as_addresses, s.users
    counts: dict[int, int] = dict(tx.conn.execute(select(sa.c.user_id, func.count()).where(
        and_(sa.c.tenant_id == tx.tenant_id, sa.c.user_id.in_(user_ids))).group_by(sa.c.user_id)).all())
    out: dict[int, dict[str, Any]] = {}
    for row in tx.conn.execute(select(u.c.id, u.c.settings).where(and_(u.c.tenant_id == tx.tenant_id,
                                                                         u.c.id.in_(user_ids)))):
        options = (dataclass_json.loads(row.settings) or {}).get(reminders.OPTIONS_KEY) or {}
        out[row.id] = {"send_as": counts.get(row.id, 0),
                       "collect_addresses": bool(options.get("collect_addresses", False))}
    return out
