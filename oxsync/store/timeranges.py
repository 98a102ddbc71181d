"""The time-range index of events and tasks (table `object_ranges`), kept on every write.

A calendar-query with a time range selects its candidates here in SQL and parses only those (Apple's
CalendarServer keeps the same kind of index). What must hold: the rows of an object cover every moment
at which any instance of it can overlap a query window, as the DAV filter evaluates it on the served
iCalendar (so no object that matches is ever missed); they may cover more (the filter decides).

- One row per object: [first start, last end] of a plain event or task, padded by PAD_MS because
  floating and all-day values are served without a zone and may be read in any zone. NULL = open.
- A task without start and due matches every range (RFC 4791 §9.9): one fully open row.
- A series: its instances inside the configured expansion window (recurrence_window_past/future_days)
  merged into at most MAX_SERIES_ROWS rows (instances closer than MERGE_GAP_MS share a row), plus one row
  for whatever lies before the window and one for whatever lies after it (open for endless series).
  Instances are never removed for delete or change exceptions (a change exception has rows of its own).
The window is the one at write time; outside it the rows are conservative, so they stay correct as
time passes and only lose precision.

Exact rows (`exact` = true): a plain timed event (not recurring, not part of a series, DTSTART before
DTEND, both in UTC or an IANA zone, as the served text says them) gets one unpadded row [start, end)
that decides a VEVENT time-range filter by itself: overlapping it IS a match (RFC 4791 §9.9 for an
event with DTEND: start < DTEND and end > DTSTART), so a calendar-query serves such objects without
parsing them. Every other row stays conservative (a superset the filter decides on the text).
A DAILY/WEEKLY series without exceptions (`series_rows`) gets one exact row per instance inside the
expansion window and conservative rows around them, so a query inside the window parses none.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic as time_now
from typing import Any
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar
from sqlalchemy import Integer, Select, and_, bindparam, delete, insert, or_, select, text, true, union_all

from oxsync.config import LimitSettings
from oxsync.formats.kept import SOURCE
from oxsync.formats.timezones import iana_name
from oxsync.model import Appointment, Contact, RecurrenceType, Task
from oxsync.model.timeutil import to_ms
from oxsync.recurrence import expand, series_end
from oxsync.store import schema as s
from oxsync.store.tx import Tx

PAD_MS = 26 * 3_600_000
"""Leeway around every row: the widest UTC offset spread (-12 to +14) for floating and all-day values."""
DAY_MS = 86_400_000
MERGE_GAP_MS = 8 * DAY_MS
"""Series instances closer than this share one row (a weekly series is one row per window part)."""
MAX_SERIES_ROWS = 24
SHORT_MS = 8 * DAY_MS
"""Rows closed at both ends and at most this long are `long_span` = false: a query finds them by a range
of their start ([query start - SHORT_MS, query end)) on ix_object_ranges_start; the others it scans.
An exact instance row, a padded plain event and a merged week of a series are short."""

Span = tuple[int | None, int | None]
Row = tuple[int | None, int | None, bool]
"""(start ms, end ms, exact)."""


def spans(obj: Contact | Appointment | Task, limits: LimitSettings, now: datetime | None = None) -> list[Span]:
    """The index rows of `obj` (empty for contacts)."""
    if isinstance(obj, Contact):
        return []
    start, end = obj.start_date, obj.end_date
    if start is None and end is None:
        return [(None, None)]
    if isinstance(obj, Task) and (start is None or end is None):
        first = to_ms(start if start is not None else end)
        assert first is not None
        last: int | None = first
    else:
        first = to_ms(start)
        last = to_ms(end) if end is not None else None
        if first is None:  # an event without start: nothing to bound it by
            return [(None, None)]
        last = max(last if last is not None else first, first) + (DAY_MS if end is None else 0)
    recurrence = obj.recurrence
    if recurrence is None or recurrence.type == RecurrenceType.NONE or start is None:
        return [_pad(first, last)]
    if isinstance(obj, Task):  # tasks recur from start; keep it simple and open-ended
        return [_pad(min(first, last or first), None)]
    return _series_spans(obj, first, last or first, limits, now or datetime.now(UTC))


def _series_spans(obj: Appointment, first: int, first_end: int, limits: LimitSettings, now: datetime) -> list[Span]:
    assert obj.recurrence is not None and obj.start_date is not None
    tz = obj.timezone or "UTC"
    duration = max(first_end - first, DAY_MS)
    low = now - timedelta(days=limits.recurrence_window_past_days)
    high = now + timedelta(days=limits.recurrence_window_future_days)
    low_ms, high_ms = to_ms(low), to_ms(high)
    assert low_ms is not None and high_ms is not None
    try:
        ending = series_end(obj.start_date, obj.end_date, obj.recurrence, tz)
        last_end = to_ms(ending) if ending is not None else None
        instances = expand(obj.start_date, obj.end_date, obj.recurrence, tz, window_start=low, window_end=high,
                           max_instances=limits.max_recurrence_instances)
    except Exception:  # noqa: BLE001 - a rule we cannot expand is indexed as one open span
        return [_pad(first, None)]
    rows: list[Span] = []
    if first < low_ms:
        rows.append((first, low_ms + duration))
    tail_from = high_ms
    if len(instances) >= limits.max_recurrence_instances and instances:
        tail_from = to_ms(instances[-1][0]) or high_ms  # cut by the instance cap: the rest stays open
    merged: list[list[int]] = []
    for begin, finish in instances:
        b, f = to_ms(begin), to_ms(finish)
        assert b is not None and f is not None
        f = max(f, b + (DAY_MS if begin == finish else 0))
        if merged and b - merged[-1][1] < MERGE_GAP_MS:
            merged[-1][1] = max(merged[-1][1], f)
        else:
            merged.append([b, f])
    while len(merged) > MAX_SERIES_ROWS:  # close the smallest gap until the row budget holds
        gap = min(range(len(merged) - 1), key=lambda k: merged[k + 1][0] - merged[k][1])
        merged[gap][1] = max(merged[gap][1], merged[gap + 1][1])
        del merged[gap + 1]
    rows.extend((b, f) for b, f in merged)
    if first >= low_ms and not any(b <= first and first_end <= f for b, f in merged):
        rows.append((first, first_end))  # DTSTART is an instance even off the rule's pattern (RFC 5545)
    if last_end is None or last_end > tail_from:
        rows.append((max(first, tail_from - duration), last_end))
    return [_pad(b, f) for b, f in rows] or [_pad(first, first_end)]


def rows(obj: Contact | Appointment | Task, limits: LimitSettings, now: datetime | None = None) -> list[Row]:
    """The index rows of `obj`: its exact rows if it has them, else its conservative spans (those made
    ahead for the same inputs, `rows_ahead`, if any)."""
    if now is None and _ahead and not isinstance(obj, Contact):
        found = _take_ahead(_inputs(obj, limits))
        if found is not None:
            return found
    return _rows(obj, limits, now)


def _rows(obj: Contact | Appointment | Task, limits: LimitSettings, now: datetime | None = None) -> list[Row]:
    exact = exact_span(obj)
    if exact is not None:
        return [(exact[0], exact[1], True)]
    found = series_rows(obj, limits, now or datetime.now(UTC))
    if found is not None:
        return found
    return [(b, e, False) for b, e in spans(obj, limits, now)]


AHEAD_KEPT = 64
"""Rows made ahead (`rows_ahead`) kept at most: a write that does not come (an error before it) leaves
its entry, the oldest go first."""
AHEAD_MAX_AGE_S = 10.0
"""Rows made ahead are used this long: their expansion window is the one of that moment, not the write's
(rows stay correct as time passes, see above; this keeps them as precise)."""
_ahead: deque[tuple[float, tuple[Any, ...], list[Row]]] = deque(maxlen=AHEAD_KEPT)
_ahead_lock = threading.Lock()


def rows_ahead(obj: Appointment | Task, limits: LimitSettings) -> None:
    """Make `obj`'s index rows before its write transaction (SQLite: outside the writer's turn, as
    dav/preparse.py does for a CalDAV PUT), for the write's `rows` to take if it writes the same inputs."""
    found = _rows(obj, limits)
    with _ahead_lock:
        _ahead.append((time_now(), _inputs(obj, limits), found))


