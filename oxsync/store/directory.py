"""The tenant's directory as one user sees it: users, groups, resources, who an address belongs to,
and which principals were deleted (for clients that sync the address book)."""

from __future__ import annotations

from sqlalchemy import and_, select

from oxsync.model import Group, Resource, User
from oxsync.store import accounts, principals
from oxsync.store import schema as s
from oxsync.store.tx import Tx


class Directory:
    """Directory reads for `user_id` inside `tx` (no folder rights apply: the directory is tenant-wide)."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id

    def me(self) -> User:
        return accounts.get_user(self.tx, self.user_id)

    def users(self) -> list[User]:
        return accounts.list_users(self.tx)

    def user(self, user_id: int) -> User:
        return accounts.get_user(self.tx, user_id)

    def groups(self) -> list[Group]:
        return accounts.list_groups(self.tx)

    def resources(self) -> list[Resource]:
        return accounts.list_resources(self.tx)

    def find_principal(self, address: str) -> tuple[str, int] | None:
        """("user", id) or ("resource", id) for a login or any address of this tenant."""
        return principals.find_principal(self.tx, address)

    def deleted_principals(self, since_ms: int) -> list[tuple[str, int, int | None, int]]:
        """(kind, id, contact_id, deleted_ms) of users, groups and resources deleted after `since_ms`."""
        d = s.deleted_principals
        rows = self.tx.conn.execute(select(d).where(and_(d.c.tenant_id == self.tx.tenant_id, d.c.last_ms > since_ms))
                                    .order_by(d.c.last_ms))
        return [(r.kind, r.id, r.contact_id, r.last_ms) for r in rows]
