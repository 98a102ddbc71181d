"""Which folders an object appears in: its home folder plus each internal participant's folder."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, select, union

from oxsync.store import objects
from oxsync.store import schema as s
from oxsync.store.tx import Tx


def folders_of_objects(tx: Tx, object_ids: Iterable[int]) -> dict[int, set[int]]:
    ids = list(object_ids)
    out: dict[int, set[int]] = {i: set() for i in ids}
    if not ids:
        return out
    o, p = s.objects, s.participants
    for row in tx.conn.execute(select(o.c.id, o.c.folder_id).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id.in_(ids)))):
        out[row.id].add(row.folder_id)
    # by object id only (the primary key): a `folder_id IS NOT NULL` term lets SQLite's planner pick the
    # folder index and scan every placed participant of the tenant (36 ms at 100,000 events, not 0.1 ms)
    query = select(p.c.object_id, p.c.folder_id).where(and_(p.c.tenant_id == tx.tenant_id, p.c.object_id.in_(ids)))
    for row in tx.conn.execute(query):
        if row.folder_id is not None:
            out[row.object_id].add(row.folder_id)
    return out


def object_ids_in_folder(tx: Tx, folder_id: int) -> list[int]:
    o, p = s.objects, s.participants
    home = select(o.c.id.label("id")).where(and_(o.c.tenant_id == tx.tenant_id, o.c.folder_id == folder_id))
    guest = select(p.c.object_id.label("id")).where(and_(p.c.tenant_id == tx.tenant_id, p.c.folder_id == folder_id))
    return sorted({row.id for row in tx.conn.execute(union(home, guest))})


def record_everywhere(tx: Tx, object_ids: Iterable[int], kind: str, actor: int | None = None) -> None:
    """Mark objects changed in every folder they appear in, so every viewer's delta reports them; with
    `actor`, they also get a new last_modified (a change to them that did not rewrite their row)."""
    for object_id, folder_ids in folders_of_objects(tx, sorted(set(object_ids))).items():
        if actor is not None:
            objects.touch_object(tx, object_id, actor)
        for folder_id in folder_ids:
            tx.record_object_change(folder_id, object_id, gone=False, kind=kind)
