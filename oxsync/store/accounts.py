"""Tenants, accounts, groups, resources and authentication (administrative operations).

These run with system privileges: the admin CLI and server bootstrap call them, never a client.
Each account gets default folders and an entry in the global address book (folder 6), created by
the account itself so that it may edit its own personal data there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from types import EllipsisType
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)

from oxsync.config import AuthSettings
from oxsync.model import (
    Contact,
    DistributionListMember,
    Group,
    Protocol,
    Resource,
    ResourceKind,
    Tenant,
    User,
)
from oxsync.model.account import ACCOUNT_FLAGS, ALL_PROTOCOLS
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.store import dataclass_json, objects
from oxsync.store import folders as folder_ops
from oxsync.store import schema as s
from oxsync.store.account_rights import touch_public_folders
from oxsync.store.errors import Conflict, InvalidData, NotFound
from oxsync.store.membership import record_everywhere
from oxsync.store.tx import Tx, read_once


@cache
def _hasher_for(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def _hasher(auth: AuthSettings) -> PasswordHasher:
    return _hasher_for(auth.password_hash_time_cost, auth.password_hash_memory_kib, auth.password_hash_parallelism)


@cache
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    """Stands in for a missing account, at the same cost as real hashes (no timing oracle for logins)."""
    return _hasher_for(time_cost, memory_kib, parallelism).hash("not a password")
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def hash_password(password: str, auth: AuthSettings) -> str:
    """Argon2id with the configured cost (verification reads the cost from the hash itself)."""
    return _hasher(auth).hash(password)


def verify_password(stored_hash: str | None, password: str, auth: AuthSettings) -> bool:
    """Constant work whether or not the account exists (a dummy hash of the same cost stands in; it is
    made once, by the first check of a missing account: a real account's first login pays one hash,
    not two)."""
    checked = stored_hash or _dummy_hash(auth.password_hash_time_cost, auth.password_hash_memory_kib,
                                         auth.password_hash_parallelism)
    try:
        return _hasher(auth).verify(checked, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def encode_protocols(protocols: Iterable[Protocol]) -> str:
    return ",".join(sorted(p.value for p in protocols))


def decode_protocols(text: str) -> frozenset[Protocol]:
    return frozenset(Protocol(p) for p in text.split(",") if p)


# ---------------------------------------------------------------- tenants


def row_to_tenant(row) -> Tenant:
    return Tenant(row.id, row.domain, row.max_accounts, row.quota_bytes)


def find_tenant(conn, domain: str) -> Tenant | None:
    row = conn.execute(select(s.tenants).where(s.tenants.c.domain == domain.lower())).one_or_none()
    return row_to_tenant(row) if row else None


def list_tenants(conn) -> list[Tenant]:
    return [row_to_tenant(r) for r in conn.execute(select(s.tenants).order_by(s.tenants.c.id))]


# ---------------------------------------------------------------- users


def row_to_user(row, aliases: list[str]) -> User:
    return User(
        id=row.id, tenant_id=row.tenant_id, login=row.login, display_name=row.display_name, email=row.email,
        aliases=aliases, protocols=decode_protocols(row.protocols), active=row.active, quota_bytes=row.quota_bytes,
        contact_id=row.contact_id, first_name=row.first_name, last_name=row.last_name, last_modified=row.last_ms,
        tenant_admin=row.tenant_admin, platform_admin=row.platform_admin, public_folders=row.public_folders,
        sharing=row.sharing,
    )


def _aliases(tx: Tx, user_ids: list[int]) -> dict[int, list[str]]:
    a = s.addresses
    out: dict[int, list[str]] = {u: [] for u in user_ids}
    query = select(a).where(
        and_(a.c.tenant_id == tx.tenant_id, a.c.user_id.in_(user_ids), a.c.is_primary.is_(False))
    ).order_by(a.c.address)
    for r in tx.conn.execute(query):
        out[r.user_id].append(r.address)
    return out


def _user_with_aliases() -> Select[Any]:
    u, a = s.users, s.addresses
    joined = u.outerjoin(a, and_(a.c.tenant_id == u.c.tenant_id, a.c.user_id == u.c.id, a.c.is_primary.is_(False)))
    return select(u, a.c.address.label("alias")).select_from(joined).where(and_(
        u.c.tenant_id == bindparam("k_tenant", type_=Integer), u.c.id == bindparam("k_user", type_=Integer))
    ).order_by(a.c.address)


_USER_WITH_ALIASES = _user_with_aliases()
"""Built once: every request's own account is read with it (building it cost three times running it)."""


