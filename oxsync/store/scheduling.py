"""Time-based questions over appointments: conflicts on save, and free/busy.

Both expand recurring series with `oxsync.recurrence.expand`, bounded by the configured window
and instance cap, so a hostile rule cannot stall a save. Declined participations and appointments
shown as free never block time. Private appointments count, without their title.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, union_all
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from oxsync.model import Appointment, Module, ShownAs
from oxsync.model.appointment import Confirmation, ParticipantKind
from oxsync.model.timeutil import to_ms
from oxsync.recurrence import expand
from oxsync.skips import note_skipped
from oxsync.store import budget, objects
from oxsync.store import schema as s
from oxsync.store.tx import Tx

Interval = tuple[datetime, datetime]


@dataclass
class ConflictItem:
    object_id: int
    title: str
    """Empty when the appointment is private and the viewer may not see its details."""
    start: datetime
    end: datetime
    full_time: bool
    hard: bool


@dataclass
class BusyPeriod:
    start: datetime
    end: datetime
    shown_as: ShownAs


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def intervals(tx: Tx, appt: Appointment, low: datetime, high: datetime) -> list[Interval]:
    """The appointment's occurrences overlapping [low, high), as UTC datetimes."""
    if appt.start_date is None:
        return []
    start = _as_datetime(appt.start_date)
    end = _as_datetime(appt.end_date) if appt.end_date is not None else start
    if not appt.is_series:
        return [(start, end)] if start < high and end > low else []
    assert appt.recurrence is not None
    skip = set(appt.delete_exceptions) | set(appt.change_exceptions)
    limits = tx.settings.limits
    occurrences = expand(appt.start_date, appt.end_date, appt.recurrence, appt.timezone or "UTC",
                         window_start=low, window_end=high, max_instances=limits.max_recurrence_instances,
                         delete_exceptions=skip)
    budget.charge(len(occurrences))
    return [(_as_datetime(a), _as_datetime(b)) for a, b in occurrences]


def _other_intervals(tx: Tx, appt: Appointment, low: datetime, high: datetime, what: str) -> list[Interval]:
    """`intervals` of a stored appointment someone else's request meets: one that cannot be expanded
    (a row written before the store's checks) is left out with one log line, never failing the request."""
    try:
        return intervals(tx, appt, low, high)
    except Exception as exc:  # noqa: BLE001 - isolate the one object
        note_skipped(what, exc, object_id=appt.object_id, folder_id=appt.folder_id)
        return []


def _window(tx: Tx) -> Interval:
    now = datetime.now(UTC)
    limits = tx.settings.limits
    return now - timedelta(days=limits.recurrence_window_past_days), now + timedelta(days=limits.recurrence_window_future_days)


class _Unindexed(ColumnElement[Any]):
    """A column no index may serve on SQLite: there it is written `+column`, SQLite's documented way to
    take a term out of index selection; as is elsewhere (PostgreSQL plans on statistics)."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(_Unindexed)
def _as_is(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(_Unindexed, "sqlite")
def _unary_plus(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))


def _unindexed_time(o: Any) -> tuple[ColumnElement[bool], ColumnElement[Any]]:
    """The terms of an appointment row's kind and time, kept from SQLite's index selection: a free/busy
    or conflict question starts from the asked users' and resources' side (participants by
    ix_participants_entity, their private calendar folders by ix_objects_folder) and reads the tenant's
    objects by primary key, so it costs their appointments, not the tenant's. Left indexable, SQLite
    (which keeps no statistics) walks ix_objects_range: every appointment of the tenant that starts
    before the window's end (bench/README z5-fbscale)."""
    return _Unindexed(o.c.kind) == "appointment", _Unindexed(o.c.start_ms)


def _asked_ids(tx: Tx, users: set[int], resources: set[int], *, declined: bool = False):
    """Ids of the appointments the users (not declined, unless `declined`) and resources take part in."""
    p = s.participants
    parts = []
    if users:
        user_terms = [p.c.tenant_id == tx.tenant_id, p.c.kind == int(ParticipantKind.USER), p.c.entity.in_(users)]
        if not declined:
            user_terms.append(p.c.confirmation != int(Confirmation.DECLINE))
        parts.append(select(p.c.object_id.label("id")).where(*user_terms))
    if resources:
        parts.append(select(p.c.object_id.label("id")).where(
            p.c.tenant_id == tx.tenant_id, p.c.kind == int(ParticipantKind.RESOURCE), p.c.entity.in_(resources)))
    return parts


