"""Creating many objects of one folder at once (`oxsync import`, the bench's loads).

`create_objects` leaves the database as `ObjectEdits.create_object` called once per object, in the
same order and the same transaction, would (tests/test_bulk_load.py compares every table row by row):
the same checks (folder kind, rights, UID uniqueness, invitations, `series.before_save`, `check_object`
and the size limits), the same rows (objects, participants, list members, time ranges, change rows,
mailed reminders, queued iMIP mail) and the same usage charged. What differs is the work: object ids
come in one reservation, the transaction's stamp is taken once before the rows are written, and each
table gets one multi-row INSERT per batch instead of one statement per object, and the lookups that
participant placement and iMIP repeat for every object (users, the home folder, the organiser) are
read once per batch (`Tx.repeated_reads`), so a batch of N objects costs a number of statements that
does not grow with N. Reads that remain per object: conflict checks (appointments without
`ignore_conflicts`, which first write the batch's earlier rows so that they see them), group
expansion, and the default folder of each other internal participant.

All or nothing per call: an object that is refused raises before any row of the batch is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, insert, select

from oxsync.model import Appointment, Contact, Folder, Task
from oxsync.model.appointment import ParticipantKind
from oxsync.store import itip, timeranges
from oxsync.store import schema as s
from oxsync.store.errors import Conflict, InvalidData, PermissionDenied
from oxsync.store.membership import folders_of_objects
from oxsync.store.object_edits import ObjectEdits, _kind_held, _series_of
from oxsync.store.objects import (
    AnyObject,
    _check_size,
    _columns,
    _stamp_model,
    charge,
    kind_of,
    serialize,
    side_rows,
)
from oxsync.store.reminders import _due
from oxsync.store.series import before_save
from oxsync.store.tx import Tx
from oxsync.store.validate import check_object


def create_objects(edits: ObjectEdits, folder_id: int, objs: Sequence[AnyObject]) -> list[AnyObject]:
    """Create `objs` in `folder_id` as `edits.create_object` would one by one; returns them as created."""
    if not objs:
        return []
    viewer, tx = edits.viewer, edits.tx
    folder = viewer.object_folder(folder_id)
    for obj in objs:
        if _kind_held(folder) != kind_of(obj):
            raise InvalidData(f"folder {folder_id} holds {folder.module}, not {kind_of(obj).value}", field="folder_id")
    if not viewer.rights(folder_id).can_create_objects:
        raise PermissionDenied(f"no right to create objects in folder {folder_id}")
    _check_uids(edits, folder_id, objs)
    outer, tx.repeated_reads = tx.repeated_reads, {}
    try:
        _create_all(edits, folder, folder_id, objs)
        for obj in objs:  # iMIP REQUESTs to external attendees of meetings organised here
            if isinstance(obj, Appointment) and obj.participants:
                itip.after_save(tx, obj, None)
    finally:
        tx.repeated_reads = outer
    return [viewer.personalised(obj) for obj in objs]


def _create_all(edits: ObjectEdits, folder: Folder, folder_id: int, objs: Sequence[AnyObject]) -> None:
    tx, user_id = edits.tx, edits.user_id
    pending = _Rows(tx, folder_id, user_id)
    ids = iter(tx.next_ids("object", len(objs)))
    for obj in objs:  # create_object's checks and preparation, object by object
        edits._check_invitations(folder, [], obj)  # noqa: SLF001 - the very check create_object makes
        obj.created_by = user_id
        range_end = None
        if isinstance(obj, Contact):
            obj.user_id = None
        else:
            if _sees_earlier_objects(obj):
                pending.flush()  # its conflict check must see the batch's earlier appointments
            range_end = before_save(tx, user_id, obj, folder_id, None)
        check_object(obj, tx.settings.limits)
        pending.add(obj, next(ids), range_end)
    pending.flush()


def _sees_earlier_objects(obj: AnyObject) -> bool:
    """`series.before_save` reads other appointments (a conflict check) for this object."""
    return isinstance(obj, Appointment) and not (
        obj.ignore_conflicts and not any(p.kind == ParticipantKind.RESOURCE for p in obj.participants))


class _Rows:
    """The rows of prepared objects, written with one multi-row INSERT per table at `flush`."""

    TABLES = ("objects", "participants", "list_members", "object_ranges", "changes", "mail_alarms")

    def __init__(self, tx: Tx, folder_id: int, user_id: int) -> None:
        self.tx, self.folder_id, self.user_id = tx, folder_id, user_id
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in self.TABLES}
        self.charged = 0
        self.count = 0

    def add(self, obj: AnyObject, object_id: int, range_end: int | None) -> None:
        """`objects.insert_object` and the change rows and reminders of `create_object`, as rows."""
        tx, folder_id, user_id, stamp = self.tx, self.folder_id, self.user_id, self.tx.stamp
        obj.object_id = object_id
        if isinstance(obj, Appointment) and obj.is_series and obj.recurrence_id is None:
            obj.recurrence_id = object_id
        data = serialize(obj)
        _check_size(tx, data, obj)
        obj.folder_id, obj.modified_by = folder_id, user_id
        self.charged += len(data)
        self.rows["objects"].append({
            "tenant_id": tx.tenant_id, "id": object_id, "kind": kind_of(obj).value, "folder_id": folder_id,
            "created_by": user_id, "modified_by": user_id, "creation_ms": stamp.ms, "last_ms": stamp.ms,
            "size": len(data), "data": data, **_columns(obj, range_end)})
        parts, members = side_rows(tx, obj)
        self.rows["participants"] += parts
        self.rows["list_members"] += members
        self.rows["object_ranges"] += timeranges.table_rows(tx.tenant_id, object_id, timeranges.rows(obj, tx.settings.limits))
        _stamp_model(obj, stamp, created=True)
        placed = {folder_id} | {p.folder_id for p in getattr(obj, "participants", []) if p.folder_id is not None}
        self.rows["changes"] += [{"tenant_id": tx.tenant_id, "folder_id": fid, "object_id": object_id, "rev": stamp.rev,
                                  "ms": stamp.ms, "gone": False, "kind": "create", "resource_name": None}
                                 for fid in placed]
        tx.touched_folders |= placed
        for fid in placed:
            tx.changed_objects.setdefault(fid, set()).add(object_id)
        if isinstance(obj, Appointment | Task):
            self.rows["mail_alarms"] += [
                {"tenant_id": tx.tenant_id, "object_id": object_id, "user_id": u, "due_ms": due, "done": False}
                for u, due in sorted(set(_due(obj)))]
        self.count += 1

    def flush(self) -> None:
        if not self.count:
            return
        tx = self.tx
        charge(tx, self.user_id, self.charged)
        for name in self.TABLES:
            if self.rows[name]:
                tx.conn.execute(insert(s.metadata.tables[name]), self.rows[name])
        tx.object_writes += self.count
        tx.written_objects.update(row["id"] for row in self.rows["objects"])
        timeranges.refresh_statistics(tx, len(self.rows["object_ranges"]), len(self.rows["objects"]))
        self.rows = {name: [] for name in self.TABLES}
        self.charged = self.count = 0


def _check_uids(edits: ObjectEdits, folder_id: int, objs: Sequence[AnyObject]) -> None:
    """`create_object`'s UID check for the whole batch in one read: against the stored objects, and
    within the batch (where the later of two objects with one UID would have met the earlier one)."""
    tx = edits.tx
    seen: dict[str, int | None] = {}
    wanted: dict[str, list[int | None]] = {}
    for obj in objs:
        if not obj.uid:
            continue
        series = _series_of(obj)
        if obj.uid in seen and (series is None or seen[obj.uid] != series):
            raise Conflict(f"an object with UID {obj.uid} already exists in folder {folder_id}")
        seen[obj.uid] = series
        wanted.setdefault(obj.uid, []).append(series)
    if not wanted:
        return
    o = s.objects
    stored: dict[str, list[tuple[int, int | None]]] = {}
    uids = sorted(wanted)
    for low in range(0, len(uids), 500):
        for row in tx.conn.execute(select(o.c.uid, o.c.id, o.c.series_id).where(
                and_(o.c.tenant_id == tx.tenant_id, o.c.uid.in_(uids[low:low + 500])))):
            stored.setdefault(row.uid, []).append((int(row.id), row.series_id))
    if not stored:
        return
    folders = folders_of_objects(tx, [i for found in stored.values() for i, _ in found])
    for uid, found in stored.items():
        for series in wanted[uid]:
            ids = [i for i, their in found if series is None or series not in (i, their)]
            if any(folder_id in folders[i] for i in ids):
                raise Conflict(f"an object with UID {uid} already exists in folder {folder_id}")