@read_once
def get_user(tx: Tx, user_id: int) -> User:
    """One statement: the user's row joined with its secondary addresses."""
    rows = tx.conn.execute(_USER_WITH_ALIASES, {"k_tenant": tx.tenant_id, "k_user": user_id}).all()
    if not rows:
        raise NotFound(f"user {user_id} does not exist")
    tx.account_rows[user_id] = bool(rows[0].public_folders), bool(rows[0].sharing)
    return row_to_user(rows[0], [r.alias for r in rows if r.alias is not None])


@read_once
def find_user_id(tx: Tx, login_or_address: str) -> int | None:
    """The user whose login is `login_or_address`, else whose address it is (one statement)."""
    key = login_or_address.strip().lower()
    if key in tx.resolved_addresses:  # this transaction resolved it already (a CalDAV write's addresses)
        return tx.resolved_addresses[key]
    u, a = s.users, s.addresses
    by_login = select(u.c.id.label("id"), literal(0).label("rank")).where(and_(u.c.tenant_id == tx.tenant_id, u.c.login == key))
    by_address = select(a.c.user_id.label("id"), literal(1).label("rank")).where(
        and_(a.c.tenant_id == tx.tenant_id, a.c.address == key, a.c.user_id.is_not(None)))
    found = sorted(tx.conn.execute(union_all(by_login, by_address)).all(), key=lambda r: r.rank)
    return int(found[0].id) if found else None


def list_users(tx: Tx) -> list[User]:
    rows = tx.conn.execute(select(s.users).where(s.users.c.tenant_id == tx.tenant_id).order_by(s.users.c.id)).all()
    aliases = _aliases(tx, [r.id for r in rows])
    return [row_to_user(r, aliases[r.id]) for r in rows]


SORTABLE_USER_COLUMNS = ("login", "display_name", "email", "active", "usage_bytes", "id")


def search_users(tx: Tx, text: str = "", *, sort: str = "login", descending: bool = False, offset: int = 0,
                 limit: int = 50) -> tuple[list[User], int]:
    """One page of accounts matching `text` (login, name or address, case-insensitive) and the total count."""
    u = s.users
    cond = u.c.tenant_id == tx.tenant_id
    needle = text.strip().lower()
    if needle:
        like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cond = and_(cond, (u.c.login.like(like, escape="\\") | func.lower(u.c.display_name).like(like, escape="\\")
                           | u.c.email.like(like, escape="\\")))
    column = u.c[sort if sort in SORTABLE_USER_COLUMNS else "login"]
    order = [column.desc() if descending else column.asc(), u.c.id]
    total = tx.conn.execute(select(func.count()).select_from(u).where(cond)).scalar_one()
    rows = tx.conn.execute(select(u).where(cond).order_by(*order).offset(max(0, offset)).limit(max(1, limit))).all()
    aliases = _aliases(tx, [r.id for r in rows])
    return [row_to_user(r, aliases[r.id]) for r in rows], int(total)


def usage_of_users(tx: Tx, user_ids: list[int]) -> dict[int, int]:
    u = s.users
    rows = tx.conn.execute(select(u.c.id, u.c.usage_bytes).where(and_(u.c.tenant_id == tx.tenant_id, u.c.id.in_(user_ids))))
    return {r.id: int(r.usage_bytes) for r in rows}


def _domain_stem(tx: Tx) -> str:
    domain = tx.conn.execute(select(s.tenants.c.domain).where(s.tenants.c.id == tx.tenant_id)).scalar_one()
    return str(domain).split(".")[0]


