"""Renaming and removing whole accounts and tenants (the administrator's `oxsync tenant rename/delete`,
`oxsync user rename`).

What must hold: a rename keeps every object, folder, permission and sync state (they refer to ids, not
names) and moves the addresses that carried the old name; the old name stops logging in at once (the
account change is recorded like any other, so verified-login caches forget it). Deleting a tenant
removes every row that carries its id, children before parents, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, and_, delete, func, select, update

from oxsync.store import accounts
from oxsync.store import schema as s
from oxsync.store.errors import Conflict, InvalidData, NotFound
from oxsync.store.tx import Tx

if TYPE_CHECKING:
    from oxsync.store.api import Store

T = TypeVar("T")


def rename_user(tx: Tx, user_id: int, new_login: str) -> None:
    new_login = new_login.strip().lower()
    if not accounts.LOGIN_PATTERN.match(new_login):
        raise InvalidData(f"invalid login {new_login!r}", field="login")
    user = accounts.get_user(tx, user_id)
    if new_login == user.login:
        return
    if tx.conn.execute(select(s.users.c.id).where(s.users.c.login == new_login)).first() is not None:
        raise Conflict(f"login {new_login} already exists (logins are unique across tenants)")
    domain = tx.conn.execute(select(s.tenants.c.domain).where(s.tenants.c.id == tx.tenant_id)).scalar_one()
    old_address, new_address = f"{user.login}@{domain}", f"{new_login}@{domain}"
    values: dict[str, object] = {"login": new_login, "last_ms": tx.stamp.ms}
    if user.email == old_address:
        if tx.conn.execute(select(s.addresses.c.address).where(s.addresses.c.address == new_address)).first():
            raise Conflict(f"address {new_address} is already in use")
        values["email"] = new_address
        tx.conn.execute(update(s.addresses).where(s.addresses.c.address == old_address).values(address=new_address))
    tx.conn.execute(update(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id))
                    .values(**values))
    tx.changed_accounts.add(user_id)


def _tenant_id(conn: Connection, domain: str) -> int:
    found = conn.execute(select(s.tenants.c.id).where(s.tenants.c.domain == domain)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"tenant {domain} does not exist")
    return int(found)


def rename_tenant(conn: Connection, old: str, new: str) -> None:
    """Within the caller's write transaction: the domain, and every address and e-mail @old (accounts'
    login aliases and e-mail, send-as addresses, resources)."""
    new = new.strip().lower()
    if not new or "." not in new:
        raise InvalidData(f"invalid domain {new!r}", field="domain")
    tenant_id = _tenant_id(conn, old)
    if conn.execute(select(s.tenants.c.id).where(s.tenants.c.domain == new)).first() is not None:
        raise Conflict(f"tenant {new} already exists")
    conn.execute(update(s.tenants).where(s.tenants.c.id == tenant_id).values(domain=new))
    suffix, cut = f"@{old}", len(old)
    for table, column in ((s.addresses, s.addresses.c.address), (s.users, s.users.c.email),
                          (s.send_as_addresses, s.send_as_addresses.c.address), (s.resources, s.resources.c.email)):
        conn.execute(update(table).where(and_(table.c.tenant_id == tenant_id, column.like(f"%{suffix}")))
                     .values({column.key: func.substr(column, 1, func.length(column) - cut) + new}))
    # every account of the tenant changed its address: remembered logins must be checked again
    conn.execute(update(s.users).where(s.users.c.tenant_id == tenant_id).values(last_ms=s.users.c.last_ms + 1))


def delete_tenant(conn: Connection, domain: str) -> int:
    """Within the caller's write transaction: every row of the tenant; returns how many were removed."""
    tenant_id = _tenant_id(conn, domain)
    removed = 0
    for table in reversed(s.metadata.sorted_tables):
        if table.name != "tenants" and "tenant_id" in table.c:
            removed += conn.execute(delete(table).where(table.c.tenant_id == tenant_id)).rowcount or 0
    conn.execute(delete(s.tenants).where(s.tenants.c.id == tenant_id))
    return removed + 1


def in_write_transaction(store: Store, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(conn, *args)` in one write transaction of `store` (tenant-level operations)."""
    from oxsync.store.engine import WRITE
    from oxsync.store.notify import notify_all_accounts

    with store.engine.connect() as conn:
        conn = conn.execution_options(**WRITE)
        with conn.begin():
            result = fn(conn, *args)
            notify_all_accounts(store, conn)  # other nodes forget verified logins (old names stop at once)
            return result
