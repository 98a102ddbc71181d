"""Bulk reads for the report paths: many objects of one folder in a fixed number of statements, and
the per-viewer cache of served texts.

`BulkReads` checks folder visibility, membership (home folder or a participant's folder) and the object
read rights exactly as `get_object` does, through the session's `Viewer`, and personalises meetings;
statements grow with the number of 500-id chunks, never with one query per object.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, bindparam, case, func, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

from oxsync.model.appointment import ParticipantKind
from oxsync.store import objects as object_ops
from oxsync.store import schema as s
from oxsync.store.idlists import ids_bound, ids_in
from oxsync.store.timeranges import candidates, family_ids
from oxsync.store.tx import Tx
from oxsync.store.viewer import CHUNK, Viewer


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for k in range(0, len(values), CHUNK):
        yield values[k:k + CHUNK]


class BulkReads:
    """Reads of many objects of one folder by the viewer's user, in the viewer's transaction."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.tx = viewer.tx

    def _visible_objects(self, folder_id: int, ids: Iterable[int], light: bool = False) -> list[Any]:
        """The objects among `ids` that are in `folder_id` and readable there, in id order
        (`light`: as `ObjectVersion`s, nothing decoded)."""
        wanted = sorted(set(ids))
        if not light:
            return self._visible_loaded(folder_id, wanted)
        return visible_versions(self.viewer, folder_id, wanted)

    def _visible_loaded(self, folder_id: int, wanted: list[int]) -> list[Any]:
        """`_visible_objects` of whole objects: their rows and side tables are read once, and the
        participants loaded with them tell the folders an object is in and who may read a private one."""
        rows = self.viewer.rows_by_id(wanted)
        by_id = {int(r.id): r for r in rows}
        loaded = object_ops.load_objects(self.tx, rows, {i: folder_id for i in by_id})
        return [obj for obj in loaded if self._visible(folder_id, by_id[obj.stored_id], obj)]

    def _visible(self, folder_id: int, row: Any, obj: Any) -> bool:
        """`obj` (decoded from `row`) is in `folder_id` (at home or placed there for a participant) and this
        user may read it there; personalises it when so."""
        parts = getattr(obj, "participants", [])
        if row.folder_id != folder_id and not any(p.folder_id == folder_id for p in parts):
            return False
        readers = {row.id: {p.entity for p in parts if p.kind == ParticipantKind.USER}}
        if not self.viewer.can_read(row.private, row.created_by, row.id, self.viewer.rights(folder_id), readers):
            return False
        self.viewer.personalised(obj)
        return True

    def written_object(self, folder_id: int, object_id: int) -> Any | None:
        """What `objects_by_ids(folder_id, [object_id])` answers for an object this transaction just wrote,
        decoded from what it wrote instead of read back (`objects.written_object`; read when that is not
        known): a DAV PUT's answer and served text come from it (tests/test_written_object.py checks both
        are equal)."""
        self.viewer.object_folder(folder_id)
        found = object_ops.written_object(self.tx, object_id, {object_id: folder_id})
        if found is None:
            return self.objects_by_ids(folder_id, [object_id]).get(object_id)
        row, obj = found
        return obj if self._visible(folder_id, row, obj) else None

    def objects_by_resource_names(self, folder_id: int, names: Sequence[str], light: bool = False) -> dict[str, Any]:
        """name -> the visible object of `folder_id` with that DAV resource name (names not found are absent)."""
        self.viewer.object_folder(folder_id)
        o = s.objects
        if light:  # the rows carry name, version and home folder: one statement per chunk of names
            rows: dict[int, Any] = {}
            for chunk in _chunks(sorted(set(names))):
                rows.update({int(r.id): r for r in self.tx.conn.execute(select(*_MEMBER_COLUMNS).where(
                    and_(o.c.tenant_id == self.tx.tenant_id, o.c.resource_name.in_(chunk))))})
            versions = _readable_versions(self.viewer, folder_id, in_folder(self.tx, folder_id, rows))
            return {v.resource_name: v for v in reversed(versions)}  # the lowest id of a name, as below
        ids_by_name: dict[int, str] = {}
        query = _ids_by_name(self.tx.conn.dialect.name == "postgresql")
        for chunk in _chunks(sorted(set(names))):
            for row in self.tx.conn.execute(query, {"k_tenant": self.tx.tenant_id, "names": chunk}):
                ids_by_name[int(row.id)] = row.resource_name
        found: dict[str, Any] = {}
        for obj in self._visible_objects(folder_id, ids_by_name, light):
            found.setdefault(ids_by_name[obj.object_id], obj)
        return found

    def objects_by_ids(self, folder_id: int, ids: Iterable[int], light: bool = False) -> dict[int, Any]:
        """id -> the visible object of `folder_id` (ids not found or not readable are absent)."""
        self.viewer.object_folder(folder_id)
        return {obj.object_id: obj for obj in self._visible_objects(folder_id, ids, light)}

    def series_members(self, folder_id: int, series_ids: Iterable[int], light: bool = False,
                       known: Iterable[ObjectVersion] = ()) -> list[Any]:
        """Every visible object of `folder_id` belonging to these series: each master (the object with
        that id, a series or the first of master-less overrides) and its change exceptions, in id order.
        `known` (light only): versions this viewer already read visible in this folder in this transaction,
        returned as they are instead of being read again (a multiget's masters)."""
        self.viewer.object_folder(folder_id)
        ids = family_ids(self.tx, series_ids)
        if not light:
            return self._visible_objects(folder_id, ids, light)
        have = {v.object_id: v for v in known if v.object_id in ids}
        found = [*have.values(), *visible_versions(self.viewer, folder_id, ids - have.keys())]
        return sorted(found, key=lambda v: v.object_id)

    def list_versions(self, folder_id: int) -> list[ObjectVersion]:
        """Id, DAV resource name, version and series of every readable object of the folder, decoding
        nothing (PROPFIND Depth 1 and initial sync listings)."""
        return list_versions(self.viewer, folder_id)

    def member_page(self, folder_id: int, after: int, limit: int, series: bool = True) -> MemberPage:
        """The folder's readable objects with ids above `after`, at most `limit` rows read, as versions,
        and what grouping them into resources needs from outside that id range (see `MemberPage`)."""
        return member_page(self.viewer, folder_id, after, limit, series)

    def list_objects_in_range(self, folder_id: int, start_ms: int | None, end_ms: int | None,
                              light: bool = False) -> list[Any]:
        """The folder's visible objects that may have an instance in [start_ms, end_ms) (None = open),
        chosen by the time-range index: a superset the caller filters exactly, never missing a match.
        A series comes whole (master and change exceptions). Rights and redaction as `list_objects`."""
        return self.objects_in_range(folder_id, start_ms, end_ms, light)[0]

    def objects_in_range(self, folder_id: int, start_ms: int | None, end_ms: int | None, light: bool = False,
                         kind: str | None = None) -> tuple[list[Any], set[int]]:
        """`list_objects_in_range`, and the ids of those whose overlap the index decides: objects of
        `kind` (e.g. "appointment") with an exact row in the range (store/timeranges.py) match a
        time-range filter on that component without being parsed."""
        self.viewer.object_folder(folder_id)
        ids, decided = candidates(self.tx, folder_id, start_ms, end_ms, kind)
        return self._visible_objects(folder_id, ids, light), decided