def _claim_address(tx: Tx, address: str, *, user_id: int | None = None, resource_id: int | None = None,
                   primary: bool = False) -> None:
    address = address.strip().lower()
    if "@" not in address:
        raise InvalidData(f"not an e-mail address: {address!r}", field="email")
    name, _, domain = address.partition("@")
    owner = tx.conn.execute(  # `name@domain` is also how that tenant's user `name` logs in
        select(s.users.c.tenant_id, s.users.c.id).join(s.tenants, s.tenants.c.id == s.users.c.tenant_id)
        .where(and_(s.tenants.c.domain == domain, s.users.c.login == name))).first()
    if owner is not None and (int(owner.tenant_id), int(owner.id)) != (tx.tenant_id, user_id):
        raise Conflict(f"address {address} is the login of another account")
    taken = tx.conn.execute(select(s.addresses.c.address).where(s.addresses.c.address == address)).first()
    if taken:
        raise Conflict(f"address {address} is already in use")
    tx.conn.execute(
        insert(s.addresses).values(
            address=address, tenant_id=tx.tenant_id, user_id=user_id, resource_id=resource_id, is_primary=primary
        )
    )


def _gab_contact(user: User) -> Contact:
    return Contact(
        display_name=user.display_name, first_name=user.first_name, last_name=user.last_name, email1=user.email,
        user_id=user.id, created_by=user.id,
    )


def create_user(
    tx: Tx, login: str, password: str, *, display_name: str = "", email: str | None = None,
    first_name: str = "", last_name: str = "", protocols: Iterable[Protocol] = ALL_PROTOCOLS,
    quota_bytes: int | None = None, aliases: Iterable[str] = (), flags: dict[str, bool] | None = None,
) -> User:
    login = login.strip().lower()
    unknown = set(flags or {}) - set(ACCOUNT_FLAGS)
    if unknown:
        raise InvalidData(f"unknown account flags {sorted(unknown)}", field="flags")
    if not LOGIN_PATTERN.match(login):
        raise InvalidData(f"invalid login {login!r}: use lower-case letters, digits, '.', '_' or '-'", field="login")
    if find_user_id(tx, login) is not None:
        raise Conflict(f"login {login} already exists")
    elsewhere = tx.conn.execute(select(s.tenants.c.domain).join(s.users, s.users.c.tenant_id == s.tenants.c.id)
                                .where(s.users.c.login == login)).scalar_one_or_none()
    if elsewhere is not None:
        raise Conflict(f"login {login} is already used in tenant {elsewhere}: logins are unique across tenants, "
                       f"since users type their bare login (choose another, e.g. {login}.{_domain_stem(tx)})")
    tenant = tx.conn.execute(select(s.tenants).where(s.tenants.c.id == tx.tenant_id)).one()
    email = (email or f"{login}@{tenant.domain}").lower()
    shadow = tx.conn.execute(select(s.addresses.c.user_id).where(s.addresses.c.address == f"{login}@{tenant.domain}")
                             ).first()
    if shadow is not None and email != f"{login}@{tenant.domain}":
        raise Conflict(f"{login}@{tenant.domain} is already an address of another account")
    count = tx.conn.execute(select(func.count()).select_from(s.users).where(s.users.c.tenant_id == tx.tenant_id)).scalar_one()
    if tenant.max_accounts is not None and count >= tenant.max_accounts:
        raise Conflict(f"tenant {tenant.domain} already has its maximum of {tenant.max_accounts} accounts")
    display_name = display_name or " ".join(p for p in (first_name, last_name) if p) or login
    user_id = tx.next_id("user")
    tx.conn.execute(
        insert(s.users).values(
            tenant_id=tx.tenant_id, id=user_id, login=login, password_hash=hash_password(password, tx.settings.auth),
            display_name=display_name, first_name=first_name, last_name=last_name, email=email,
            protocols=encode_protocols(protocols), active=True, quota_bytes=quota_bytes, usage_bytes=0,
            last_ms=tx.stamp.ms, settings="{}", **{k: bool(v) for k, v in (flags or {}).items()},
        )
    )
    _claim_address(tx, email, user_id=user_id, primary=True)
    for alias in aliases:
        _claim_address(tx, alias, user_id=user_id)
    folder_ops.create_default_folders(tx, user_id)
    user = get_user(tx, user_id)
    contact = _gab_contact(user)
    objects.insert_object(tx, contact, GLOBAL_ADDRESS_BOOK, user_id)
    tx.record_object_change(GLOBAL_ADDRESS_BOOK, contact.stored_id, gone=False, kind="create")
    tx.conn.execute(
        update(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id))
        .values(contact_id=contact.object_id)
    )
    user.contact_id = contact.object_id
    return user