def _take_ahead(key: tuple[Any, ...]) -> list[Row] | None:
    with _ahead_lock:
        for entry in _ahead:
            if entry[1] == key:
                _ahead.remove(entry)
                return entry[2] if time_now() - entry[0] <= AHEAD_MAX_AGE_S else None
    return None


def _inputs(obj: Appointment | Task, limits: LimitSettings) -> tuple[Any, ...]:
    """Everything `_rows` reads of `obj` and `limits` (but the time): equal inputs, equal rows. The
    object's own id and series id only as `exact_span` and `series_rows` decide on them; times with
    their zones (equal datetimes may be in different zones)."""
    start, end = obj.start_date, obj.end_date
    series_id = getattr(obj, "recurrence_id", None)
    is_series = isinstance(obj, Appointment) and obj.is_series
    return (type(obj), start, getattr(start, "tzinfo", None), end, getattr(end, "tzinfo", None),
            getattr(obj, "timezone", None), getattr(obj, "full_time", None), getattr(obj, "recurrence", None),
            is_series, series_id not in (None, obj.object_id), series_id is not None and not is_series,
            list(getattr(obj, "change_exceptions", None) or ()), list(getattr(obj, "delete_exceptions", None) or ()),
            obj.extra.get(SOURCE), limits.recurrence_window_past_days, limits.recurrence_window_future_days,
            limits.max_recurrence_instances)