def _candidate_rows(tx: Tx, users: set[int], resources: set[int], low: datetime, high: datetime, exclude: int | None):
    """Appointments that may block time for these users/resources in [low, high): those they take part
    in, and those in the users' own calendars (where the personal ones, without participants, are); one
    statement. A row of the second kind with participants blocks only them (`_blockers`): it is not
    told apart here, which would cost PostgreSQL an anti-join over the tenant's participants."""
    o, f = s.objects, s.folders
    parts = _asked_ids(tx, users, resources)
    if users:  # the users' own calendars, by folder
        homes = select(f.c.id).where(f.c.tenant_id == tx.tenant_id, f.c.owner_id.in_(users), f.c.type == "private",
                                     f.c.module == Module.CALENDAR.value)
        o2 = o.alias("home")
        parts.append(select(o2.c.id.label("id")).where(o2.c.tenant_id == tx.tenant_id, o2.c.folder_id.in_(homes)))
    if not parts:
        return []
    is_appointment, start_ms = _unindexed_time(o)
    query = select(o).where(
        o.c.tenant_id == tx.tenant_id, o.c.id.in_(union_all(*parts) if len(parts) > 1 else parts[0]),
        is_appointment, start_ms < to_ms(high), or_(o.c.range_end_ms.is_(None), o.c.range_end_ms > to_ms(low)),
        o.c.shown_as != int(ShownAs.FREE))
    if exclude is not None:
        query = query.where(o.c.id != exclude, or_(o.c.series_id.is_(None), o.c.series_id != exclude))
    return list(tx.conn.execute(query))


def _blockers(appt: Appointment, users: set[int], resources: set[int], owner_of_home: int | None) -> tuple[set[int], set[int]]:
    """Which of `users`/`resources` this existing appointment blocks."""
    blocked_users = {p.entity for p in appt.participants if p.kind == ParticipantKind.USER
                     and p.confirmation != Confirmation.DECLINE} & users
    blocked_resources = {p.entity for p in appt.participants if p.kind == ParticipantKind.RESOURCE} & resources
    if not appt.participants and owner_of_home in users:
        blocked_users.add(owner_of_home)
    return blocked_users, blocked_resources


def _home_owners(tx: Tx, folder_ids: set[int]) -> dict[int, int | None]:
    f = s.folders
    rows = tx.conn.execute(select(f.c.id, f.c.owner_id, f.c.type).where(and_(f.c.tenant_id == tx.tenant_id, f.c.id.in_(folder_ids))))
    return {r.id: (r.owner_id if r.type == "private" else None) for r in rows}


def _overlaps(a: list[Interval], b: list[Interval]) -> Interval | None:
    for start, end in a:
        for other_start, other_end in b:
            if start < other_end and other_start < end:
                return other_start, other_end
    return None


def find_conflicts(tx: Tx, viewer: int, appt: Appointment, owner_of_home: int | None) -> list[ConflictItem]:
    if appt.shown_as == ShownAs.FREE or appt.start_date is None:
        return []
    users = {p.entity for p in appt.participants if p.kind == ParticipantKind.USER and p.confirmation != Confirmation.DECLINE}
    if not appt.participants and owner_of_home is not None:
        users.add(owner_of_home)
    resources = {p.entity for p in appt.participants if p.kind == ParticipantKind.RESOURCE}
    low, high = _window(tx)
    mine = intervals(tx, appt, max(low, _as_datetime(appt.start_date)), high)
    if not mine:
        return []
    span_low, span_high = min(i[0] for i in mine), max(i[1] for i in mine)
    rows = _candidate_rows(tx, users, resources, span_low, span_high, appt.object_id)
    owners = _home_owners(tx, {r.folder_id for r in rows})
    found: list[ConflictItem] = []
    for other in objects.load_objects(tx, rows):
        assert isinstance(other, Appointment) and other.object_id is not None and other.folder_id is not None
        blocked_users, blocked_resources = _blockers(other, users, resources, owners.get(other.folder_id))
        if not blocked_users and not blocked_resources:
            continue
        hit = _overlaps(mine, _other_intervals(tx, other, span_low, span_high, "conflicts"))
        if hit is None:
            continue
        visible = not other.private_flag or other.created_by == viewer or viewer in {
            p.entity for p in other.participants if p.kind == ParticipantKind.USER}
        found.append(ConflictItem(other.object_id, other.title if visible else "", hit[0], hit[1], other.full_time,
                                  hard=bool(blocked_resources)))
    return sorted(found, key=lambda c: (c.start, c.object_id))