def update_user(
    tx: Tx, user_id: int, *, display_name: str | None = None, first_name: str | None = None,
    last_name: str | None = None, password: str | None = None, protocols: Iterable[Protocol] | None = None,
    active: bool | None = None, quota_bytes: int | None | EllipsisType = ...,
    flags: dict[str, bool] | None = None,
) -> User:
    """`flags`: any of ACCOUNT_FLAGS (admin roles and the per-account rights) to set."""
    user = get_user(tx, user_id)
    values: dict[str, object] = {"last_ms": tx.stamp.ms}
    for name, value in (flags or {}).items():
        if name not in ACCOUNT_FLAGS:
            raise InvalidData(f"unknown account flag {name!r}", field="flags")
        values[name] = bool(value)
    if display_name is not None:
        values["display_name"] = display_name
    if first_name is not None:
        values["first_name"] = first_name
    if last_name is not None:
        values["last_name"] = last_name
    if password is not None:
        values["password_hash"] = hash_password(password, tx.settings.auth)
    if protocols is not None:
        values["protocols"] = encode_protocols(protocols)
    if active is not None:
        values["active"] = active
    if quota_bytes is not ...:
        values["quota_bytes"] = quota_bytes
    tx.conn.execute(update(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id)).values(**values))
    tx.changed_accounts.add(user_id)
    tx.account_rows.pop(user_id, None)  # read again below
    if any(k in values for k in ("display_name", "first_name", "last_name")):
        _sync_gab_entry(tx, get_user(tx, user_id))
    if "public_folders" in values and values["public_folders"] != user.public_folders:
        touch_public_folders(tx)  # every client's next hierarchy delta shows them appear or go
    return get_user(tx, user.id)


def _sync_gab_entry(tx: Tx, user: User) -> None:
    """Reflect an account's name and address in its global address book entry at once."""
    if user.contact_id is None:
        return
    (contact,) = objects.load_objects(
        tx, tx.conn.execute(select(s.objects).where(and_(s.objects.c.tenant_id == tx.tenant_id, s.objects.c.id == user.contact_id)))
    )
    assert isinstance(contact, Contact)
    contact.display_name, contact.first_name, contact.last_name = user.display_name, user.first_name, user.last_name
    contact.email1 = user.email
    objects.update_object_row(tx, contact, user.id)
    tx.record_object_change(GLOBAL_ADDRESS_BOOK, contact.stored_id, gone=False, kind="update")
    for group_id in groups_of_user(tx, user.id):
        sync_group_list(tx, group_id)


def add_alias(tx: Tx, user_id: int, address: str) -> None:
    get_user(tx, user_id)
    _claim_address(tx, address, user_id=user_id)
    tx.conn.execute(update(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id)).values(last_ms=tx.stamp.ms))
    tx.changed_accounts.add(user_id)


def remove_alias(tx: Tx, user_id: int, address: str) -> None:
    a = s.addresses
    deleted = tx.conn.execute(
        delete(a).where(and_(a.c.address == address.lower(), a.c.user_id == user_id, a.c.is_primary.is_(False),
                             a.c.tenant_id == tx.tenant_id))
    ).rowcount
    if not deleted:
        raise NotFound(f"{address} is not an alias of user {user_id}")
    tx.conn.execute(update(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id)).values(last_ms=tx.stamp.ms))
    tx.changed_accounts.add(user_id)


def user_settings(tx: Tx, user_id: int) -> dict:
    row = tx.conn.execute(select(s.users.c.settings).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id))).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return dataclass_json.loads(row.settings)


def store_user_settings(tx: Tx, user_id: int, settings: dict) -> None:
    tx.conn.execute(update(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id)).values(settings=dataclass_json.dumps(settings)))


# ---------------------------------------------------------------- groups and resources


def create_group(tx: Tx, name: str, display_name: str = "", members: Iterable[int] = ()) -> Group:
    name = name.strip().lower()
    if not name:
        raise InvalidData("group name is empty", field="name")
    g = s.user_groups
    if tx.conn.execute(select(g.c.id).where(and_(g.c.tenant_id == tx.tenant_id, g.c.name == name))).first():
        raise Conflict(f"group {name} already exists")
    group_id = tx.next_id("group")
    tx.conn.execute(insert(g).values(tenant_id=tx.tenant_id, id=group_id, name=name, display_name=display_name or name, last_ms=tx.stamp.ms))
    set_group_members(tx, group_id, members)
    return get_group(tx, group_id)