class ObjectVersion(NamedTuple):
    """What a listing needs of an object, without decoding it: its DAV name, version and series (a
    named tuple: a listing makes one per member, and a tuple is made several times faster than a
    frozen dataclass)."""

    object_id: int
    resource_name: str
    last_modified: int
    recurrence_id: int | None
    """The series an appointment belongs to (its own id for a master), None otherwise."""


_VERSION_COLUMNS = (s.objects.c.id, s.objects.c.private, s.objects.c.created_by, s.objects.c.resource_name,
                    s.objects.c.last_ms, s.objects.c.series_id)
_MEMBER_COLUMNS = (*_VERSION_COLUMNS, s.objects.c.folder_id)
"""`_VERSION_COLUMNS` and the home folder, which decides membership without the participants of most rows."""


def _readable_versions(viewer: Viewer, folder_id: int, rows: dict[int, Any]) -> list[ObjectVersion]:
    """`ObjectVersion`s of the rows (id -> row of _VERSION_COLUMNS) the user may read, in id order."""
    rights = viewer.rights(folder_id)
    me = viewer.user_id
    readable = {True: rights.can_read(True), False: rights.can_read(False)}  # by "created by me"
    out: list[ObjectVersion] = []
    private: list[int] = []
    doubtful: list[int] = []  # positions in `out` of private objects of others: readable by participants only
    for i, (_, is_private, created_by, name, last_ms, series_id, *_) in sorted(rows.items()):
        if is_private:
            private.append(i)
        if readable[created_by == me]:  # as Viewer.can_read, with the rights looked up once per ownership
            if is_private and created_by != me:
                doubtful.append(len(out))
            out.append(ObjectVersion(i, name or "", int(last_ms), None if series_id is None else int(series_id)))
    participants = viewer.participant_users(private) if private else {}
    if doubtful:
        hidden = {k for k in doubtful if me not in participants.get(out[k].object_id, ())}
        out = [version for k, version in enumerate(out) if k not in hidden]
    return out


