"""Folders, permission entries and effective rights, without the user-facing checks.

Effective rights of a user on a folder = the maximum over their own entry, the entries of their
groups and group 0 (all users). Computed here once per transaction and cached on the `Rights` cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, and_, bindparam, delete, insert, or_, select, update

from oxsync.model import Folder, FolderType, Module, Permission, Rights
from oxsync.model.folder import (
    GLOBAL_ADDRESS_BOOK,
    PRIVATE_ROOT,
    PUBLIC_ROOT,
    ROOT,
    SHARED_ROOT,
    SYSTEM_ROOT,
)
from oxsync.model.permissions import OWNER_RIGHTS
from oxsync.skips import note_skipped
from oxsync.store import schema as s
from oxsync.store.errors import NotFound
from oxsync.store.tx import Tx, read_once
from oxsync.store.validate import FOLDER_TEXT_LENGTHS, check_object

ALL_USERS = 0

SYSTEM_FOLDERS: tuple[tuple[int, int, str, Module | None, FolderType, Rights], ...] = (
    (PRIVATE_ROOT, ROOT, "Private folders", None, FolderType.SYSTEM, Rights(8, 0, 0, 0)),
    (PUBLIC_ROOT, ROOT, "Public folders", None, FolderType.SYSTEM, Rights(8, 0, 0, 0)),
    (SHARED_ROOT, ROOT, "Shared folders", None, FolderType.SYSTEM, Rights(2, 0, 0, 0)),
    (SYSTEM_ROOT, ROOT, "System folders", None, FolderType.SYSTEM, Rights(2, 0, 0, 0)),
    (GLOBAL_ADDRESS_BOOK, PUBLIC_ROOT, "Global address book", Module.CONTACT, FolderType.PUBLIC, Rights(2, 4, 2, 0)),
)
"""System folders every tenant has, with the group-0 entry each carries.

The global address book grants everyone read-all and write-own: each account's entry is created by
that account, so every user may edit their own personal data and nobody else's.
"""

DEFAULT_FOLDER_TITLES = {Module.CALENDAR: "Calendar", Module.CONTACT: "Contacts", Module.TASK: "Tasks"}


def create_system_folders(tx: Tx) -> None:
    ms = tx.stamp.ms
    for folder_id, parent, title, module, ftype, rights in SYSTEM_FOLDERS:
        tx.conn.execute(
            insert(s.folders).values(
                tenant_id=tx.tenant_id, id=folder_id, parent_id=parent, module=module.value if module else None,
                type=ftype.value, title=title, owner_id=None, default_module=None, creation_ms=ms, last_ms=ms,
            )
        )
        write_permissions(tx, folder_id, [Permission(ALL_USERS, True, rights)])


def insert_folder(tx: Tx, folder: Folder, actor: int) -> Folder:
    check_object(folder, tx.settings.limits, FOLDER_TEXT_LENGTHS)
    ms = tx.stamp.ms
    folder.id = tx.next_id("folder")
    folder.created_by = folder.modified_by = actor
    folder.last_modified = ms
    tx.conn.execute(
        insert(s.folders).values(
            tenant_id=tx.tenant_id, id=folder.id, parent_id=folder.parent_id,
            module=folder.module.value if folder.module else None, type=folder.type.value, title=folder.title,
            owner_id=folder.owner, default_module=folder.module.value if folder.default_folder and folder.module else None,
            color=folder.color, created_by=actor, modified_by=actor, creation_ms=ms, last_ms=ms,
        )
    )
    write_permissions(tx, folder.id, folder.permissions)
    tx.record_folder_change(folder.id, folder.parent_id, gone=False)
    return folder


def owner_permission(user_id: int) -> Permission:
    return Permission(user_id, False, OWNER_RIGHTS)


def write_permissions(tx: Tx, folder_id: int, entries: Iterable[Permission]) -> None:
    p = s.permissions
    tx.conn.execute(delete(p).where(and_(p.c.tenant_id == tx.tenant_id, p.c.folder_id == folder_id)))
    rows = [
        {
            "tenant_id": tx.tenant_id, "folder_id": folder_id, "is_group": e.is_group, "entity": e.entity,
            "folder_right": e.rights.folder, "read_right": e.rights.read, "write_right": e.rights.write,
            "delete_right": e.rights.delete, "admin_flag": e.rights.admin,
        }
        for e in entries
    ]
    if rows:
        tx.conn.execute(insert(p), rows)


_p, _f = s.permissions, s.folders
_PERMISSIONS_OF = select(_p).where(and_(_p.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                        _p.c.folder_id.in_(bindparam("ids", expanding=True)))).order_by(
    _p.c.folder_id, _p.c.is_group, _p.c.entity)
"""Built once, as `_FOLDERS_BY_ID`: every request that resolves a folder reads it with them."""
_FOLDERS_BY_ID = select(_f, _p.c.is_group, _p.c.entity, _p.c.folder_right, _p.c.read_right, _p.c.write_right,
                        _p.c.delete_right, _p.c.admin_flag).select_from(
    _f.outerjoin(_p, and_(_p.c.tenant_id == _f.c.tenant_id, _p.c.folder_id == _f.c.id))).where(
    and_(_f.c.tenant_id == bindparam("k_tenant", type_=Integer), _f.c.id.in_(bindparam("ids", expanding=True)))
).order_by(_f.c.id, _p.c.is_group, _p.c.entity)
"""The folders with their permissions in one statement: one row per permission entry (NULL entry for a
folder without any), in `_PERMISSIONS_OF`'s order."""