SYSTEM_ACTOR = 0
"""Creator of system-maintained entries (group lists): no account owns them, so no client edits them."""


def sync_group_list(tx: Tx, group_id: int) -> None:
    """Keep the group's distribution list in the global address book equal to its members."""
    group = get_group(tx, group_id)
    members = []
    for user_id in group.members:
        user = get_user(tx, user_id)
        members.append(DistributionListMember(email=user.email, display_name=user.display_name,
                                              contact_id=user.contact_id, folder_id=GLOBAL_ADDRESS_BOOK, email_field=1))
    g = s.user_groups
    list_id = tx.conn.execute(select(g.c.list_contact_id).where(and_(g.c.tenant_id == tx.tenant_id, g.c.id == group_id))).scalar_one()
    contact = Contact(display_name=group.display_name, distribution_list=members, created_by=SYSTEM_ACTOR,
                      categories="group")
    if list_id is None:
        objects.insert_object(tx, contact, GLOBAL_ADDRESS_BOOK, SYSTEM_ACTOR)
        tx.conn.execute(update(g).where(and_(g.c.tenant_id == tx.tenant_id, g.c.id == group_id))
                        .values(list_contact_id=contact.object_id))
        tx.record_object_change(GLOBAL_ADDRESS_BOOK, contact.stored_id, gone=False, kind="create")
    else:
        contact.object_id = list_id
        objects.update_object_row(tx, contact, SYSTEM_ACTOR)
        tx.record_object_change(GLOBAL_ADDRESS_BOOK, list_id, gone=False, kind="update")


def groups_of_user(tx: Tx, user_id: int) -> list[int]:
    gm = s.group_members
    return [r.group_id for r in tx.conn.execute(
        select(gm.c.group_id).where(and_(gm.c.tenant_id == tx.tenant_id, gm.c.user_id == user_id)))]


def get_group(tx: Tx, group_id: int) -> Group:
    g = s.user_groups
    row = tx.conn.execute(select(g).where(and_(g.c.tenant_id == tx.tenant_id, g.c.id == group_id))).one_or_none()
    if row is None:
        raise NotFound(f"group {group_id} does not exist")
    gm = s.group_members
    members = [r.user_id for r in tx.conn.execute(
        select(gm.c.user_id).where(and_(gm.c.tenant_id == tx.tenant_id, gm.c.group_id == group_id)).order_by(gm.c.user_id)
    )]
    return Group(row.id, row.tenant_id, row.name, row.display_name, members, row.last_ms)


def find_group_id(tx: Tx, name: str) -> int | None:
    g = s.user_groups
    return tx.conn.execute(select(g.c.id).where(and_(g.c.tenant_id == tx.tenant_id, g.c.name == name.lower()))).scalar_one_or_none()


def list_groups(tx: Tx) -> list[Group]:
    g = s.user_groups
    ids = [r.id for r in tx.conn.execute(select(g.c.id).where(g.c.tenant_id == tx.tenant_id).order_by(g.c.id))]
    return [get_group(tx, i) for i in ids]


def set_group_members(tx: Tx, group_id: int, members: Iterable[int]) -> None:
    gm = s.group_members
    wanted = sorted(set(members))
    for user_id in wanted:
        get_user(tx, user_id)
    tx.conn.execute(delete(gm).where(and_(gm.c.tenant_id == tx.tenant_id, gm.c.group_id == group_id)))
    if wanted:
        tx.conn.execute(insert(gm), [{"tenant_id": tx.tenant_id, "group_id": group_id, "user_id": u} for u in wanted])
    g = s.user_groups
    tx.conn.execute(update(g).where(and_(g.c.tenant_id == tx.tenant_id, g.c.id == group_id)).values(last_ms=tx.stamp.ms))
    sync_group_list(tx, group_id)
    # group-granted rights changed for these users: their view of group-shared folders may differ
    p = s.permissions
    for row in tx.conn.execute(select(p.c.folder_id).where(and_(p.c.tenant_id == tx.tenant_id, p.c.is_group.is_(True), p.c.entity == group_id))).all():
        folder = folder_ops.load_folder(tx, row.folder_id)
        tx.record_folder_change(row.folder_id, folder.parent_id, gone=False)
        tx.bump_folder_contents(row.folder_id)