_WEEKDAY_BITS = (2, 4, 8, 16, 32, 64, 1)
"""OX weekday bit of date.weekday() (Monday 0 ... Sunday 6)."""
_RRULE_PART = re.compile(r"^(FREQ=(DAILY|WEEKLY)|COUNT=\d+|INTERVAL=\d+|BYDAY=(MO|TU|WE|TH|FR|SA|SU)|WKST=[A-Z]{2})$")


def series_rows(obj: Contact | Appointment | Task, limits: LimitSettings, now: datetime) -> list[Row] | None:
    """Rows of a series whose instances inside the expansion window the index can decide alone: one
    exact row [start, end) per instance in the window (the expanded instances, as CalendarServer keeps
    them), conservative rows for what lies before and after the window and for any instance whose
    wall-clock length the served text could read otherwise (it spans a UTC offset change, or starts
    at a local time that does not exist or exists twice). Endless and counted series alike.

    DAILY, or WEEKLY on its start's weekday, with COUNT or endless, no exceptions, in UTC or an IANA
    zone, a client's kept text saying the same in a rule of those parts only: computed from the model.
    Any other timed rule (MONTHLY, YEARLY, UNTIL, BY-parts) and deleted instances: only from a client's
    kept text (one VEVENT, one RRULE, EXDATEs, no RDATE/RECURRENCE-ID/DURATION) whose instances, read
    by the same expander the DAV filter uses, are the model's (`_served_alike`), at most
    CHECKED_INSTANCES in the window. Anything else, change exceptions included: None (the caller's
    conservative spans)."""
    if not isinstance(obj, Appointment) or obj.full_time or not obj.is_series or obj.change_exceptions \
            or obj.recurrence_id not in (None, obj.object_id):
        return None
    rec, start, end = obj.recurrence, obj.start_date, obj.end_date
    assert rec is not None
    if rec.interval < 1 or not isinstance(start, datetime) or not isinstance(end, datetime) \
            or start.tzinfo is None or end.tzinfo is None or end <= start:
        return None
    zone_name = iana_name(obj.timezone or "UTC")
    if zone_name is None:
        return None
    zone = ZoneInfo(zone_name)
    if not _clean_instance(start, end, zone):
        return None  # the first instance's wall-clock length is what every instance gets
    source = obj.extra.get(SOURCE)
    simple = not obj.delete_exceptions and rec.until is None \
        and (rec.type == RecurrenceType.DAILY and rec.days is None
             or rec.type == RecurrenceType.WEEKLY and rec.days in (None, _WEEKDAY_BITS[start.astimezone(zone).weekday()])) \
        and (source is None or _plain_source(str(source), zone_name, rule=True))
    if not simple and (source is None or not _plain_source(str(source), zone_name, rule=True, checked=True)):
        return None
    low, high = now - timedelta(days=limits.recurrence_window_past_days), \
        now + timedelta(days=limits.recurrence_window_future_days)
    low_ms, high_ms, first, first_end = to_ms(low), to_ms(high), to_ms(start), to_ms(end)
    assert low_ms is not None and high_ms is not None and first is not None and first_end is not None
    cap = limits.max_recurrence_instances
    try:
        found = expand(start, end, rec, zone_name, window_start=low, window_end=high, max_instances=cap,
                       delete_exceptions=obj.delete_exceptions)
        ending = series_end(start, end, rec, zone_name)
        served = None if simple else _served_alike(str(source), found, low, high)
    except Exception:  # noqa: BLE001 - not exact, the conservative rows will say it
        return None
    if not simple and served is None:
        return None
    if first >= low_ms and (not found or found[0][0] != start):
        return None  # DTSTART must be the first instance as the rule makes it
    duration = max(first_end - first, DAY_MS)
    wall_time = start.astimezone(zone).time()
    out: list[Row] = []
    if first < low_ms:
        out.append((*_pad(first, low_ms + duration), False))
    tail_from = high_ms
    if len(found) >= cap and found:
        tail_from = to_ms(found[-1][0]) or high_ms  # cut by the instance cap: the rest stays conservative
    for begin, finish in found:
        if not isinstance(begin, datetime) or not isinstance(finish, datetime):
            return None
        b, f = to_ms(begin), to_ms(finish)
        assert b is not None and f is not None
        clean = f > b and _clean_instance(begin, finish, zone, wall_time) and (served is None or served.get(b) == f)
        out.append((b, f, True) if clean else (*_pad(b, f), False))
    last_end = to_ms(ending) if ending is not None else None
    if last_end is None or last_end > tail_from:
        out.append((*_pad(max(first, tail_from - duration), last_end), False))
    return out


