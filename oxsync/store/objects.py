"""Persistence of contacts, appointments and tasks, without rights checks.

The user-facing API (`session.py`) checks rights and then calls these functions; administration
(GAB upkeep, user deletion) calls them directly. Indexed fields live in columns, the rest of the
model in a JSON document; participants, list members and attachments in their own tables.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, bindparam, delete, insert, or_, select, update

from oxsync.model import Appointment, Contact, Task
from oxsync.model.appointment import Confirmation, Participant, ParticipantKind
from oxsync.model.common import AttachmentMeta, ObjectKind
from oxsync.model.contact import DistributionListMember
from oxsync.model.text import xml_safe
from oxsync.model.timeutil import datetime_from_ms, to_ms
from oxsync.skips import note_skipped
from oxsync.store import dataclass_json, timeranges
from oxsync.store import schema as s
from oxsync.store.errors import InvalidInput, QuotaExceeded
from oxsync.store.idlists import ids_bound
from oxsync.store.tx import Stamp, Tx
from oxsync.store.validate import check_object

AnyObject = Contact | Appointment | Task
CLASS_OF_KIND: dict[ObjectKind, type] = {
    ObjectKind.CONTACT: Contact,
    ObjectKind.APPOINTMENT: Appointment,
    ObjectKind.TASK: Task,
}
COLUMN_FIELDS = frozenset({
    "object_id", "folder_id", "created_by", "modified_by", "creation_time", "last_modified",
    "private_flag", "uid", "resource_name", "participants", "distribution_list", "attachments", "user_id",
})
"""Model fields restored from columns or side tables rather than from the JSON document."""

# Statements of every object write, built once: building a statement and its cache key costs more Python
# CPU than running it (bench/README r2-putstore). Keys are bound as k_tenant, k_id; an UPDATE's SET
# columns are the parameters' other keys.
_o = s.objects
_OBJECT_KEY = and_(_o.c.tenant_id == bindparam("k_tenant", type_=Integer), _o.c.id == bindparam("k_id", type_=Integer))
_INSERT_OBJECT = insert(_o)
_UPDATE_OBJECT = update(_o).where(_OBJECT_KEY)
_SIZE_AND_OWNER = select(_o.c.size, _o.c.created_by).where(_OBJECT_KEY)
_INSERT_SIDE = {s.participants.name: insert(s.participants), s.list_members.name: insert(s.list_members)}
_CLEAR_SIDE = {
    table.name: delete(table).where(and_(table.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                         id_col.in_(bindparam("ids", expanding=True))))
    for table, id_col in ((s.participants, s.participants.c.object_id), (s.list_members, s.list_members.c.list_id))
}


def kind_of(obj: AnyObject) -> ObjectKind:
    for kind, cls in CLASS_OF_KIND.items():
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"not a storable object: {type(obj).__name__}")


def contact_title(c: Contact) -> str:
    if c.display_name:
        return c.display_name
    names = ", ".join(n for n in (c.last_name, c.first_name) if n)
    return names or c.company or c.email1


def _search_text(obj: AnyObject) -> str:
    if isinstance(obj, Contact):
        parts = [obj.display_name, obj.first_name, obj.last_name, obj.email1, obj.email2, obj.email3,
                 obj.company, obj.categories, obj.nickname]
    else:
        parts = [obj.title, obj.categories, getattr(obj, "location", "")]
    return " ".join(p.lower() for p in parts if p)


def _columns(obj: AnyObject, range_end_ms: int | None) -> dict[str, Any]:
    cols: dict[str, Any] = {
        "private": obj.private_flag,
        "uid": obj.uid or None,
        "resource_name": obj.resource_name or None,
        "search_text": _search_text(obj),
        "start_ms": None, "end_ms": None, "range_end_ms": None, "full_time": False,
        "shown_as": None, "series_id": None, "user_id": None,
    }
    if isinstance(obj, Contact):
        cols["title"] = contact_title(obj)[:512]
        cols["user_id"] = obj.user_id
    elif isinstance(obj, Appointment):
        cols.update(
            title=obj.title[:512], start_ms=to_ms(obj.start_date), end_ms=to_ms(obj.end_date),
            full_time=obj.full_time, shown_as=int(obj.shown_as), series_id=obj.recurrence_id,
        )
        cols["range_end_ms"] = range_end_ms if obj.is_series else cols["end_ms"]
    else:
        cols.update(title=obj.title[:512], start_ms=to_ms(obj.start_date), end_ms=to_ms(obj.end_date))
        cols["range_end_ms"] = cols["end_ms"]
    return cols


LIST_MARK = '"_is_list"'
"""The key `serialize` writes into a distribution list's data (and only there): `load_objects` reads
list members only for rows whose data text holds it."""


def serialize(obj: AnyObject) -> str:
    data = dataclass_json.to_dict(obj, exclude=COLUMN_FIELDS)
    if isinstance(obj, Contact) and obj.distribution_list is not None:
        data["_is_list"] = True  # an empty list is still a list (LIST_MARK)
    return dataclass_json.dumps(data)


@dataclass
class Written:
    """What this transaction stored for one object, as a read of it would return the rows: its `objects`
    row (`row`; None values of creation_ms, last_ms, folder_id, created_by: not known yet), its side rows and
    attachments (None: not known). `writes`: `Tx.object_writes` after it (it describes the stored object
    while that stays). `written_object` decodes it as `load_objects` decodes what it reads."""
    row: dict[str, Any]
    parts: list[dict[str, Any]]
    members: list[dict[str, Any]]
    attachments: list[AttachmentMeta] | None
    writes: int


def _remember(tx: Tx, obj: AnyObject, row: dict[str, Any], side: tuple[list[dict[str, Any]], list[dict[str, Any]]],
              attachments: list[AttachmentMeta] | None) -> Written:
    assert obj.object_id is not None
    written = Written({"id": obj.object_id, "kind": kind_of(obj).value, **row}, side[0], side[1], attachments,
                      tx.object_writes)
    tx.written_rows[obj.object_id] = written
    return written


def written_object(tx: Tx, object_id: int, folder_for: dict[int, int]) -> tuple[Any, AnyObject] | None:
    """(row, object) of an object this transaction wrote, decoded from what it wrote exactly as
    `load_objects` decodes the rows it reads (the same `_load_one`), or None when that is not known
    (never written here, written again since, or a stamp or field not known yet): then read it."""
    written = tx.written_rows.get(object_id)
    if written is None or written.writes != tx.object_writes or written.attachments is None:
        return None
    if any(written.row.get(k) is None for k in ("creation_ms", "last_ms", "folder_id", "created_by")):
        return None
    row = SimpleNamespace(**written.row)
    parts = {object_id: [SimpleNamespace(**p) for p in written.parts]}
    members = {object_id: [SimpleNamespace(**m) for m in written.members]} if written.members else {}
    return row, _load_one(row, parts, members, {object_id: list(written.attachments)}, folder_for)


def insert_object(tx: Tx, obj: AnyObject, folder_id: int, actor: int, *, range_end_ms: int | None = None,
                  stamp_next: bool = False) -> None:
    """Insert `obj` (id allocated here) into `folder_id`; stamps server fields on `obj`.

    On PostgreSQL the row is written before the transaction's stamp (no tenant lock for the object
    work) and gets its creation and modification time when the stamp is taken (`Tx.at_stamp`).
    `stamp_next`: the caller takes the stamp next and reads nothing of the object before it; then on
    PostgreSQL the row, its participants and time ranges are written by the stamp's own statement
    (store/stamping.py; a distribution list's members are not, so a list is written here)."""
    check_object(obj, tx.settings.limits)
    obj.object_id = tx.next_id("object")
    if isinstance(obj, Appointment) and obj.is_series and obj.recurrence_id is None:
        obj.recurrence_id = obj.object_id
    data = serialize(obj)
    _check_size(tx, data, obj)
    obj.folder_id = folder_id
    obj.created_by = obj.created_by if obj.created_by is not None else actor
    obj.modified_by = actor
    charge(tx, obj.created_by, len(data))
    draft = tx.drafting
    ms = 0 if draft else tx.stamp.ms
    row = {"folder_id": folder_id, "created_by": obj.created_by, "modified_by": actor, "creation_ms": ms or None,
           "last_ms": ms or None, "size": len(data), "data": data, **_columns(obj, range_end_ms)}
    side = side_rows(tx, obj)
    joins_stamp = draft and stamp_next and not side[1]
    if joins_stamp:  # the rows are the stamp's statement's (store/stamping.py)
        ranges = timeranges.table_rows(tx.tenant_id, obj.object_id, timeranges.rows(obj, tx.settings.limits))
        tx.pending.insert(obj.object_id, {"id": obj.object_id, "kind": kind_of(obj).value, **row}, side[0], ranges)
    else:
        tx.conn.execute(_INSERT_OBJECT, {"tenant_id": tx.tenant_id, "id": obj.object_id, "kind": kind_of(obj).value,
                                         **row, "creation_ms": ms, "last_ms": ms})
        _insert_side_rows(tx, side)
    tx.object_writes += 1
    tx.written_objects.add(obj.object_id)
    written = _remember(tx, obj, row, side, [])
    if not joins_stamp:
        timeranges.write(tx, obj, replace=False)
    if draft:  # the row's creation and last time join the stamp's statement (store/stamping.py)
        if not joins_stamp:
            tx.pending.stamp_object(obj.object_id, True, {})

        def stamped(stamp: Stamp) -> None:
            _stamp_model(obj, stamp, created=True)
            written.row.update(creation_ms=stamp.ms, last_ms=stamp.ms)
        tx.at_stamp.append(stamped)
    else:
        _stamp_model(obj, tx.stamp, created=True)


def _stamp_model(obj: AnyObject, stamp: Stamp, created: bool) -> None:
    if created:
        obj.creation_time = datetime_from_ms(stamp.ms)
    obj.last_modified = stamp.ms


def update_object_row(tx: Tx, obj: AnyObject, actor: int, *, range_end_ms: int | None = None,
                      old_size: int | None = None, created_by: int | None = None, stamp_next: bool = False) -> int:
    """Rewrite the stored object from `obj`; returns the size difference in bytes. `old_size` and
    `created_by`: the stored row's, when the caller has read them (saves reading them again).

    On PostgreSQL the side tables and time ranges are rewritten before the transaction's stamp and
    the object row itself when the stamp is taken (`Tx.at_stamp`). `stamp_next` (as `insert_object`'s):
    the participants and time ranges of an event or task are rewritten by the stamp's statement too."""
    check_object(obj, tx.settings.limits)
    if isinstance(obj, Appointment) and obj.is_series and obj.recurrence_id is None:
        obj.recurrence_id = obj.object_id
    data = serialize(obj)
    _check_size(tx, data, obj)
    key = {"k_tenant": tx.tenant_id, "k_id": obj.object_id}
    if old_size is None:
        old = tx.conn.execute(_SIZE_AND_OWNER, key).one()
        old_size, created_by = int(old.size), old.created_by
    charge(tx, created_by, len(data) - old_size)
    obj.modified_by = actor
    values = {"modified_by": actor, "size": len(data), "data": data, **_columns(obj, range_end_ms)}
    object_id = obj.stored_id
    tx.object_writes += 1
    tx.written_objects.add(object_id)
    joins_stamp = tx.drafting and stamp_next and not isinstance(obj, Contact) and object_id == obj.object_id
    if joins_stamp:  # the participants and ranges are the stamp's statement's (store/stamping.py)
        side = side_rows(tx, obj)
        ranges = timeranges.table_rows(tx.tenant_id, obj.object_id, timeranges.rows(obj, tx.settings.limits))
        tx.pending.rewrite(object_id, side[0], ranges)
    else:
        _clear_side_tables(tx, [object_id], kind=kind_of(obj))
        side = _write_side_tables(tx, obj)
    # the row's home folder, owner and creation are not rewritten here: the caller that knows them says
    # so (ObjectEdits.update_object), else the object is read when asked for
    written = _remember(tx, obj, {**values, "folder_id": None, "created_by": None, "creation_ms": None,
                                  "last_ms": None}, side, None)
    if not isinstance(obj, Contact) and not joins_stamp:
        timeranges.write(tx, obj, replace=True)

    def stamped(stamp: Stamp) -> None:
        _stamp_model(obj, stamp, created=False)
        written.row["last_ms"] = stamp.ms
    if tx.drafting:  # the row's new columns join the stamp's statement (store/stamping.py)
        tx.pending.stamp_object(object_id, False, values)
        tx.at_stamp.append(stamped)
    else:
        tx.conn.execute(_UPDATE_OBJECT, {**key, "last_ms": tx.stamp.ms, **values})
        stamped(tx.stamp)
    return len(data) - old_size


def set_object_folder(tx: Tx, object_id: int, folder_id: int, actor: int) -> None:
    o = s.objects
    tx.object_writes += 1  # the row changes: what was remembered of it (`Written`) no longer holds
    tx.conn.execute(
        update(o)
        .where(and_(o.c.tenant_id == tx.tenant_id, o.c.id == object_id))
        .values(folder_id=folder_id, modified_by=actor, last_ms=tx.stamp.ms)
    )


def touch_object(tx: Tx, object_id: int, actor: int) -> int:
    """Give an object a new last_modified (e.g. an attachment was added); returns it."""
    o = s.objects
    tx.object_writes += 1  # as `set_object_folder`
    tx.conn.execute(
        update(o)
        .where(and_(o.c.tenant_id == tx.tenant_id, o.c.id == object_id))
        .values(modified_by=actor, last_ms=tx.stamp.ms)
    )
    return tx.stamp.ms


def delete_object_rows(tx: Tx, object_ids: Sequence[int]) -> None:
    if not object_ids:
        return
    o, a = s.objects, s.attachments
    for chunk in _chunks(list(object_ids)):
        for row in tx.conn.execute(select(o.c.created_by, o.c.size).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id.in_(chunk)))):
            charge(tx, row.created_by, -int(row.size))
        for row in tx.conn.execute(select(a.c.created_by, a.c.size).where(and_(a.c.tenant_id == tx.tenant_id, a.c.object_id.in_(chunk)))):
            charge(tx, row.created_by, -int(row.size))
    _clear_side_tables(tx, object_ids, attachments=True)
    tx.object_writes += 1
    tx.written_objects.difference_update(object_ids)
    tx.conn.execute(delete(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id.in_(object_ids))))


