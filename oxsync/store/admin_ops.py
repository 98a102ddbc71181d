"""Administrative operations shared by the web console and the admin API (and, for audit, the CLI).

Each function opens one transaction through `admin.admin_tx` (scope check first), does the work with
the store's own account/folder/session functions, and writes its audit row in that transaction.
Nothing here knows HTTP; callers translate `StoreError`s (NotFound -> 404, PermissionDenied -> 403...).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from types import EllipsisType
from typing import Any

from sqlalchemy import and_, case, func, select

from oxsync.model import Module, Permission, Protocol, ResourceKind, User
from oxsync.model.account import ACCOUNT_FLAGS
from oxsync.model.permissions import level_for_rights, rights_for_level
from oxsync.store import accounts, admin_mail, dataclass_json, removal
from oxsync.store import schema as s
from oxsync.store.admin import Actor, admin_tx, audit, check_platform, platform_conn
from oxsync.store.api import Store
from oxsync.store.errors import InvalidData, NotFound, PermissionDenied
from oxsync.store.removal import delete_user
from oxsync.store.session import UserSession
from oxsync.store.tx import Tx

GENERATED_PASSWORD_BYTES = 15
DAY_SECONDS = 86_400
CLASS_MODULES = {"contacts": Module.CONTACT, "calendar": Module.CALENDAR, "tasks": Module.TASK}
"""ActiveSync classes an admin may resync, and the folder module each covers."""


def _flags_allowed(actor: Actor, flags: dict[str, bool]) -> dict[str, bool]:
    unknown = set(flags) - set(ACCOUNT_FLAGS)
    if unknown:
        raise InvalidData(f"unknown account flags {sorted(unknown)}", field="flags")
    if "platform_admin" in flags and not actor.platform:
        raise PermissionDenied("only platform administrators grant platform administration")
    return flags


def new_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _changes_text(changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(changes.items()) if k != "password")


# ---------------------------------------------------------------- tenant home and platform


def tenant_summary(store: Store, actor: Actor, tenant_id: int, now: float | None = None) -> dict[str, Any]:
    """The FAQ's home page: accounts available/created, storage private/public, devices active in a day,
    outbound mails that failed for good (the queue's `failed`/`dropped` rows)."""
    with admin_tx(store, actor, tenant_id) as tx:
        t = tx.conn.execute(select(s.tenants).where(s.tenants.c.id == tenant_id)).one()
        u = s.users
        created, active = tx.conn.execute(select(func.count(), func.sum(case((u.c.active.is_(True), 1), else_=0))).where(
            u.c.tenant_id == tenant_id)).one()
        o, f = s.objects, s.folders
        public = tx.conn.execute(select(func.coalesce(func.sum(o.c.size), 0)).select_from(
            o.join(f, and_(f.c.tenant_id == o.c.tenant_id, f.c.id == o.c.folder_id))).where(
            and_(o.c.tenant_id == tenant_id, f.c.type == "public"))).scalar_one()
        devices = _device_records(tx, None)
        m = s.outbound_mail
        mail_failures = tx.conn.execute(select(func.count()).select_from(m).where(
            and_(m.c.tenant_id == tenant_id, m.c.state.in_(("failed", "dropped"))))).scalar_one()
    since = (now or time.time()) - DAY_SECONDS
    used = int(t.usage_bytes)
    return {
        "tenant_id": tenant_id, "domain": t.domain, "max_accounts": t.max_accounts, "accounts_created": int(created),
        "accounts_active": int(active or 0),
        "accounts_available": None if t.max_accounts is None else max(0, t.max_accounts - int(created)),
        "quota_bytes": t.quota_bytes, "used_bytes": used, "public_bytes": int(public),
        "private_bytes": max(0, used - int(public)),
        "available_bytes": None if t.quota_bytes is None else max(0, t.quota_bytes - used),
        "devices": len(devices), "devices_active_day": sum(1 for d in devices if (d["last_seen"] or 0) >= since),
        "mail_failures": int(mail_failures),
    }


def list_tenants(store: Store, actor: Actor) -> list[dict[str, Any]]:
    with platform_conn(store, actor) as conn:
        t, u = s.tenants, s.users
        counts: dict[int, int] = dict(conn.execute(select(u.c.tenant_id, func.count()).group_by(u.c.tenant_id)).all())
        return [{"id": r.id, "domain": r.domain, "max_accounts": r.max_accounts, "quota_bytes": r.quota_bytes,
                 "used_bytes": int(r.usage_bytes), "accounts": int(counts.get(r.id, 0))}
                for r in conn.execute(select(t).order_by(t.c.id))]


def tenant_ids_for(store: Store, actor: Actor) -> list[tuple[int, str]]:
    """(id, domain) of the tenants the actor may administer."""
    t = s.tenants
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.domain).order_by(t.c.id)).all()
    return [(r.id, r.domain) for r in rows if actor.may_act_on(r.id)]