def rename_group(tx: Tx, group_id: int, display_name: str) -> Group:
    """A group's display name (shown to clients); its short name stays the key."""
    display_name = display_name.strip()
    if not display_name:
        raise InvalidData("group name is empty", field="display_name")
    get_group(tx, group_id)
    g = s.user_groups
    tx.conn.execute(update(g).where(and_(g.c.tenant_id == tx.tenant_id, g.c.id == group_id))
                    .values(display_name=display_name, last_ms=tx.stamp.ms))
    sync_group_list(tx, group_id)
    return get_group(tx, group_id)


def create_resource(tx: Tx, name: str, email: str, *, display_name: str = "", kind: ResourceKind = ResourceKind.ROOM,
                    description: str = "") -> Resource:
    name = name.strip().lower()
    r = s.resources
    if tx.conn.execute(select(r.c.id).where(and_(r.c.tenant_id == tx.tenant_id, r.c.name == name))).first():
        raise Conflict(f"resource {name} already exists")
    resource_id = tx.next_id("resource")
    tx.conn.execute(insert(r).values(
        tenant_id=tx.tenant_id, id=resource_id, name=name, display_name=display_name or name, email=email.lower(),
        kind=kind.value, description=description, last_ms=tx.stamp.ms,
    ))
    _claim_address(tx, email, resource_id=resource_id, primary=True)
    return get_resource(tx, resource_id)


def get_resource(tx: Tx, resource_id: int) -> Resource:
    r = s.resources
    row = tx.conn.execute(select(r).where(and_(r.c.tenant_id == tx.tenant_id, r.c.id == resource_id))).one_or_none()
    if row is None:
        raise NotFound(f"resource {resource_id} does not exist")
    return Resource(row.id, row.tenant_id, row.name, row.display_name, row.email, ResourceKind(row.kind), row.description, row.last_ms)


def list_resources(tx: Tx) -> list[Resource]:
    r = s.resources
    return [get_resource(tx, row.id) for row in tx.conn.execute(select(r.c.id).where(r.c.tenant_id == tx.tenant_id).order_by(r.c.id))]


def find_resource_id(tx: Tx, name_or_address: str) -> int | None:
    """The resource whose name is `name_or_address`, else whose address it is (one statement)."""
    key = name_or_address.strip().lower()
    r, a = s.resources, s.addresses
    by_name = select(r.c.id.label("id"), literal(0).label("rank")).where(and_(r.c.tenant_id == tx.tenant_id, r.c.name == key))
    by_address = select(a.c.resource_id.label("id"), literal(1).label("rank")).where(
        and_(a.c.tenant_id == tx.tenant_id, a.c.address == key, a.c.resource_id.is_not(None)))
    found = sorted(tx.conn.execute(union_all(by_name, by_address)).all(), key=lambda row: row.rank)
    return int(found[0].id) if found else None


def delete_resource(tx: Tx, resource_id: int) -> None:
    get_resource(tx, resource_id)
    p = s.participants
    affected = [r.object_id for r in tx.conn.execute(
        select(p.c.object_id).where(and_(p.c.tenant_id == tx.tenant_id, p.c.kind == 3, p.c.entity == resource_id))
    )]
    tx.conn.execute(delete(p).where(and_(p.c.tenant_id == tx.tenant_id, p.c.kind == 3, p.c.entity == resource_id)))
    record_everywhere(tx, affected, "update", actor=SYSTEM_ACTOR)
    tx.conn.execute(delete(s.addresses).where(and_(s.addresses.c.tenant_id == tx.tenant_id, s.addresses.c.resource_id == resource_id)))
    tx.conn.execute(delete(s.resources).where(and_(s.resources.c.tenant_id == tx.tenant_id, s.resources.c.id == resource_id)))
    tx.conn.execute(insert(s.deleted_principals).values(tenant_id=tx.tenant_id, kind="resource", id=resource_id, last_ms=tx.stamp.ms))