def read_permissions(tx: Tx, folder_ids: Iterable[int]) -> dict[int, list[Permission]]:
    ids = list(folder_ids)
    out: dict[int, list[Permission]] = {i: [] for i in ids}
    if not ids:
        return out
    for r in tx.conn.execute(_PERMISSIONS_OF, {"k_tenant": tx.tenant_id, "ids": ids}):
        rights = Rights(r.folder_right, r.read_right, r.write_right, r.delete_right, r.admin_flag)
        out[r.folder_id].append(Permission(r.entity, r.is_group, rights))
    return out


def row_to_folder(row, perms: list[Permission]) -> Folder:
    return Folder(
        id=row.id, parent_id=row.parent_id, title=row.title, module=Module(row.module) if row.module else None,
        type=FolderType(row.type), owner=row.owner_id, default_folder=row.default_module is not None,
        permissions=perms, created_by=row.created_by, modified_by=row.modified_by, last_modified=row.last_ms,
        color=row.color,
    )


def load_folders(tx: Tx, folder_ids: Iterable[int]) -> dict[int, Folder]:
    ids = list(folder_ids)
    if not ids:
        return {}
    rows: dict[int, Any] = {}
    perms: dict[int, list[Permission]] = {}
    for r in tx.conn.execute(_FOLDERS_BY_ID, {"k_tenant": tx.tenant_id, "ids": ids}):
        if r.id not in rows:
            rows[r.id], perms[r.id] = r, []
        if r.entity is not None:
            rights = Rights(r.folder_right, r.read_right, r.write_right, r.delete_right, r.admin_flag)
            perms[r.id].append(Permission(r.entity, r.is_group, rights))
    out: dict[int, Folder] = {}
    for r in rows.values():
        try:
            out[r.id] = row_to_folder(r, perms[r.id])
        except Exception as exc:  # noqa: BLE001 - one undecodable folder row must not fail a whole listing
            note_skipped("store", exc, folder_id=r.id)
    return out


@read_once
def home_kind(tx: Tx, folder_id: int) -> tuple[bool, int | None]:
    """(private, owner) of a folder: one light read (not its permissions), or NotFound."""
    f = s.folders
    row = tx.conn.execute(select(f.c.type, f.c.owner_id).where(
        and_(f.c.tenant_id == tx.tenant_id, f.c.id == folder_id))).one_or_none()
    if row is None:
        raise NotFound(f"folder {folder_id} does not exist")
    return FolderType(row.type) == FolderType.PRIVATE, row.owner_id


@read_once
def load_folder(tx: Tx, folder_id: int) -> Folder:
    """The folder, or NotFound (also for a row that cannot be decoded: it was logged and counted)."""
    folder = load_folders(tx, [folder_id]).get(folder_id)
    if folder is None:
        raise NotFound(f"folder {folder_id} does not exist")
    return folder


