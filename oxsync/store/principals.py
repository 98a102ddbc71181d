"""Who an ATTENDEE or ORGANIZER address names in the tenant: a user (by login, then by address) or a resource
(by name, then by address), one address or all of a calendar write's at once, in one statement either way;
with the objects holding the write's UID in that same statement (a CalDAV PUT's conflict check)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    CompoundSelect,
    String,
    and_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)

from oxsync.store import schema as s
from oxsync.store.tx import Tx


def _principal_query() -> CompoundSelect:
    u, r, a = s.users, s.resources, s.addresses
    tenant: BindParameter[int] = bindparam("tenant")
    key: BindParameter[str] = bindparam("key")
    return union_all(
        select(u.c.id.label("id"), literal(0).label("rank")).where(and_(u.c.tenant_id == tenant, u.c.login == key)),
        select(a.c.user_id.label("id"), literal(1).label("rank")).where(
            and_(a.c.tenant_id == tenant, a.c.address == key, a.c.user_id.is_not(None))),
        select(r.c.id.label("id"), literal(2).label("rank")).where(and_(r.c.tenant_id == tenant, r.c.name == key)),
        select(a.c.resource_id.label("id"), literal(3).label("rank")).where(
            and_(a.c.tenant_id == tenant, a.c.address == key, a.c.resource_id.is_not(None))),
    )


_PRINCIPAL = _principal_query()
"""Built once: every ATTENDEE and ORGANIZER of every calendar write is looked up with it."""


def find_principal(tx: Tx, login_or_address: str) -> tuple[str, int] | None:
    """("user", id) for a user's login, else a user's address, else ("resource", id) for a resource's
    name, else its address: what `find_user_id` then `find_resource_id` answer, in one statement."""
    key = login_or_address.strip().lower()
    found = sorted(tx.conn.execute(_PRINCIPAL, {"tenant": tx.tenant_id, "key": key}).all(), key=lambda row: row.rank)
    if not found:
        return None
    return ("user" if found[0].rank < 2 else "resource"), int(found[0].id)


def _principals_query(with_uid: bool = False) -> CompoundSelect:
    """The principals of the keys (key, id, rank 0-3); `with_uid`: with a fourth column, `series`, and the
    tenant's objects holding the UID bound as `uid` as rows of rank 4 (key NULL, id, series id)."""
    u, r, a, o = s.users, s.resources, s.addresses, s.objects
    tenant: BindParameter[int] = bindparam("tenant")
    keys: BindParameter[list[str]] = bindparam("keys", expanding=True)
    series = [cast(null(), BigInteger).label("series")] if with_uid else []
    selects = [
        select(u.c.login.label("key"), u.c.id.label("id"), literal(0).label("rank"), *series).where(
            and_(u.c.tenant_id == tenant, u.c.login.in_(keys))),
        select(a.c.address.label("key"), a.c.user_id.label("id"), literal(1).label("rank"), *series).where(
            and_(a.c.tenant_id == tenant, a.c.address.in_(keys), a.c.user_id.is_not(None))),
        select(r.c.name.label("key"), r.c.id.label("id"), literal(2).label("rank"), *series).where(
            and_(r.c.tenant_id == tenant, r.c.name.in_(keys))),
        select(a.c.address.label("key"), a.c.resource_id.label("id"), literal(3).label("rank"), *series).where(
            and_(a.c.tenant_id == tenant, a.c.address.in_(keys), a.c.resource_id.is_not(None))),
    ]
    if with_uid:
        selects.append(select(cast(null(), String).label("key"), o.c.id.label("id"), literal(UID_RANK).label("rank"),
                              o.c.series_id.label("series")).where(
            and_(o.c.tenant_id == tenant, o.c.uid == bindparam("uid"))))
    return union_all(*selects)


UID_RANK = 4
_PRINCIPALS = _principals_query()
"""Built once: the ATTENDEE and ORGANIZER addresses of a calendar write, all in one statement."""
_PRINCIPALS_AND_UID = _principals_query(with_uid=True)
"""Built once: those addresses and the objects holding the write's UID (its conflict check's read), in one."""


def find_principals(tx: Tx, logins_or_addresses: Iterable[str]) -> dict[str, tuple[str, int] | None]:
    """`find_principal` of several logins or addresses in one statement: lowercased key -> its answer."""
    keys = sorted({k.strip().lower() for k in logins_or_addresses})
    if not keys:
        return {}
    return _principal_answers(tx, keys, tx.conn.execute(_PRINCIPALS, {"tenant": tx.tenant_id, "keys": keys}))


def find_principals_and_uid(tx: Tx, logins_or_addresses: Iterable[str], uid: str
                            ) -> tuple[dict[str, tuple[str, int] | None], list[tuple[int, int | None]]]:
    """`find_principals`, and the (id, series id) of the tenant's objects holding `uid` as
    `Viewer.uid_rows` reads them, in one statement."""
    keys = sorted({k.strip().lower() for k in logins_or_addresses})
    rows = tx.conn.execute(_PRINCIPALS_AND_UID, {"tenant": tx.tenant_id, "keys": keys, "uid": uid}).all()
    found = [(int(r.id), r.series) for r in rows if r.rank == UID_RANK]
    return _principal_answers(tx, keys, [r for r in rows if r.rank != UID_RANK]), found


def _principal_answers(tx: Tx, keys: list[str], rows: Iterable[Any]) -> dict[str, tuple[str, int] | None]:
    out: dict[str, tuple[str, int] | None] = dict.fromkeys(keys)
    best: dict[str, Any] = {}
    for row in rows:
        if row.key not in best or row.rank < best[row.key].rank:
            best[row.key] = row
    for key, row in best.items():
        if key in out:
            out[key] = ("user" if row.rank < 2 else "resource"), int(row.id)
    tx.resolved_addresses.update({key: found[1] if found and found[0] == "user" else None for key, found in out.items()})
    return out
