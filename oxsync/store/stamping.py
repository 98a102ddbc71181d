"""PostgreSQL: the revision bump and the rows that wait for its stamp, in one statement.

A write transaction on PostgreSQL does its object work before it takes the tenant's revision lock
(`Tx.late_stamp`, docs/store.md "Revision lock"); what must carry the revision's stamp is written when
the stamp is taken. The common ones (the owner's usage, the written objects' stamps and rewritten
columns, their change rows) join the bump's data-modifying `WITH` here instead of following it one
statement each: fewer round trips, and the tenant row is held for fewer of them. A new object whose
caller takes the stamp next (`ObjectEdits.create_object`) joins it too, with its participants and
time-range rows: its row is inserted with the stamp's time, so a create's object work is one round
trip, not four (the side rows as arrays, `unnest`ed, so the statement does not depend on their number).
The statement is built once per shape (how many users, objects, new objects and change rows, and which
columns; `functools.cache`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from oxsync.store import schema as s

ObjectShape = tuple[bool, tuple[str, ...]]
"""(stamped as created, the columns rewritten) of one object."""
InsertShape = tuple[bool, bool]
"""(has participant rows, has time-range rows) of one new object."""
Rows = list[dict[str, Any]]


@dataclass
class Inserted:
    """A new object waiting for the stamp: its `objects` row (without tenant_id, creation_ms and last_ms,
    which the statement gives), its `participants` and `object_ranges` rows (as `objects.side_rows` and
    `timeranges.table_rows` make them)."""
    row: dict[str, Any]
    parts: Rows
    ranges: Rows


@dataclass
class Pending:
    """Writes waiting for the stamp, one entry per row (each row is written once by the statement):
    user -> usage growth in bytes; object id -> (created: gets its creation time too, the columns to
    rewrite); (folder id, object id) -> (kind, new: no change row can exist yet) of objects still there."""
    usage: dict[int, int] = field(default_factory=dict)
    objects: dict[int, tuple[bool, dict[str, Any]]] = field(default_factory=dict)
    changes: dict[tuple[int, int], tuple[str, bool]] = field(default_factory=dict)
    inserts: dict[int, Inserted] = field(default_factory=dict)
    """object id -> a new object written by the statement (`insert`)."""
    rewrites: dict[int, Inserted] = field(default_factory=dict)
    """object id -> the participants and time ranges that replace a stored object's (`rewrite`; no row)."""

    def __bool__(self) -> bool:
        return bool(self.usage or self.objects or self.changes or self.inserts or self.rewrites)

    def rewrite(self, object_id: int, parts: Rows, ranges: Rows) -> None:
        self.rewrites[object_id] = Inserted({}, parts, ranges)

    def insert(self, object_id: int, row: dict[str, Any], parts: Rows, ranges: Rows) -> None:
        self.inserts[object_id] = Inserted(row, parts, ranges)

    def charge(self, user_id: int, delta: int) -> None:
        total = self.usage.pop(user_id, 0) + delta
        if total:
            self.usage[user_id] = total

    def stamp_object(self, object_id: int, created: bool, values: dict[str, Any]) -> None:
        if object_id in self.inserts:  # not written yet: the insert takes the new values (and the stamp)
            self.inserts[object_id].row.update(values)
            return
        was_created, before = self.objects.get(object_id, (False, {}))
        self.objects[object_id] = (created or was_created, {**before, **values})

    def change(self, folder_id: int, object_id: int, kind: str, new: bool) -> None:
        _, was_new = self.changes.get((folder_id, object_id), (kind, new))
        self.changes[(folder_id, object_id)] = (kind, new and was_new)


def shape(pending: Pending) -> tuple[tuple[bool, ...], tuple[ObjectShape, ...], tuple[bool, ...], tuple[InsertShape, ...],
                                     tuple[InsertShape, ...]]:
    users = tuple(delta > 0 for delta in pending.usage.values())
    objects = tuple((created, tuple(values)) for created, values in pending.objects.values())
    inserts = tuple((bool(new.parts), bool(new.ranges)) for new in pending.inserts.values())
    rewrites = tuple((bool(new.parts), bool(new.ranges)) for new in pending.rewrites.values())
    return users, objects, tuple(new for _, new in pending.changes.values()), inserts, rewrites