CHECKED_INSTANCES = 400
"""At most this many instances in the window are checked against the kept text (`_served_alike`):
the check builds one component per instance; a longer series keeps conservative rows."""


def _served_alike(source: str, found: list[tuple[datetime | date, datetime | date]], low: datetime,
                  high: datetime) -> dict[int, int] | None:
    """start ms -> end ms of the instances the DAV filter's expander (recurring_ical_events, as
    dav/filters.py reads the served text) finds in [low, high) of the kept text, if they start exactly
    when the model's `found` do; None otherwise or beyond CHECKED_INSTANCES."""
    if len(found) > CHECKED_INSTANCES:
        return None
    occurrences = recurring_ical_events.of(Calendar.from_ical(source), components=["VEVENT"]).between(low, high)
    served: dict[int, int] = {}
    for occ in occurrences:
        begin, finish = occ.get("DTSTART"), occ.get("DTEND")
        if begin is None or finish is None or not isinstance(begin.dt, datetime) or begin.dt.tzinfo is None \
                or not isinstance(finish.dt, datetime) or finish.dt.tzinfo is None:
            return None
        b, f = to_ms(begin.dt.astimezone(UTC)), to_ms(finish.dt.astimezone(UTC))
        assert b is not None and f is not None
        served[b] = f
    return served if sorted(served) == sorted(to_ms(b) or 0 for b, _ in found) else None


def _clean_instance(begin: datetime, finish: datetime, zone: ZoneInfo, wall_time: time | None = None) -> bool:
    """Whether an instance's UTC times are the ones a reader of its local wall times gets: one UTC offset
    from start to end (an expander adding the wall-clock length gets the same end), and a start that
    exists exactly once on the local clock at the series' time of day `wall_time` (no DST gap: a
    02:30 that does not exist comes back as 03:30; no repeated hour)."""
    local = begin.astimezone(zone)
    if local.utcoffset() != finish.astimezone(zone).utcoffset():
        return False
    if wall_time is not None and local.time() != wall_time:
        return False
    wall = local.replace(tzinfo=None)
    return wall.replace(tzinfo=zone, fold=0).utcoffset() == wall.replace(tzinfo=zone, fold=1).utcoffset()


_TIME = re.compile(r"^(DTSTART|DTEND)((?:;[^:]*)?):(\d{8}T\d{6}Z?)$", re.IGNORECASE)
_TZID = re.compile(r';TZID=("?)([^";:]+)\1(?=;|$)', re.IGNORECASE)
_UNSURE = ("DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")


def exact_span(obj: Contact | Appointment | Task) -> tuple[int, int] | None:
    """[start, end) in ms of an event whose time-range matches the index can decide, else None.

    The served text must read as the model does: our own rendering always does (UTC or the IANA zone of
    `timezone`); a client's kept text (`kept:source`, served verbatim while the model has not changed)
    only with DTSTART and DTEND in UTC or a TZID that is an IANA name, no DURATION, no recurrence, one
    VEVENT. Floating, all-day, zero-length and unparsable cases stay conservative."""
    if not isinstance(obj, Appointment) or obj.full_time or obj.is_series or obj.recurrence_id is not None \
            or obj.change_exceptions or obj.delete_exceptions:
        return None
    start, end = obj.start_date, obj.end_date
    if not isinstance(start, datetime) or not isinstance(end, datetime) or start.tzinfo is None \
            or end.tzinfo is None:
        return None
    first, last = to_ms(start), to_ms(end)
    if first is None or last is None or last <= first:
        return None
    zone_name = iana_name(obj.timezone or "UTC")
    if zone_name is None:
        return None
    zone = ZoneInfo(zone_name)
    if start.astimezone(zone).utcoffset() != end.astimezone(zone).utcoffset():
        return None  # across a DST change: an expander subtracting wall times gets another length
    source = obj.extra.get(SOURCE)
    if source is not None and not _plain_source(str(source), zone_name):
        return None
    return first, last


