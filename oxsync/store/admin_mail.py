"""Per-account mail settings for admins (console and API): send-as addresses and the address collection
switch, over the same store calls as `oxsync user alias` and `oxsync user mail-options`.

What must hold: one transaction per change, scoped by `admin_tx` (another tenant's account is NotFound),
and one audit row per admin change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oxsync.store import accounts, reminders, sending
from oxsync.store.admin import Actor, admin_tx, audit
from oxsync.store.api import Store
from oxsync.store.errors import InvalidData


def account_mail(store: Store, actor: Actor, tenant_id: int, user_id: int) -> dict[str, Any]:
    """{"send_as": [...], "collect_addresses": bool} for one account of the tenant."""
    with admin_tx(store, actor, tenant_id) as tx:
        accounts.get_user(tx, user_id)
        return {"send_as": sending.send_as_addresses(tx, user_id),
                "collect_addresses": bool(reminders.options(tx, user_id)["collect_addresses"])}


def set_account_mail(store: Store, actor: Actor, tenant_id: int, user_id: int, *, add_send_as: Iterable[str] = (),
                     remove_send_as: Iterable[str] = (), collect_addresses: bool | None = None) -> dict[str, Any]:
    """Add/remove send-as addresses and flip the collection switch in one transaction, audited."""
    add, remove = [sending.normalise(a) for a in add_send_as], [a.strip().lower() for a in remove_send_as]
    if collect_addresses is not None and not isinstance(collect_addresses, bool):
        raise InvalidData("collect_addresses must be true or false", field="collect_addresses")
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
        return {"send_as": sending.send_as_addresses(tx, user_id),
                "collect_addresses": bool(reminders.options(tx, user_id)["collect_addresses"])}