def parameters(pending: Pending) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (user_id, delta) in enumerate(pending.usage.items()):
        out[f"u{i}_id"], out[f"u{i}_delta"] = user_id, delta
    for i, (object_id, (_, values)) in enumerate(pending.objects.items()):
        out[f"o{i}_id"] = object_id
        out.update({f"o{i}_{name}": value for name, value in values.items()})
    for i, ((folder_id, object_id), (kind, _new)) in enumerate(pending.changes.items()):
        out[f"c{i}_folder"], out[f"c{i}_object"], out[f"c{i}_kind"] = folder_id, object_id, kind
        out[f"c{i}_gone"], out[f"c{i}_name"] = False, None
    for i, new in enumerate(pending.inserts.values()):
        out.update({f"n{i}_{name}": value for name, value in new.row.items() if name not in _GIVEN})
        out.update(_side_arrays(f"n{i}", new))
    for i, (object_id, new) in enumerate(pending.rewrites.items()):
        out[f"w{i}_id"], out[f"w{i}p_count"], out[f"w{i}r_count"] = object_id, len(new.parts), len(new.ranges)
        out.update(_side_arrays(f"w{i}", new))
    return out


def _side_arrays(key: str, new: Inserted) -> dict[str, Any]:
    """`new`'s participant and time-range rows as one array per column, `{key}p_<column>` and
    `{key}r_<column>` (none for a table without rows)."""
    out: dict[str, Any] = {}
    for prefix, table, rows in (("p", s.participants, new.parts), ("r", s.object_ranges, new.ranges)):
        for name in _side_columns(table) if rows else ():
            out[f"{key}{prefix}_{name}"] = [row[name] for row in rows]
    return out


def _unnested(key: str, table: Table) -> list[Any]:
    """The arrays of `_side_arrays` for `table` under `key`, each `unnest`ed: zipped into rows."""
    return [func.unnest(bindparam(f"{key}_{n}", type_=postgresql.ARRAY(table.c[n].type))) for n in _side_columns(table)]


_GIVEN = frozenset({"tenant_id", "creation_ms", "last_ms"})
"""Columns of a new object's row that the statement itself gives (the tenant, the stamp's time)."""


@functools.cache
def _side_columns(table: Table) -> tuple[str, ...]:
    """The columns of a side table's rows passed as arrays (all but the tenant and the object)."""
    return tuple(c.name for c in table.c if c.name not in ("tenant_id", "object_id"))


@functools.cache
def statement(bump_update: Any, users: tuple[bool, ...] = (), objects: tuple[ObjectShape, ...] = (),
              changes: tuple[bool, ...] = (), inserts: tuple[InsertShape, ...] = (),
              rewrites: tuple[InsertShape, ...] = ()) -> Any:
    """The tenant's revision bump (`bump_update`, tx._bump: an UPDATE returning rev and last_ms), its
    revision_log row and the pending writes, as one data-modifying WITH; parameters tenant, now, grow and
    `parameters(pending)`. Returns rev, last_ms (no row: the tenant's quota refused the growth) and u<i>:
    1 when user i's usage was charged (0: over that user's quota, or no such user)."""
    tenant = bindparam("tenant", type_=Integer)
    bump = bump_update.cte("bump")
    logged = insert(s.revision_log).from_select(["tenant_id", "rev", "ms"], select(tenant, bump.c.rev, bump.c.last_ms))
    stmt = select(bump.c.rev, bump.c.last_ms).add_cte(logged.cte("logged"))
    counts = []
    u, o, c = s.users, s.objects, s.changes
    for i, grows in enumerate(users):
        delta = bindparam(f"u{i}_delta", type_=u.c.usage_bytes.type)
        guard = and_(u.c.tenant_id == tenant, u.c.id == bindparam(f"u{i}_id", type_=Integer))
        if grows:
            guard = and_(guard, or_(u.c.quota_bytes.is_(None), u.c.usage_bytes + delta <= u.c.quota_bytes))
        charged = update(u).where(guard).values(usage_bytes=u.c.usage_bytes + delta).returning(u.c.id).cte(f"u{i}")
        stmt = stmt.add_cte(charged)
        counts.append(select(func.count()).select_from(charged).scalar_subquery().label(f"u{i}"))
    stamped = select(bump.c.last_ms).scalar_subquery()
    for i, (created, columns) in enumerate(objects):  # only when the bump took a stamp (else refused: no row)
        key = and_(o.c.tenant_id == tenant, o.c.id == bindparam(f"o{i}_id", type_=o.c.id.type), exists(select(bump.c.rev)))
        values: dict[str, Any] = {name: bindparam(f"o{i}_{name}", type_=o.c[name].type) for name in columns}
        values["last_ms"] = stamped
        if created:
            values["creation_ms"] = stamped
        stmt = stmt.add_cte(update(o).where(key).values(**values).cte(f"o{i}"))
    for i, new in enumerate(changes):
        row = select(tenant, bindparam(f"c{i}_folder", type_=Integer), bindparam(f"c{i}_object", type_=c.c.object_id.type),
                     bump.c.rev, bump.c.last_ms, bindparam(f"c{i}_gone", type_=Boolean),
                     bindparam(f"c{i}_kind", type_=String), bindparam(f"c{i}_name", type_=String))
        names = ["tenant_id", "folder_id", "object_id", "rev", "ms", "gone", "kind", "resource_name"]
        if new:
            changed: Any = insert(c).from_select(names, row)
        else:  # the change row of (folder, object) to this revision: updated, or inserted when none exists
            upsert = postgresql.insert(c).from_select(names, row)
            changed = upsert.on_conflict_do_update(
                index_elements=[c.c.tenant_id, c.c.folder_id, c.c.object_id],
                set_={n: upsert.excluded[n] for n in ("rev", "ms", "gone", "kind", "resource_name")})
        stmt = stmt.add_cte(changed.cte(f"c{i}"))
    for i, (with_parts, with_ranges) in enumerate(inserts):
        stmt = _add_insert(stmt, i, bump, tenant, with_parts, with_ranges)
    for i, (with_parts, with_ranges) in enumerate(rewrites):
        stmt = _add_rewrite(stmt, i, bump, tenant, with_parts, with_ranges)
    return stmt.add_columns(*counts) if counts else stmt