def visible_versions(viewer: Viewer, folder_id: int, ids: Iterable[int]) -> list[ObjectVersion]:
    """`ObjectVersion`s of the objects among `ids` that are in `folder_id` and readable there, in id order
    (statements per 500-id chunk: their rows; the participants of those not at home in the folder and of
    private ones, only if there are such)."""
    tx = viewer.tx
    o = s.objects
    rows: dict[int, Any] = {}
    for chunk in _chunks(sorted(set(ids))):
        rows.update({int(r.id): r for r in tx.conn.execute(select(*_MEMBER_COLUMNS).where(
            and_(o.c.tenant_id == tx.tenant_id, ids_in(tx, o.c.id, chunk)))).all()})
    return _readable_versions(viewer, folder_id, in_folder(tx, folder_id, rows))


def in_folder(tx: Tx, folder_id: int, rows: dict[int, Any]) -> dict[int, Any]:
    """The rows (any with `folder_id`: `_MEMBER_COLUMNS`, whole object rows) of objects in `folder_id`: at
    home there, or placed there for a participant (as `folders_of_objects` decides; participants are
    read only for the rows not at home)."""
    inside = {i: r for i, r in rows.items() if r.folder_id == folder_id}
    p = s.participants
    for chunk in _chunks(sorted(set(rows) - set(inside))):
        # by object id only (the primary key), as folders_of_objects does, for the same reason
        for row in tx.conn.execute(select(p.c.object_id, p.c.folder_id).where(
                and_(p.c.tenant_id == tx.tenant_id, ids_in(tx, p.c.object_id, chunk)))):
            if row.folder_id == folder_id:
                inside[int(row.object_id)] = rows[int(row.object_id)]
    return inside


def list_versions(viewer: Viewer, folder_id: int) -> list[ObjectVersion]:
    """Every readable object of the folder as an `ObjectVersion`, in id order: one query for the
    folder's rows (home and participant folders), one more only if some are private."""
    viewer.object_folder(folder_id)
    tx = viewer.tx
    o, p = s.objects, s.participants
    home = select(*_VERSION_COLUMNS).where(and_(o.c.tenant_id == tx.tenant_id, o.c.folder_id == folder_id))
    guest = select(*_VERSION_COLUMNS).select_from(  # meetings whose home is another folder: no duplicate to sort out
        p.join(o, and_(o.c.tenant_id == p.c.tenant_id, o.c.id == p.c.object_id))).where(
        and_(p.c.tenant_id == tx.tenant_id, p.c.folder_id == folder_id, o.c.folder_id != folder_id))
    rows = tx.conn.execute(union_all(home, guest)).all()  # fetched at once: row by row costs ~5 us each
    return _readable_versions(viewer, folder_id, {int(r[0]): r for r in rows})


class MemberPage(NamedTuple):
    """One keyset page of a folder's listing: the readable members among the folder's rows with ids in
    (after, last], and the readable versions of the folder outside that range that grouping them into
    series needs: the change exceptions of the page's series masters, and the masters of the page's
    exceptions. A listing holds one page at a time, whatever the folder's size."""

    versions: list[ObjectVersion]
    """In id order."""
    family: list[ObjectVersion]
    last: int | None
    """The highest id read (the next page's `after`); None when no folder row is left above it."""


_NO_ID_ABOVE = 2 ** 62
"""Above every object id."""