def _entity_filter(user_id: int, group_ids: list[int]):
    p = s.permissions
    return or_(
        and_(p.c.is_group.is_(False), p.c.entity == user_id),
        and_(p.c.is_group.is_(True), p.c.entity.in_(group_ids)),
    )


def effective_rights(tx: Tx, user_id: int, group_ids: list[int], folder_ids: Iterable[int]) -> dict[int, Rights]:
    """Rights of the user on each folder (folders without any matching entry get no rights)."""
    p = s.permissions
    ids = list(folder_ids)
    out: dict[int, Rights] = {i: Rights() for i in ids}
    if not ids:
        return out
    query = select(p).where(and_(p.c.tenant_id == tx.tenant_id, p.c.folder_id.in_(ids), _entity_filter(user_id, group_ids)))
    for r in tx.conn.execute(query):
        entry = Rights(r.folder_right, r.read_right, r.write_right, r.delete_right, r.admin_flag)
        out[r.folder_id] = out[r.folder_id].merge(entry)
    return out


def rights_in(permissions: Iterable[Permission], user_id: int, group_ids: list[int]) -> Rights:
    """The user's effective rights from a folder's loaded permission list: what `effective_rights` reads
    for that folder (the user's own entry and their groups' entries, merged), without a statement."""
    groups = set(group_ids)
    out = Rights()
    for p in permissions:
        if (p.entity in groups) if p.is_group else p.entity == user_id:
            out = out.merge(p.rights)
    return out


def visible_folder_ids(tx: Tx, user_id: int, group_ids: list[int]) -> dict[int, Rights]:
    """Every folder the user may see (folder right >= 2), with the effective rights."""
    p = s.permissions
    query = select(p).where(and_(p.c.tenant_id == tx.tenant_id, _entity_filter(user_id, group_ids)))
    rights: dict[int, Rights] = {}
    for r in tx.conn.execute(query):
        entry = Rights(r.folder_right, r.read_right, r.write_right, r.delete_right, r.admin_flag)
        rights[r.folder_id] = rights.get(r.folder_id, Rights()).merge(entry)
    return {fid: r for fid, r in rights.items() if r.can_see_folder}


def update_folder_row(tx: Tx, folder: Folder, actor: int) -> None:
    check_object(folder, tx.settings.limits, FOLDER_TEXT_LENGTHS)
    f = s.folders
    tx.conn.execute(
        update(f)
        .where(and_(f.c.tenant_id == tx.tenant_id, f.c.id == folder.id))
        .values(title=folder.title, parent_id=folder.parent_id, color=folder.color, modified_by=actor, last_ms=tx.stamp.ms)
    )
    folder.last_modified = tx.stamp.ms
    folder.modified_by = actor


def child_folder_ids(tx: Tx, folder_id: int) -> list[int]:
    f = s.folders
    rows = tx.conn.execute(select(f.c.id).where(and_(f.c.tenant_id == tx.tenant_id, f.c.parent_id == folder_id)))
    return [r.id for r in rows]


def subtree_ids(tx: Tx, folder_id: int) -> list[int]:
    """`folder_id` and all folders below it, children before parents (deletion order)."""
    order: list[int] = []
    stack = [folder_id]
    while stack:
        current = stack.pop()
        order.append(current)
        stack.extend(child_folder_ids(tx, current))
    return list(reversed(order))


def default_folder_id(tx: Tx, user_id: int, module: Module) -> int | None:
    f = s.folders
    return tx.conn.execute(
        select(f.c.id).where(
            and_(f.c.tenant_id == tx.tenant_id, f.c.owner_id == user_id, f.c.default_module == module.value)
        )
    ).scalar_one_or_none()


def create_default_folders(tx: Tx, user_id: int) -> dict[Module, int]:
    created: dict[Module, int] = {}
    for module, title in DEFAULT_FOLDER_TITLES.items():
        folder = Folder(
            parent_id=PRIVATE_ROOT, title=title, module=module, type=FolderType.PRIVATE, owner=user_id,
            default_folder=True, permissions=[owner_permission(user_id)],
        )
        insert_folder(tx, folder, user_id)
        assert folder.id is not None
        created[module] = folder.id
    return created