_RANK = {ShownAs.ABSENT: 3, ShownAs.RESERVED: 2, ShownAs.TEMPORARY: 1, ShownAs.FREE: 0}


def free_busy(tx: Tx, start: datetime, end: datetime, *, user_id: int | None = None,
              resource_id: int | None = None) -> list[BusyPeriod]:
    """Merged busy periods of one user or resource in [start, end), by type, oldest first.

    A user's tentative confirmation turns a reserved slot into a tentative one; declined ones do not count.
    """
    users = {user_id} if user_id is not None else set()
    resources = {resource_id} if resource_id is not None else set()
    rows = _candidate_rows(tx, users, resources, start, end, None)
    rows += _free_rows(tx, users, resources, start, end)
    owners = _home_owners(tx, {r.folder_id for r in rows})
    slots: list[BusyPeriod] = []
    for appt in objects.load_objects(tx, rows):
        assert isinstance(appt, Appointment) and appt.folder_id is not None
        blocked_users, blocked_resources = _blockers(appt, users, resources, owners.get(appt.folder_id))
        if appt.shown_as == ShownAs.FREE:
            blocked_users = users & ({p.entity for p in appt.participants} | {owners.get(appt.folder_id)})
        if not blocked_users and not blocked_resources:
            continue
        kind = appt.shown_as
        mine = next((p for p in appt.participants if p.kind == ParticipantKind.USER and p.entity == user_id), None)
        if kind == ShownAs.RESERVED and mine is not None and mine.confirmation == Confirmation.TENTATIVE:
            kind = ShownAs.TEMPORARY
        for a, b in _other_intervals(tx, appt, start, end, "freebusy"):
            slots.append(BusyPeriod(max(a, start), min(b, end), kind))
    return _merge(slots)


def _free_rows(tx: Tx, users: set[int], resources: set[int], start: datetime, end: datetime) -> list:
    """Appointments shown as free are reported too (type free), though they never conflict: those the users
    take part in (declined too) or created."""
    o = s.objects
    if not users:
        return []
    is_appointment, start_ms = _unindexed_time(o)
    o2 = o.alias("created")
    mine = select(o2.c.id.label("id")).where(o2.c.tenant_id == tx.tenant_id, o2.c.created_by.in_(users),
                                             _Unindexed(o2.c.kind) == "appointment")
    query = select(o).where(
        o.c.tenant_id == tx.tenant_id, o.c.id.in_(union_all(*_asked_ids(tx, users, set(), declined=True), mine)),
        is_appointment, o.c.shown_as == int(ShownAs.FREE),
        start_ms < to_ms(end), or_(o.c.range_end_ms.is_(None), o.c.range_end_ms > to_ms(start)),
    )
    return list(tx.conn.execute(query))


def _merge(slots: list[BusyPeriod]) -> list[BusyPeriod]:
    """Merge overlapping periods of the same type; keep different types apart."""
    merged: list[BusyPeriod] = []
    for kind in sorted({slot.shown_as for slot in slots}, key=lambda k: -_RANK[k]):
        current: BusyPeriod | None = None
        for slot in sorted((x for x in slots if x.shown_as == kind), key=lambda x: x.start):
            if current is not None and slot.start <= current.end:
                current.end = max(current.end, slot.end)
            else:
                current = BusyPeriod(slot.start, slot.end, kind)
                merged.append(current)
    return sorted(merged, key=lambda x: (x.start, -_RANK[x.shown_as]))