def member_page(viewer: Viewer, folder_id: int, after: int, limit: int, series: bool = True) -> MemberPage:
    """The next `limit` rows of the folder (home and participant folders) with ids above `after`, in id
    order, read by key (`id > after ORDER BY id LIMIT limit`: ix_objects_folder and
    ix_participants_folder_object end with the id), so paging through a folder reads each row once. One
    statement, one more only if some rows are private; `series` (calendars and task folders): one more
    for the exceptions of the page's masters whose ids lie outside the page (by ix_objects_series, a
    range of series ids), and reads of the versions outside the page only when there are such."""
    viewer.object_folder(folder_id)
    tx = viewer.tx
    o, p = s.objects, s.participants
    in_range = and_(o.c.tenant_id == tx.tenant_id, o.c.folder_id == folder_id, o.c.id > after)
    home = select(*_VERSION_COLUMNS).where(in_range).order_by(o.c.id).limit(limit)
    # a full home page ends the page at its last id: the guests' walk stops there too (the owner's own
    # participant rows of every home object share the folder index; walking them to the folder's end
    # would cost the folder's size again on every page)
    home_ids = select(o.c.id).where(in_range).order_by(o.c.id).limit(limit).subquery()
    bound = select(case((func.count() == limit, func.max(home_ids.c.id)), else_=_NO_ID_ABOVE)).scalar_subquery()
    guest = select(*_VERSION_COLUMNS).select_from(  # by ix_participants_folder_object
        p.join(o, and_(o.c.tenant_id == p.c.tenant_id, o.c.id == p.c.object_id))).where(
        and_(p.c.tenant_id == tx.tenant_id, p.c.folder_id == folder_id, p.c.object_id > after,
             p.c.object_id <= bound, o.c.folder_id != folder_id)).order_by(p.c.object_id).limit(limit)
    both = union_all(select(home.subquery()), select(guest.subquery())).subquery()
    rows = tx.conn.execute(select(both).order_by(both.c.id).limit(limit)).all()
    if not rows:
        return MemberPage([], [], None)
    last = int(rows[-1][0])
    versions = _readable_versions(viewer, folder_id, {int(r[0]): r for r in rows})
    family: list[ObjectVersion] = []
    if series:
        masters = {v.object_id for v in versions if v.recurrence_id in (None, v.object_id)}
        outside: set[int] = set()
        if masters:  # exceptions of the page's masters with ids outside the page
            outside.update(int(i) for i, series_id in tx.conn.execute(select(o.c.id, o.c.series_id).where(and_(
                o.c.tenant_id == tx.tenant_id, o.c.series_id > after, o.c.series_id <= last,
                or_(o.c.id <= after, o.c.id > last)))) if int(series_id) in masters and int(i) != int(series_id))
        # masters outside the page of the page's exceptions (to tell an exception of a series listed on
        # another page from one whose master is not visible here, a resource of its own)
        outside.update(v.recurrence_id for v in versions
                       if v.recurrence_id is not None and not after < v.recurrence_id <= last)
        if outside:
            family = visible_versions(viewer, folder_id, outside)
    return MemberPage(versions, family, last if len(rows) == limit else None)


# ------------------------------------------------------------------ served-text cache