def _plain_source(text: str, zone: str, rule: bool = False, checked: bool = False) -> bool:
    """One VEVENT (no VTODO/VJOURNAL) with exactly one DTSTART and one DTEND, both in UTC or both in
    the IANA-named `zone`, and nothing that moves or repeats it (`rule`: but exactly one RRULE made of
    FREQ=DAILY|WEEKLY, COUNT, INTERVAL, one BYDAY and WKST only, counted or endless; `checked`: one
    RRULE of any parts and any EXDATEs, the instances being compared by `_served_alike`)."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    stack: list[str] = []
    events = 0
    seen: list[str] = []
    zones: set[str | None] = set()
    for line in unfolded.splitlines():
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            stack.append(upper[6:].strip())
            events += stack[-1] in ("VEVENT", "VTODO", "VJOURNAL")
            continue
        if upper.startswith("END:"):
            if stack:
                stack.pop()
            continue
        if not stack or stack[-1] != "VEVENT":
            continue
        name = re.split(r"[;:]", upper, maxsplit=1)[0]
        if checked and name == "EXDATE":
            continue
        if checked and name == "RRULE":
            seen.append(name)
            continue
        if rule and name == "RRULE":
            parts = upper.partition(":")[2].split(";")
            if upper[5:6] != ":" or not all(_RRULE_PART.match(part) for part in parts) \
                    or (any(part.startswith("BYDAY=") for part in parts) and "FREQ=WEEKLY" not in parts):
                return False
            seen.append(name)
            continue
        if name in _UNSURE:
            return False
        if name in ("DTSTART", "DTEND"):
            seen.append(name)
            zones.add(_zone_of(line))
    wanted = ["DTEND", "DTSTART", "RRULE"] if rule else ["DTEND", "DTSTART"]
    return events == 1 and sorted(seen) == wanted and len(zones) == 1 and zones <= {"UTC", zone}


def _zone_of(line: str) -> str | None:
    """"UTC" for a UTC time, the TZID of a zoned one if it is an IANA name; None otherwise."""
    found = _TIME.match(line)
    if found is None:
        return None
    params, value = found.group(2), found.group(3)
    tzid = _TZID.search(params)
    others = _TZID.sub("", params).strip(";")
    if others and others.upper() != "VALUE=DATE-TIME":
        return None
    if value.upper().endswith("Z"):
        return "UTC" if tzid is None else None
    return tzid.group(2) if tzid is not None and iana_name(tzid.group(2)) == tzid.group(2) else None


def _pad(begin: int | None, end: int | None) -> Span:
    return (None if begin is None else begin - PAD_MS, None if end is None else end + PAD_MS)


def table_rows(tenant_id: int, object_id: int | None, found: list[Row]) -> list[dict[str, object]]:
    """The `object_ranges` rows of an object's index rows (`rows`)."""
    return [{"tenant_id": tenant_id, "object_id": object_id, "position": k, "start_ms": b, "end_ms": e, "exact": x,
             "long_span": b is None or e is None or e - b > SHORT_MS} for k, (b, e, x) in enumerate(found)]


def write(tx: Tx, obj: Contact | Appointment | Task, *, replace: bool) -> None:
    """(Re)write the index rows of `obj` in this transaction."""
    if replace:
        tx.conn.execute(_CLEAR_RANGES, {"k_tenant": tx.tenant_id, "k_object": obj.object_id})
    found = rows(obj, tx.settings.limits)
    if found:
        tx.conn.execute(_INSERT_RANGES, table_rows(tx.tenant_id, obj.object_id, found))


_r = s.object_ranges
_CLEAR_RANGES = delete(_r).where(and_(_r.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                      _r.c.object_id == bindparam("k_object", type_=Integer)))
"""Built once, as `_INSERT_RANGES`: every write of an event or task runs them."""
_INSERT_RANGES = insert(_r)


STATISTICS_SHARE = 0.2
"""A bulk write adding this share of `object_ranges`' or of `objects`' rows (as PostgreSQL last counted
them) analyzes the tables a bulk load writes, in the writing transaction: planned without statistics
(autovacuum takes up to a minute to get there, and then analyzes them while clients are served) the
candidate query walks every row of the folder's series, or worse. A load of contacts (no index rows)
counts by its objects."""
_ANALYZED = "objects, object_ranges, participants, list_members, changes"
_COUNTED = text("SELECT relname, reltuples FROM pg_class WHERE oid IN ('objects'::regclass, 'object_ranges'::regclass)")