def create_tenant(store: Store, actor: Actor, domain: str, max_accounts: int | None, quota_bytes: int | None) -> int:
    check_platform(actor)
    tenant = store.create_tenant(domain, max_accounts=max_accounts, quota_bytes=quota_bytes)
    with store.transaction(tenant.id, write=True) as tx:
        audit(tx.conn, actor, tenant.id, "tenant.create", tenant.domain,
              f"max_accounts={max_accounts}, quota_bytes={quota_bytes}")
    return tenant.id


def set_tenant_limits(store: Store, actor: Actor, tenant_id: int, **limits: int | None) -> None:
    check_platform(actor)
    allowed = {k: v for k, v in limits.items() if k in ("max_accounts", "quota_bytes")}
    with store.transaction(tenant_id, write=True) as tx:
        if tx.conn.execute(select(s.tenants.c.id).where(s.tenants.c.id == tenant_id)).first() is None:
            raise NotFound(f"tenant {tenant_id} does not exist")
        tx.conn.execute(s.tenants.update().where(s.tenants.c.id == tenant_id).values(**allowed))
        audit(tx.conn, actor, tenant_id, "tenant.limits", str(tenant_id), _changes_text(allowed))


# ---------------------------------------------------------------- accounts


def list_accounts(store: Store, actor: Actor, tenant_id: int, text: str = "", sort: str = "login",
                  descending: bool = False, page: int = 1, per_page: int = 50) -> dict[str, Any]:
    per_page = max(1, min(per_page, 500))
    page = max(1, page)
    with admin_tx(store, actor, tenant_id) as tx:
        users, total = accounts.search_users(tx, text, sort=sort, descending=descending,
                                             offset=(page - 1) * per_page, limit=per_page)
        usage = accounts.usage_of_users(tx, [u.id for u in users])
        mail = admin_mail.mail_summary(tx, [u.id for u in users])
    return {"users": users, "usage": usage, "mail": mail, "total": total, "page": page, "per_page": per_page,
            "pages": max(1, -(-total // per_page))}


def get_account(store: Store, actor: Actor, tenant_id: int, user_id: int) -> tuple[User, list[int], int]:
    """(user, group ids, usage bytes)."""
    with admin_tx(store, actor, tenant_id) as tx:
        user = accounts.get_user(tx, user_id)
        return user, accounts.groups_of_user(tx, user_id), accounts.usage_of_users(tx, [user_id]).get(user_id, 0)


def create_account(store: Store, actor: Actor, tenant_id: int, login: str, *, password: str | None = None,
                   display_name: str = "", email: str | None = None, protocols: Iterable[Protocol] = (),
                   flags: dict[str, bool] | None = None, quota_bytes: int | None = None,
                   aliases: Iterable[str] = ()) -> tuple[User, str | None]:
    """The new account and the generated password (None when one was given)."""
    generated = None
    if not password:
        password = generated = new_password()
    flags = _flags_allowed(actor, dict(flags or {}))
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        user = accounts.create_user(tx, login, password, display_name=display_name, email=email or None,
                                    protocols=frozenset(protocols), flags=flags, quota_bytes=quota_bytes,
                                    aliases=aliases)
        audit(tx.conn, actor, tenant_id, "account.create", user.email,
              f"protocols={','.join(sorted(p.value for p in user.protocols)) or 'none'}, {_changes_text(flags)}")
    return user, generated


def update_account(store: Store, actor: Actor, tenant_id: int, user_id: int, *,
                   display_name: str | None = None, first_name: str | None = None, last_name: str | None = None,
                   protocols: Iterable[Protocol] | None = None, flags: dict[str, bool] | None = None,
                   quota_bytes: int | None | EllipsisType = ..., active: bool | None = None) -> User:
    flags = _flags_allowed(actor, dict(flags or {}))
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        before = accounts.get_user(tx, user_id)
        if before.platform_admin and not actor.platform:
            raise PermissionDenied("only platform administrators change a platform administrator")
        user = accounts.update_user(tx, user_id, display_name=display_name, first_name=first_name,
                                    last_name=last_name, active=active, quota_bytes=quota_bytes, flags=flags,
                                    protocols=None if protocols is None else frozenset(protocols))
        changes: dict[str, Any] = dict(flags)
        if protocols is not None:
            changes["protocols"] = ",".join(sorted(p.value for p in user.protocols)) or "none"
        for name, value in (("display_name", display_name), ("first_name", first_name), ("last_name", last_name)):
            if value is not None:
                changes[name] = value
        if quota_bytes is not ...:
            changes["quota_bytes"] = quota_bytes
        action = "account.update" if active is None else ("account.resume" if active else "account.suspend")
        audit(tx.conn, actor, tenant_id, action, user.email, _changes_text(changes))
    return user


def reset_password(store: Store, actor: Actor, tenant_id: int, user_id: int, password: str | None = None) -> str:
    """Sets `password` or a generated one (returned, shown once, never logged)."""
    password = password or new_password()
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        user = accounts.update_user(tx, user_id, password=password)
        audit(tx.conn, actor, tenant_id, "account.password", user.email)
    return password


def delete_account(store: Store, actor: Actor, tenant_id: int, user_id: int, confirm: str) -> None:
    """Removes the account and all its data; `confirm` must repeat its login (typed confirmation)."""
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        user = accounts.get_user(tx, user_id)
        if confirm.strip().lower() not in (user.login, user.email):
            raise InvalidData("type the account's login to confirm its deletion", field="confirm")
        if user.platform_admin and not actor.platform:
            raise PermissionDenied("only platform administrators delete a platform administrator")
        delete_user(tx, user_id)
        audit(tx.conn, actor, tenant_id, "account.delete", user.email)


def set_aliases(store: Store, actor: Actor, tenant_id: int, user_id: int, add: Iterable[str] = (),
                remove: Iterable[str] = ()) -> User:
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        for alias in remove:
            accounts.remove_alias(tx, user_id, alias)
        for alias in add:
            accounts.add_alias(tx, user_id, alias)
        user = accounts.get_user(tx, user_id)
        audit(tx.conn, actor, tenant_id, "account.aliases", user.email,
              f"add={','.join(add)}, remove={','.join(remove)}")
    return user


# ---------------------------------------------------------------- groups and resources


def list_groups(store: Store, actor: Actor, tenant_id: int) -> list[Any]:
    with admin_tx(store, actor, tenant_id) as tx:
        return accounts.list_groups(tx)


def create_group(store: Store, actor: Actor, tenant_id: int, name: str, display_name: str = "",
                 members: Iterable[int] = ()) -> Any:
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        group = accounts.create_group(tx, name, display_name, members)
        audit(tx.conn, actor, tenant_id, "group.create", group.name, f"members={len(group.members)}")
    return group


def rename_group(store: Store, actor: Actor, tenant_id: int, group_id: int, display_name: str) -> Any:
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        group = accounts.rename_group(tx, group_id, display_name)
        audit(tx.conn, actor, tenant_id, "group.rename", group.name, display_name)
    return group


def set_group_member(store: Store, actor: Actor, tenant_id: int, group_id: int, user_id: int, member: bool) -> Any:
    """The FAQ's ON/OFF toggle for one account in one group."""
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        group = accounts.get_group(tx, group_id)
        user = accounts.get_user(tx, user_id)
        members = set(group.members)
        members = members | {user_id} if member else members - {user_id}
        accounts.set_group_members(tx, group_id, members)
        audit(tx.conn, actor, tenant_id, "group.member", group.name, f"{user.login}={'on' if member else 'off'}")
        return accounts.get_group(tx, group_id)


def delete_group(store: Store, actor: Actor, tenant_id: int, group_id: int) -> None:
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        group = accounts.get_group(tx, group_id)
        removal.delete_group(tx, group_id)
        audit(tx.conn, actor, tenant_id, "group.delete", group.name)


def list_resources(store: Store, actor: Actor, tenant_id: int) -> list[Any]:
    with admin_tx(store, actor, tenant_id) as tx:
        return accounts.list_resources(tx)


def create_resource(store: Store, actor: Actor, tenant_id: int, name: str, email: str, display_name: str = "",
                    kind: str = "room", description: str = "") -> Any:
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        try:
            resource_kind = ResourceKind(kind)
        except ValueError:
            raise InvalidData(f"unknown resource kind {kind!r}", field="kind") from None
        res = accounts.create_resource(tx, name, email, display_name=display_name, kind=resource_kind,
                                       description=description)
        audit(tx.conn, actor, tenant_id, "resource.create", res.email, res.kind.value)
    return res


def delete_resource(store: Store, actor: Actor, tenant_id: int, resource_id: int) -> None:
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        res = accounts.get_resource(tx, resource_id)
        accounts.delete_resource(tx, resource_id)
        audit(tx.conn, actor, tenant_id, "resource.delete", res.email)


def resource_bookings(store: Store, actor: Actor, tenant_id: int, resource_id: int,
                      limit: int = 200) -> list[dict[str, Any]]:
    """Appointments the resource takes part in, soonest first (titles of private ones withheld)."""
    with admin_tx(store, actor, tenant_id) as tx:
        accounts.get_resource(tx, resource_id)
        o, p, u = s.objects, s.participants, s.users
        rows = tx.conn.execute(
            select(o.c.id, o.c.title, o.c.start_ms, o.c.end_ms, o.c.private, o.c.created_by, p.c.confirmation)
            .select_from(p.join(o, and_(o.c.tenant_id == p.c.tenant_id, o.c.id == p.c.object_id)))
            .where(and_(p.c.tenant_id == tenant_id, p.c.kind == 3, p.c.entity == resource_id))
            .order_by(o.c.start_ms).limit(limit)).all()
        names = dict(tx.conn.execute(select(u.c.id, u.c.login).where(u.c.tenant_id == tenant_id)).all())
    return [{"id": r.id, "title": "" if r.private else r.title, "private": bool(r.private), "start_ms": r.start_ms,
             "end_ms": r.end_ms, "organizer": names.get(r.created_by, ""), "confirmation": int(r.confirmation)}
            for r in rows]


# ---------------------------------------------------------------- folders and sharing


def user_folders(store: Store, actor: Actor, tenant_id: int, user_id: int) -> list[dict[str, Any]]:
    """The account's own folders with each permission entry as an Outlook level (None = custom)."""
    with admin_tx(store, actor, tenant_id) as tx:
        accounts.get_user(tx, user_id)
        session = UserSession(tx, user_id)
        out = []
        for access in session.list_folders():
            folder = access.folder
            if folder.owner != user_id or folder.module is None:
                continue
            out.append({"id": folder.id, "title": folder.title, "module": folder.module.value,
                        "default": folder.default_folder,
                        "permissions": [{"entity": p.entity, "group": p.is_group, "level": level_for_rights(p.rights),
                                         "rights": [p.rights.folder, p.rights.read, p.rights.write, p.rights.delete,
                                                    p.rights.admin]} for p in folder.permissions]})
        return out


def share_folder(store: Store, actor: Actor, tenant_id: int, user_id: int, folder_id: int, entity: int,
                 is_group: bool, level: int | None) -> None:
    """Grant `entity` Outlook level `level` on the owner's folder (None removes the entry). Acts as the
    owner, so the store's rules apply as in every dialect (the owner's sharing right included)."""
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        owner = accounts.get_user(tx, user_id)
        if not is_group:
            accounts.get_user(tx, entity)
        elif entity != 0:  # group 0 = all users
            accounts.get_group(tx, entity)
        session = UserSession(tx, user_id)
        folder = session.get_folder(folder_id).folder
        if folder.owner != user_id:
            raise NotFound(f"folder {folder_id} is not a folder of {owner.login}")
        entries = {(p.entity, p.is_group): p for p in folder.permissions}
        if level is None:
            entries.pop((entity, is_group), None)
        else:
            try:
                entries[(entity, is_group)] = Permission(entity, is_group, rights_for_level(level))
            except ValueError as exc:
                raise InvalidData(str(exc), field="level") from exc
        session.set_permissions(folder_id, list(entries.values()))
        audit(tx.conn, actor, tenant_id, "folder.share", f"{owner.login}/{folder.title}",
              f"{'group' if is_group else 'user'} {entity} level={'none' if level is None else level}")


# ---------------------------------------------------------------- devices


def _device_records(tx: Tx, user_id: int | None) -> list[dict[str, Any]]:
    d = s.device_state
    cond = and_(d.c.tenant_id == tx.tenant_id, d.c.collection == "")
    if user_id is not None:
        cond = and_(cond, d.c.user_id == user_id)
    out = []
    for r in tx.conn.execute(select(d.c.user_id, d.c.device_id, d.c.data).where(cond).order_by(d.c.user_id, d.c.device_id)):
        rec = dataclass_json.loads(r.data)
        info = rec.get("info", {}) if isinstance(rec.get("info"), dict) else {}
        out.append({"user_id": r.user_id, "device_id": r.device_id, "type": rec.get("type", ""),
                    "model": info.get("model", ""), "user_agent": rec.get("ua", ""), "version": rec.get("version", ""),
                    "first_seen": rec.get("first_seen"), "last_seen": rec.get("last_seen"),
                    "last_sync": rec.get("last_sync"), "policy": rec.get("policy_state", "none"),
                    "wipe": rec.get("wipe", ""), "wipe_kind": rec.get("wipe_kind", "")})
    return out


def list_devices(store: Store, actor: Actor, tenant_id: int, user_id: int | None = None) -> list[dict[str, Any]]:
    with admin_tx(store, actor, tenant_id) as tx:
        devices = _device_records(tx, user_id)
        logins = dict(tx.conn.execute(select(s.users.c.id, s.users.c.login).where(s.users.c.tenant_id == tenant_id)).all())
    for dev in devices:
        dev["login"] = logins.get(dev["user_id"], "")
    return devices


def device_detail(store: Store, actor: Actor, tenant_id: int, user_id: int, device_id: str) -> dict[str, Any]:
    """The device record and its per-folder sync state (key, items known, pending window, filter)."""
    with admin_tx(store, actor, tenant_id) as tx:
        found = [d for d in _device_records(tx, user_id) if d["device_id"] == device_id]
        if not found:
            raise NotFound(f"device {device_id} does not exist")
        d = s.device_state
        folders = []
        titles = dict(tx.conn.execute(select(s.folders.c.id, s.folders.c.title).where(s.folders.c.tenant_id == tenant_id)).all())
        for r in tx.conn.execute(select(d.c.collection, d.c.data, d.c.updated_ms).where(and_(
                d.c.tenant_id == tenant_id, d.c.user_id == user_id, d.c.device_id == device_id,
                d.c.collection.like("c:%"))).order_by(d.c.collection)):
            st = dataclass_json.loads(r.data)
            cid = r.collection[2:]
            known = str(st.get("known") or "")
            folders.append({"collection": cid, "title": titles.get(int(cid), cid) if cid.isdigit() else cid,
                            "sync_key": st.get("key", ""), "filter": st.get("filter", 0),
                            "known": _count_ranges(known), "pending": len(st.get("pending") or []),
                            "skipped": st.get("skipped") or {}, "updated_ms": r.updated_ms})
        login = accounts.get_user(tx, user_id).login
    return {**found[0], "login": login, "folders": folders}


def _count_ranges(text: str) -> int:
    total = 0
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        total += (int(b) - int(a) + 1) if b.isdigit() and a.isdigit() else 1
    return total


def _device_session(tx: Tx, user_id: int, device_id: str) -> UserSession:
    accounts.get_user(tx, user_id)
    session = UserSession(tx, user_id)
    if device_id not in session.device_ids():
        raise NotFound(f"device {device_id} does not exist")
    return session


def device_action(store: Store, actor: Actor, tenant_id: int, user_id: int, device_id: str, action: str,
                  target: str = "") -> int:
    """wipe | wipe_account (16.1 account-only wipe) | cancel_wipe | remove | resync (`target`: a folder id
    or a class: contacts, calendar, tasks, or "" for everything). Returns the state records touched."""
    with admin_tx(store, actor, tenant_id, write=True) as tx:
        session = _device_session(tx, user_id, device_id)
        record = session.get_state(device_id, "") or {}
        touched = 1
        if action in ("wipe", "wipe_account"):
            record.update(wipe="requested", wipe_kind="account" if action == "wipe_account" else "device",
                          wipe_requested_at=int(time.time()), wipe_requested_by=actor.name)
            session.put_state(device_id, "", record)
        elif action == "cancel_wipe":
            if record.get("wipe") not in ("requested", "pending"):
                raise InvalidData("no wipe is pending for this device", field="action")
            for key in ("wipe", "wipe_kind", "wipe_requested_at", "wipe_requested_by"):
                record.pop(key, None)
            session.put_state(device_id, "", record)
        elif action == "remove":
            touched = session.delete_state(device_id)
        elif action == "resync":
            touched = sum(session.delete_state(device_id, key) for key in _resync_keys(tx, session, device_id, target))
        else:
            raise InvalidData(f"unknown device action {action!r}", field="action")
        audit(tx.conn, actor, tenant_id, f"device.{action}", f"{accounts.get_user(tx, user_id).login}/{device_id}",
              target)
    return touched


def _resync_keys(tx: Tx, session: UserSession, device_id: str, target: str) -> list[str]:
    d = s.device_state
    keys = [r.collection for r in tx.conn.execute(select(d.c.collection).where(and_(
        d.c.tenant_id == tx.tenant_id, d.c.user_id == session.user_id, d.c.device_id == device_id,
        d.c.collection.like("c:%"))))]
    if not target:
        return keys + ["h"]
    if target.isdigit():
        return [k for k in keys if k == f"c:{target}"] or _missing(target)
    module = CLASS_MODULES.get(target.lower())
    if module is None:
        raise InvalidData(f"resync a folder id or one of {', '.join(CLASS_MODULES)}", field="target")
    f = s.folders
    ids = {str(r.id) for r in tx.conn.execute(select(f.c.id).where(and_(f.c.tenant_id == tx.tenant_id,
                                                                          f.c.module == module.value)))}
    return [k for k in keys if k[2:] in ids]


def _missing(target: str) -> list[str]:
    raise NotFound(f"the device has no sync state for folder {target}")