def charge(tx: Tx, user_id: int | None, delta: int) -> None:
    """Add `delta` bytes to the user's and tenant's usage; growth beyond a quota is refused.

    Each counter is one guarded UPDATE: it matches no row when the growth would pass the quota.
    """
    if delta == 0:
        return
    t = s.tenants
    if user_id is not None:
        if tx.drafting:  # PostgreSQL: the user's row is locked only from the stamp on (writers of one user
            tx.pending.charge(user_id, delta)  # overlap), with the stamp's statement (store/stamping.py)
        else:
            _charge_user(tx, user_id, delta)
    if tx.stamped is None:  # added with the revision bump: the tenant row is locked only from there
        tx.tenant_bytes += delta
        return
    guard = t.c.id == tx.tenant_id
    if delta > 0:
        guard = and_(guard, or_(t.c.quota_bytes.is_(None), t.c.usage_bytes + delta <= t.c.quota_bytes))
    if tx.conn.execute(update(t).where(guard).values(usage_bytes=t.c.usage_bytes + delta)).rowcount == 0:
        quota = tx.conn.execute(select(t.c.quota_bytes).where(t.c.id == tx.tenant_id)).scalar_one()
        raise QuotaExceeded(f"tenant quota of {quota} bytes exceeded")


@functools.cache
def _charge_user_statement(grow: bool) -> Any:
    """The user's usage += delta, guarded by the user's quota when it grows; built once per case."""
    u = s.users
    delta = bindparam("delta", type_=BigInteger)
    guard = and_(u.c.tenant_id == bindparam("k_tenant", type_=Integer), u.c.id == bindparam("k_user", type_=Integer))
    if grow:
        guard = and_(guard, or_(u.c.quota_bytes.is_(None), u.c.usage_bytes + delta <= u.c.quota_bytes))
    return update(u).where(guard).values(usage_bytes=u.c.usage_bytes + delta)