class ServedTexts:
    """Per viewer cache of served texts (table object_texts).

    The caller names a resource's version (its newest change, its members, the renderer's generation):
    a text is served only while its version is current, so no write path has to invalidate it.
    Entries can be recorded in a read transaction: they are written after it commits, best effort
    (a busy database skips them)."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id

    def cached_texts(self, object_ids: Iterable[int]) -> dict[tuple[int, str], tuple[str, str]]:
        """(object id, variant) -> (version, text) cached for this user."""
        t = s.object_texts
        out: dict[tuple[int, str], tuple[str, str]] = {}
        # an object written by this transaction has a version no cached text can carry yet
        for chunk in _chunks(sorted(set(object_ids) - self.tx.written_objects)):
            for row in self.tx.conn.execute(select(t.c.object_id, t.c.variant, t.c.version, t.c.text).where(and_(
                    t.c.tenant_id == self.tx.tenant_id, t.c.viewer_id == self.user_id, t.c.object_id.in_(chunk)))):
                out[(int(row.object_id), row.variant)] = (row.version, row.text)
        return out

    def remember_texts(self, entries: list[tuple[int, str, str, str]]) -> None:
        """Cache (object id, variant, version, text) for this user: now in a write transaction, else
        after this read transaction commits."""
        if not entries:
            return
        if self.tx.writable:
            rows = text_rows(self.tx.conn, self.tx.tenant_id, self.user_id, entries, exist=self.tx.written_objects)
            if self.tx.late_stamp:  # PostgreSQL: at the end, with the NOTIFY (Tx.closing_texts)
                self.tx.closing_texts.update({(r["object_id"], r["viewer_id"], r["variant"]): r for r in rows})
            elif rows:
                self.tx.conn.execute(_upsert_texts(self.tx.conn.dialect.name), rows)
            self.tx.texts_written.update(entry[0] for entry in entries)
        else:
            self.tx.after_commit.append(lambda conn: write_texts(conn, self.tx.tenant_id, self.user_id, entries))


@functools.cache
def _ids_by_name(postgresql: bool) -> Any:
    """(id, resource name) of the tenant's objects with these names (bound as `names`), built once per
    dialect: every DAV request on an object resolves its name with it."""
    o = s.objects
    return select(o.c.id, o.c.resource_name).where(and_(o.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                                         ids_bound(o.c.resource_name, "names", postgresql)))


def write_texts(conn: Any, tenant_id: int, viewer_id: int, entries: list[tuple[int, str, str, str]],
                exist: Collection[int] = ()) -> None:
    """Upsert the entries whose object still exists (`exist`: ids known to, e.g. written by this
    transaction; the others are checked): one statement, two when some existence is unknown."""
    rows = text_rows(conn, tenant_id, viewer_id, entries, exist)
    if rows:
        conn.execute(_upsert_texts(conn.dialect.name), rows)


def text_rows(conn: Any, tenant_id: int, viewer_id: int, entries: list[tuple[int, str, str, str]],
              exist: Collection[int] = ()) -> list[dict[str, Any]]:
    """The `object_texts` rows of the entries (the latest of each key) whose object still exists (`exist`:
    known to; the others are checked, one statement per chunk)."""
    latest = {(object_id, variant): (version, text) for object_id, variant, version, text in entries}
    unknown = sorted({k[0] for k in latest} - set(exist))
    existing = set(exist)
    for chunk in _chunks(unknown):
        existing.update(int(i) for (i,) in conn.execute(select(s.objects.c.id).where(
            and_(s.objects.c.tenant_id == tenant_id, s.objects.c.id.in_(chunk)))))
    return [{"tenant_id": tenant_id, "object_id": k[0], "viewer_id": viewer_id, "variant": k[1], "version": v[0],
             "text": v[1]} for k, v in latest.items() if k[0] in existing]


_TEXT_COLUMNS = ("object_id", "viewer_id", "variant", "version", "text")


def with_closing_texts(tx: Tx, statement: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`statement` (a SELECT) with the upsert of `tx.closing_texts` as a data-modifying WITH, and its
    parameters (t_<column>: one array per column), or `statement` as it is when none wait; hands them over."""
    if not tx.closing_texts:
        return statement, params
    rows, tx.closing_texts = list(tx.closing_texts.values()), {}
    arrays = {f"t_{name}": [row[name] for row in rows] for name in _TEXT_COLUMNS}
    return _with_texts(statement), {**params, "t_tenant": tx.tenant_id, **arrays}


@functools.cache
def _with_texts(statement: Any) -> Any:
    """`statement` with the texts' upsert as a WITH, built once per statement (`with_closing_texts`)."""
    return statement.add_cte(_upsert_text_arrays().cte("texts"))


def write_closing_texts(tx: Tx) -> None:
    """Before COMMIT: upsert the texts of `tx.closing_texts` that no NOTIFY took along."""
    if tx.closing_texts:
        rows, tx.closing_texts = list(tx.closing_texts.values()), {}
        tx.conn.execute(_upsert_texts(tx.conn.dialect.name), rows)


@functools.cache
def _upsert_text_arrays() -> Any:
    """PostgreSQL: the served texts' upsert from one array per column (parameters t_tenant, t_<column>), to
    join another statement as a data-modifying WITH; built once."""
    t = s.object_texts
    arrays = [func.unnest(bindparam(f"t_{name}", type_=postgresql.ARRAY(t.c[name].type))) for name in _TEXT_COLUMNS]
    rows = select(bindparam("t_tenant", type_=Integer), *arrays)
    upsert = postgresql.insert(t).from_select(["tenant_id", *_TEXT_COLUMNS], rows)
    return upsert.on_conflict_do_update(index_elements=[t.c.tenant_id, t.c.object_id, t.c.viewer_id, t.c.variant],
                                        set_={"version": upsert.excluded.version, "text": upsert.excluded.text})


@functools.cache
def _upsert_texts(dialect: str) -> Any:
    """The served texts' upsert, built once per dialect (every DAV write and every text fill runs it)."""
    t = s.object_texts
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t)
    return upsert.on_conflict_do_update(index_elements=[t.c.tenant_id, t.c.object_id, t.c.viewer_id, t.c.variant],
                                        set_={"version": upsert.excluded.version, "text": upsert.excluded.text})