def refresh_statistics(tx: Tx, written: int, objects: int = 0) -> None:
    """After a bulk write of `written` index rows and `objects` objects: ANALYZE on PostgreSQL if either
    are many (see STATISTICS_SHARE)."""
    if max(written, objects) < 1000 or tx.conn.dialect.name != "postgresql":
        return
    counted = {str(name): float(n) for name, n in tx.conn.execute(_COUNTED)}

    def many(rows: int, table: str) -> bool:
        known = counted.get(table, -1.0)
        return rows >= 1000 and (known < 0 or rows >= STATISTICS_SHARE * known)
    if many(written, "object_ranges") or many(objects, "objects"):
        tx.conn.execute(text(f"ANALYZE {_ANALYZED}"))


def candidate_ids(tx: Tx, folder_id: int, start_ms: int | None, end_ms: int | None) -> list[int]:
    """Ids of the folder's objects (home or as a participant's folder) that may overlap [start, end),
    with every member of their series (master and change exceptions: one DAV resource), sorted."""
    return candidates(tx, folder_id, start_ms, end_ms)[0]


def candidate_query(tx: Tx, folder_id: int, start_ms: int | None, end_ms: int | None) -> Select[Any]:
    """(id, series_id, kind, exact) of the index rows overlapping [start, end) of objects in the folder
    (at home, or placed there for a participant). Short rows are read by a range of their start on
    ix_object_ranges_start, long ones are few (see SHORT_MS): the rows read follow the window, not the
    length of the folder's series; each is joined to its object by primary key."""
    r, o, p = s.object_ranges, s.objects, s.participants
    ends_after = or_(r.c.end_ms.is_(None), r.c.end_ms > start_ms) if start_ms is not None else true()
    short = and_(r.c.tenant_id == tx.tenant_id, r.c.long_span.is_(False),
                 r.c.start_ms >= start_ms - SHORT_MS if start_ms is not None else true(),
                 r.c.start_ms < end_ms if end_ms is not None else true(), ends_after)
    long = and_(r.c.tenant_id == tx.tenant_id, r.c.long_span.is_(True),
                or_(r.c.start_ms.is_(None), r.c.start_ms < end_ms) if end_ms is not None else true(), ends_after)
    ranges = union_all(select(r.c.object_id, r.c.exact).where(short),
                       select(r.c.object_id, r.c.exact).where(long)).subquery()
    guest = select(p.c.object_id).where(and_(p.c.tenant_id == tx.tenant_id, p.c.object_id == o.c.id,
                                             p.c.folder_id == folder_id))
    return select(o.c.id, o.c.series_id, o.c.kind, ranges.c.exact).select_from(
        ranges.join(o, and_(o.c.tenant_id == tx.tenant_id, o.c.id == ranges.c.object_id))
    ).where(or_(o.c.folder_id == folder_id, guest.exists()))


def candidates(tx: Tx, folder_id: int, start_ms: int | None, end_ms: int | None,
               kind: str | None = None) -> tuple[list[int], set[int]]:
    """(`candidate_ids`, the ids among them whose match is decided by an exact row: objects of `kind`
    (an ObjectKind value, e.g. "appointment") with an exact row overlapping [start, end))."""
    single: set[int] = set()  # objects outside any series: no change exception points at them
    series: set[int] = set()
    decided: set[int] = set()
    for row in tx.conn.execute(candidate_query(tx, folder_id, start_ms, end_ms)):
        family = int(row.id) if row.series_id is None else int(row.series_id)  # the family's master
        (single if row.series_id is None else series).add(family)
        if row.exact and kind is not None and row.kind == kind and row.series_id in (None, row.id):
            decided.add(family)
    return sorted(single | family_ids(tx, series)), decided


def family_ids(tx: Tx, series_ids: Iterable[int]) -> set[int]:
    """The ids themselves and the change exceptions that point at them."""
    o = s.objects
    found: set[int] = set()
    ids = sorted(set(series_ids))
    for chunk in (ids[k:k + 500] for k in range(0, len(ids), 500)):
        found.update(chunk)
        found.update(int(i) for (i,) in tx.conn.execute(select(o.c.id).where(
            and_(o.c.tenant_id == tx.tenant_id, o.c.series_id.in_(chunk)))))
    return found