def _add_rewrite(stmt: Any, i: int, bump: Any, tenant: Any, with_parts: bool, with_ranges: bool) -> Any:
    """Stored object i's participants and time ranges replaced by new ones (parameters w<i>_id, w<i>p_count,
    w<i>r_count and the arrays w<i>p_<column>, w<i>r_<column>): the rows at positions from the new count on
    are deleted, the new rows upserted by position. The two touch disjoint rows, so that sub-statements of
    one WITH, which do not see each other's changes, cannot meet."""
    object_id = bindparam(f"w{i}_id", type_=s.objects.c.id.type)
    for prefix, table, present in (("p", s.participants, with_parts), ("r", s.object_ranges, with_ranges)):
        count = bindparam(f"w{i}{prefix}_count", type_=Integer)
        stale = delete(table).where(and_(table.c.tenant_id == tenant, table.c.object_id == object_id,
                                         table.c.position >= count))
        stmt = stmt.add_cte(stale.cte(f"w{i}{prefix}d"))
        if not present:
            continue
        columns = _side_columns(table)
        upsert = postgresql.insert(table).from_select(
            ["tenant_id", "object_id", *columns], select(tenant, object_id, *_unnested(f"w{i}{prefix}", table)).select_from(bump))
        upsert = upsert.on_conflict_do_update(index_elements=[table.c.tenant_id, table.c.object_id, table.c.position],
                                              set_={n: upsert.excluded[n] for n in columns if n != "position"})
        stmt = stmt.add_cte(upsert.cte(f"w{i}{prefix}"))
    return stmt


def _add_insert(stmt: Any, i: int, bump: Any, tenant: Any, with_parts: bool, with_ranges: bool) -> Any:
    """New object i (parameters n<i>_<column>) with its side rows (n<i>p_<column>, n<i>r_<column>: one
    array per column, zipped by `unnest`), each only when the bump took a stamp (else refused: no row).
    The side rows' foreign key to the object is checked at the end of the statement, so they see it."""
    o = s.objects
    object_id = bindparam(f"n{i}_id", type_=o.c.id.type)
    given = {"tenant_id": tenant, "id": object_id, "creation_ms": bump.c.last_ms, "last_ms": bump.c.last_ms,
             "has_attachments": false()}  # a new object has none yet (store/attachments.py marks it)
    names = [c.name for c in o.c]
    row = select(*[given.get(n, bindparam(f"n{i}_{n}", type_=o.c[n].type)) for n in names]).select_from(bump)
    stmt = stmt.add_cte(insert(o).from_select(names, row).cte(f"n{i}"))
    for prefix, table, present in (("p", s.participants, with_parts), ("r", s.object_ranges, with_ranges)):
        if not present:
            continue
        rows = select(tenant, object_id, *_unnested(f"n{i}{prefix}", table)).select_from(bump)
        stmt = stmt.add_cte(insert(table).from_select(["tenant_id", "object_id", *_side_columns(table)], rows)
                            .cte(f"n{i}{prefix}"))
    return stmt
