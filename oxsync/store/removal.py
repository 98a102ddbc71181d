"""Deleting objects, folder trees and whole accounts, leaving tombstones and no dangling references."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, delete, insert, select, update

from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.store import accounts, objects
from oxsync.store import folders as folder_ops
from oxsync.store import schema as s
from oxsync.store.membership import folders_of_objects, object_ids_in_folder, record_everywhere
from oxsync.store.tx import Tx


def remove_objects(tx: Tx, object_ids: list[int], member_folders: Iterable[int] | None = None) -> None:
    """Delete objects everywhere they appear, tombstoning each (folder, object) pair."""
    if not object_ids:
        return
    members = folders_of_objects(tx, object_ids)
    extra = set(member_folders or ())
    o = s.objects
    names = {r.id: r.resource_name or "" for r in tx.conn.execute(
        select(o.c.id, o.c.resource_name).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id.in_(object_ids))))}
    _forget_list_references(tx, object_ids)
    objects.delete_object_rows(tx, object_ids)
    for object_id in object_ids:
        for folder_id in members[object_id] | extra:
            tx.record_object_change(folder_id, object_id, gone=True, kind="delete", name=names.get(object_id, ""))


def _forget_list_references(tx: Tx, contact_ids: list[int]) -> None:
    """Distribution lists that point at deleted contacts keep the address as a free entry."""
    lm = s.list_members
    rows = tx.conn.execute(
        select(lm.c.list_id).where(and_(lm.c.tenant_id == tx.tenant_id, lm.c.contact_id.in_(contact_ids)))
    ).all()
    if not rows:
        return
    tx.conn.execute(
        update(lm).where(and_(lm.c.tenant_id == tx.tenant_id, lm.c.contact_id.in_(contact_ids)))
        .values(contact_id=None, folder_id=None, email_field=0)
    )
    record_everywhere(tx, {r.list_id for r in rows} - set(contact_ids), "update", actor=accounts.SYSTEM_ACTOR)


def remove_folder_tree(tx: Tx, folder_id: int) -> None:
    for fid in folder_ops.subtree_ids(tx, folder_id):
        _remove_folder(tx, fid)


def _remove_folder(tx: Tx, folder_id: int) -> None:
    folder = folder_ops.load_folder(tx, folder_id)
    o, p = s.objects, s.participants
    home = [r.id for r in tx.conn.execute(select(o.c.id).where(and_(o.c.tenant_id == tx.tenant_id, o.c.folder_id == folder_id)))]
    guests = sorted(set(object_ids_in_folder(tx, folder_id)) - set(home))
    # objects that only visit this folder (someone else's meeting) stay, minus this placement
    if guests:
        tx.conn.execute(
            update(p).where(and_(p.c.tenant_id == tx.tenant_id, p.c.folder_id == folder_id, p.c.object_id.in_(guests)))
            .values(folder_id=None)
        )
    remove_objects(tx, home)
    c = s.changes
    tx.conn.execute(delete(c).where(and_(c.c.tenant_id == tx.tenant_id, c.c.folder_id == folder_id)))
    tx.conn.execute(delete(s.folders).where(and_(s.folders.c.tenant_id == tx.tenant_id, s.folders.c.id == folder_id)))
    tx.record_folder_change(folder_id, folder.parent_id, gone=True)


def delete_user(tx: Tx, user_id: int) -> None:
    """Remove an account with all its folders and data, and every reference to it."""
    user = accounts.get_user(tx, user_id)
    tx.changed_accounts.add(user_id)
    f, p, perm = s.folders, s.participants, s.permissions
    owned = [r.id for r in tx.conn.execute(
        select(f.c.id).where(and_(f.c.tenant_id == tx.tenant_id, f.c.owner_id == user_id, f.c.type == "private"))
    )]
    roots = [fid for fid in owned if folder_ops.load_folder(tx, fid).parent_id not in owned]
    for root in roots:
        remove_folder_tree(tx, root)
    # their participation in other people's meetings and tasks
    theirs = and_(p.c.tenant_id == tx.tenant_id, p.c.kind == 1, p.c.entity == user_id)
    visits = {r.object_id: r.folder_id for r in tx.conn.execute(select(p.c.object_id, p.c.folder_id).where(theirs))}
    tx.conn.execute(delete(p).where(theirs))
    for object_id, folder_id in visits.items():
        if folder_id is not None:
            tx.record_object_change(folder_id, object_id, gone=True, kind="delete")
    record_everywhere(tx, visits, "update", actor=accounts.SYSTEM_ACTOR)
    # permission entries naming them
    granted = [r.folder_id for r in tx.conn.execute(
        select(perm.c.folder_id).where(and_(perm.c.tenant_id == tx.tenant_id, perm.c.is_group.is_(False), perm.c.entity == user_id))
    )]
    tx.conn.execute(delete(perm).where(and_(perm.c.tenant_id == tx.tenant_id, perm.c.is_group.is_(False), perm.c.entity == user_id)))
    for folder_id in granted:
        folder = folder_ops.load_folder(tx, folder_id)
        tx.record_folder_change(folder_id, folder.parent_id, gone=False)
    # objects they created in folders that stay (public folders) lose their creator
    o = s.objects
    tx.conn.execute(update(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.created_by == user_id)).values(created_by=None))
    tx.conn.execute(update(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.modified_by == user_id)).values(modified_by=None))
    if user.contact_id is not None:
        remove_objects(tx, [user.contact_id], [GLOBAL_ADDRESS_BOOK])
    groups = accounts.groups_of_user(tx, user_id)
    tx.conn.execute(delete(s.group_members).where(and_(s.group_members.c.tenant_id == tx.tenant_id, s.group_members.c.user_id == user_id)))
    for group_id in groups:
        accounts.sync_group_list(tx, group_id)
    tx.conn.execute(delete(s.addresses).where(and_(s.addresses.c.tenant_id == tx.tenant_id, s.addresses.c.user_id == user_id)))
    tx.conn.execute(delete(s.device_state).where(and_(s.device_state.c.tenant_id == tx.tenant_id, s.device_state.c.user_id == user_id)))
    tx.conn.execute(delete(s.users).where(and_(s.users.c.tenant_id == tx.tenant_id, s.users.c.id == user_id)))
    tx.conn.execute(insert(s.deleted_principals).values(
        tenant_id=tx.tenant_id, kind="user", id=user_id, contact_id=user.contact_id, last_ms=tx.stamp.ms
    ))


def delete_group(tx: Tx, group_id: int) -> None:
    """Remove a group, its distribution list in the global address book and the permissions naming it."""
    accounts.get_group(tx, group_id)
    accounts.set_group_members(tx, group_id, [])
    g = s.user_groups
    list_id = tx.conn.execute(select(g.c.list_contact_id).where(and_(g.c.tenant_id == tx.tenant_id, g.c.id == group_id))).scalar_one()
    if list_id is not None:
        remove_objects(tx, [list_id])
    p = s.permissions
    tx.conn.execute(delete(p).where(and_(p.c.tenant_id == tx.tenant_id, p.c.is_group.is_(True), p.c.entity == group_id)))
    tx.conn.execute(delete(s.user_groups).where(and_(s.user_groups.c.tenant_id == tx.tenant_id, s.user_groups.c.id == group_id)))
    tx.conn.execute(insert(s.deleted_principals).values(tenant_id=tx.tenant_id, kind="group", id=group_id, last_ms=tx.stamp.ms))