def _charge_user(tx: Tx, user_id: int, delta: int) -> None:
    u = s.users
    params = {"k_tenant": tx.tenant_id, "k_user": user_id, "delta": delta}
    if tx.conn.execute(_charge_user_statement(delta > 0), params).rowcount == 0:
        exists = tx.conn.execute(select(u.c.quota_bytes).where(and_(u.c.tenant_id == tx.tenant_id, u.c.id == user_id))).first()
        if exists is not None:
            raise QuotaExceeded(f"user quota of {exists.quota_bytes} bytes exceeded")


def _check_size(tx: Tx, data: str, obj: AnyObject) -> None:
    limit = tx.settings.limits.max_object_bytes
    if len(data) > limit:
        raise InvalidInput("object", f"{len(data)} bytes, over the {limit} byte limit")
    parts = getattr(obj, "participants", [])
    if len(parts) > tx.settings.limits.max_participants:
        raise InvalidInput("participants", f"{len(parts)}, over the limit of {tx.settings.limits.max_participants}")
    members = getattr(obj, "distribution_list", None) or []
    if len(members) > tx.settings.limits.max_distribution_list_members:
        raise InvalidInput("distribution_list", "too many members")
    if isinstance(obj, Contact) and obj.image1 and len(obj.image1) > tx.settings.limits.max_photo_bytes:
        raise InvalidInput("image1", "contact picture over the size limit")


def _clear_side_tables(tx: Tx, object_ids: Sequence[int], attachments: bool = False,
                       kind: ObjectKind | None = None) -> None:
    """Delete the objects' participants and list members (`kind` known: only the table it uses)."""
    tables = [s.participants, s.list_members]
    if kind is not None:
        tables = [s.list_members] if kind == ObjectKind.CONTACT else [s.participants]
    for table in tables:
        tx.conn.execute(_CLEAR_SIDE[table.name], {"k_tenant": tx.tenant_id, "ids": list(object_ids)})
    if attachments:
        a = s.attachments
        tx.conn.execute(delete(a).where(and_(a.c.tenant_id == tx.tenant_id, a.c.object_id.in_(object_ids))))


def _write_side_tables(tx: Tx, obj: AnyObject) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return _insert_side_rows(tx, side_rows(tx, obj))


def _insert_side_rows(tx: Tx, side: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    parts, members = side
    if parts:
        tx.conn.execute(_INSERT_SIDE[s.participants.name], parts)
    if members:
        tx.conn.execute(_INSERT_SIDE[s.list_members.name], members)
    return parts, members


def side_rows(tx: Tx, obj: AnyObject) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The object's `participants` and `list_members` rows (one insert each, or one per batch in a bulk load)."""
    parts: list[Participant] = getattr(obj, "participants", [])
    members = (obj.distribution_list if isinstance(obj, Contact) else None) or []
    return [
        {
            "tenant_id": tx.tenant_id, "object_id": obj.object_id, "position": i, "kind": int(p.kind),
            "entity": p.entity, "email": p.email, "display_name": p.display_name,
            "confirmation": int(p.confirmation), "message": p.message, "folder_id": p.folder_id,
            "alarm": p.alarm, "data": None,
        }
        for i, p in enumerate(parts)
    ], [
        {
            "tenant_id": tx.tenant_id, "list_id": obj.object_id, "position": i, "contact_id": m.contact_id,
            "folder_id": m.folder_id, "email_field": m.email_field, "email": m.email,
            "display_name": m.display_name,
        }
        for i, m in enumerate(members)
    ]


def load_objects(tx: Tx, rows: Iterable[Any], folder_for: dict[int, int] | None = None) -> list[AnyObject]:
    """Build model objects from `objects` rows, with participants, members and attachment lists.

    A row that cannot be decoded (written by an older version or bypassing the store's checks) is left
    out, logged and counted once (oxsync.render), so that it never hides the other objects."""
    rows = list(rows)
    if not rows:
        return []
    # only distribution lists have members, and `serialize` marks every list in its data (an empty one
    # too): a window of plain contacts reads no list_members (a text that merely looks marked costs a read)
    lists = [r.id for r in rows if r.kind == ObjectKind.CONTACT.value and LIST_MARK in (r.data or "")]
    others = [r.id for r in rows if r.kind != ObjectKind.CONTACT.value]  # only they have participants
    parts = _group(tx, s.participants, s.participants.c.object_id, others, s.participants.c.position)
    members = _group(tx, s.list_members, s.list_members.c.list_id, lists, s.list_members.c.position)
    # `has_attachments` marks the objects that have some (kept by store/attachments.py): a read of objects
    # without any, most of them, sends no attachment query
    atts = _attachment_metas(tx, [r.id for r in rows if r.has_attachments])
    out: list[AnyObject] = []
    for r in rows:
        try:
            out.append(_load_one(r, parts, members, atts, folder_for))
        except Exception as exc:  # noqa: BLE001 - one undecodable row must not fail the whole read
            note_skipped("store", exc, object_id=r.id, folder_id=(folder_for or {}).get(r.id, r.folder_id))
    return out


_CLASS_OF_KIND_VALUE: dict[str, type] = {kind.value: cls for kind, cls in CLASS_OF_KIND.items()}


def _load_one(r: Any, parts: dict[int, list[Any]], members: dict[int, list[Any]],
              atts: dict[int, list[AttachmentMeta]], folder_for: dict[int, int] | None) -> AnyObject:
    """One object from its row and side rows; its JSON document is parsed once."""
    cls = _CLASS_OF_KIND_VALUE.get(r.kind) or CLASS_OF_KIND[ObjectKind(r.kind)]  # an unknown kind raises as before
    object_id = r.id
    overrides: dict[str, Any] = {
        "object_id": object_id,
        "folder_id": (folder_for or {}).get(object_id, r.folder_id),
        "created_by": r.created_by,
        "modified_by": r.modified_by,
        "creation_time": datetime_from_ms(r.creation_ms),
        "last_modified": r.last_ms,
        "private_flag": r.private,
        "uid": xml_safe(r.uid or ""),
        "resource_name": xml_safe(r.resource_name or ""),
        "attachments": atts.get(object_id, []),
    }
    data = dataclass_json.loads(r.data)
    if cls is Contact:
        overrides["user_id"] = r.user_id
        dl = members.get(object_id)
        if dl is not None or data.get("_is_list"):
            overrides["distribution_list"] = [_member(m) for m in dl or []]
    else:
        overrides["participants"] = [participant_of_row(p) for p in parts.get(object_id, [])]
        if cls is Appointment:
            overrides["recurrence_id"] = r.series_id
    return dataclass_json.decode_object(cls, data, overrides)


def _group(tx: Tx, table, id_col, ids: list[int], order_col) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    query = _rows_of(table.name, id_col.name, order_col.name, tx.conn.dialect.name == "postgresql")
    for chunk in _chunks(ids):
        for row in tx.conn.execute(query, {"k_tenant": tx.tenant_id, "ids": chunk}).all():  # at once: cheaper per row
            grouped.setdefault(getattr(row, id_col.name), []).append(row)
    return grouped


@functools.cache
def _rows_of(table_name: str, id_name: str, order_name: str, postgresql: bool) -> Any:
    """The rows of a side table for a list of ids (bound as `ids`), built once per table and dialect:
    every object read runs it."""
    table = s.metadata.tables[table_name]
    id_col, order_col = table.c[id_name], table.c[order_name]
    return select(table).where(and_(table.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                    ids_bound(id_col, "ids", postgresql))).order_by(order_col)


_named_tuple: Any = namedtuple  # its fields come from the table: not a literal mypy could check
ObjectRow: Any = _named_tuple("ObjectRow", [c.name for c in s.objects.c])
"""A row of `object_rows_query` as a plain named tuple: decoding and the rights check read about 20 of its
fields per object, each a C-level index where a SQLAlchemy `Row` resolves the name per access."""


def object_rows_query(postgresql: bool) -> Any:
    """The `objects` rows of a list of ids (bound as `ids`, the tenant as `k_tenant`) in id order, built once
    per dialect: every bulk read of whole objects and a PUT of an existing object run it."""
    return _rows_of(s.objects.name, "id", "id", postgresql)


@functools.cache
def _attachment_metas_query(postgresql: bool) -> Any:
    """Built once per dialect: every object read lists its attachments with it."""
    a = s.attachments
    return select(a.c.id, a.c.object_id, a.c.filename, a.c.mimetype, a.c.size, a.c.creation_ms,
                  a.c.rtf_flag).where(and_(a.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                           ids_bound(a.c.object_id, "ids", postgresql))).order_by(a.c.id)


def _attachment_metas(tx: Tx, ids: list[int]) -> dict[int, list[AttachmentMeta]]:
    out: dict[int, list[AttachmentMeta]] = {}
    for chunk in _chunks(ids):
        for row in tx.conn.execute(_attachment_metas_query(tx.conn.dialect.name == "postgresql"),
                                   {"k_tenant": tx.tenant_id, "ids": chunk}):
            out.setdefault(row.object_id, []).append(
                AttachmentMeta(row.id, xml_safe(row.filename), xml_safe(row.mimetype), row.size,
                               datetime.fromtimestamp(row.creation_ms / 1000, tz=UTC), row.rtf_flag)
            )
    return out


_KINDS = {kind.value: kind for kind in ParticipantKind}
_CONFIRMATIONS = {c.value: c for c in Confirmation}
"""Value -> member, looked up for every participant row read (calling the enum costs several times more)."""


def participant_of_row(row: Any) -> Participant:
    """A `Participant` from its row of the participants table (an unknown number raises as the enum does)."""
    kind, confirmation = row.kind, row.confirmation
    return Participant(
        kind=_KINDS[kind] if kind in _KINDS else ParticipantKind(kind), entity=row.entity,
        email=xml_safe(row.email), display_name=xml_safe(row.display_name),
        confirmation=_CONFIRMATIONS[confirmation] if confirmation in _CONFIRMATIONS else Confirmation(confirmation),
        message=xml_safe(row.message), folder_id=row.folder_id, alarm=row.alarm,
    )


def _member(row: Any) -> DistributionListMember:
    return DistributionListMember(
        email=xml_safe(row.email), display_name=xml_safe(row.display_name), contact_id=row.contact_id,
        folder_id=row.folder_id,
        email_field=row.email_field,
    )


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]
