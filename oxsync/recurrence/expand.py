"""Bounded, DST-correct expansion of a series into occurrences, and positions <-> dates.

What must hold: expansion runs in the series' local zone (wall-clock times stay put across DST); the
window and the instance cap are the caller's (the store takes them from `[limits]`), so the cost is
bounded by the window, not by the series' age. Dates (`until`, delete exceptions,
`recurrence_date_position`) are dates of the occurrence in the series' local zone (for all-day series:
the occurrence's own date).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from oxsync.model.appointment import Recurrence
from oxsync.recurrence.pattern import pattern_of, zone_of
from oxsync.recurrence.series import Series


def _local_start(start: datetime | date, zone: tzinfo) -> datetime:
    if not isinstance(start, datetime):
        return datetime.combine(start, time())
    if start.tzinfo is None:
        return start  # floating: wall time as given
    return start.astimezone(zone).replace(tzinfo=None)


def series_of(rec: Recurrence, start: datetime | date, zone: tzinfo) -> Series:
    local = _local_start(start, zone)
    return Series(pattern_of(rec, local.date()), local, rec.occurrences, rec.until)


def _aware(moment: datetime | date, zone: tzinfo) -> datetime:
    """Window bound or occurrence as an aware instant (dates and naive times are local to `zone`)."""
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time(), zone)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


Occurrence = tuple[datetime, datetime] | tuple[date, date]


def _instance(local: datetime, start: datetime | date, duration: timedelta, zone: tzinfo) -> Occurrence:
    """An occurrence in the shape of the series start: dates, floating, or UTC-aware times."""
    if not isinstance(start, datetime):
        return local.date(), local.date() + duration
    if start.tzinfo is None:
        return local, local + duration
    begin = local.replace(tzinfo=zone).astimezone(UTC)
    return begin, begin + duration


def _duration(start: datetime | date, end: datetime | date | None) -> timedelta:
    if end is None:
        return timedelta() if isinstance(start, datetime) else timedelta(days=1)
    return max(end - start, timedelta())


def expand(
    start: datetime | date,
    end: datetime | date | None,
    rec: Recurrence,
    tz: str = "UTC",
    *,
    window_start: datetime | date,
    window_end: datetime | date,
    max_instances: int,
    delete_exceptions: Iterable[date] = (),
) -> list[Occurrence]:
    """Occurrences (start, end) of a series overlapping [window_start, window_end), oldest first.

    `start`/`end` are the first occurrence (UTC-aware, floating, or dates for full-day series); `tz` is the
    series' IANA zone. At most `max_instances` are returned; the store passes its `[limits]` window and
    cap. Delete exceptions (local dates) are skipped but keep their position. Cost is bounded by the
    window, not the series age.
    """
    zone = zone_of(tz) or UTC
    low, high = _aware(window_start, zone), _aware(window_end, zone)
    if max_instances <= 0 or low >= high:
        return []
    series = series_of(rec, start, zone)
    duration = _duration(start, end)
    skipped = set(delete_exceptions)
    # Skip whole periods before the window (an occurrence may start up to `duration` before it).
    try:
        target = low.astimezone(zone).replace(tzinfo=None) - duration - timedelta(days=1)
    except OverflowError:
        target = series.dtstart
    first_period = max(0, series.period_index(target) - 1) if target > series.dtstart else 0
    result: list[Occurrence] = []
    for _, local in series.occurrences(first_period):
        begin = _aware(local, zone)
        if begin >= high:
            break
        if local.date() in skipped:
            continue
        if begin + duration > low or (not duration and begin >= low):
            result.append(_instance(local, start, duration, zone))
            if len(result) >= max_instances:
                break
    return result


def occurrence_position(start: datetime | date, rec: Recurrence, tz: str, occurrence: date) -> int | None:
    """1-based recurrence_position of the occurrence originally on local date `occurrence`, else None."""
    zone = zone_of(tz) or UTC
    series = series_of(rec, start, zone)
    target = datetime.combine(occurrence, time())
    if target < datetime.combine(series.dtstart.date(), time()):
        return None
    for position, local in series.occurrences(max(0, series.period_index(target))):
        if local.date() == occurrence:
            return position
        if local.date() > occurrence:
            break
    return None


def occurrence_date(start: datetime | date, rec: Recurrence, tz: str, position: int) -> date | None:
    """recurrence_date_position (local date) of the occurrence at 1-based `position`, else None."""
    zone = zone_of(tz) or UTC
    local = series_of(rec, start, zone).nth(position)
    return local.date() if local else None


def series_end(
    start: datetime | date, end: datetime | date | None, rec: Recurrence, tz: str = "UTC"
) -> datetime | date | None:
    """End of the last occurrence (same shape as `end`), None for an endless series.

    Delete exceptions are not consulted, so this is a safe upper bound for a range index; a series whose
    rule yields nothing returns the first occurrence's own end.
    """
    if rec.until is None and rec.occurrences is None:
        return None
    zone = zone_of(tz) or UTC
    series = series_of(rec, start, zone)
    duration = _duration(start, end)
    if rec.occurrences is not None:
        last = rec.occurrences
    else:
        assert rec.until is not None
        k = max(0, series.period_index(datetime.combine(rec.until, time(23, 59, 59))))
        last = series.first_count + series.count_full(1, k) if k else 0
        for position, _ in series.occurrences(k):
            last = position
    local = series.nth(last) if last else None
    if local is not None:
        return _instance(local, start, duration, zone)[1]
    if rec.occurrences is not None and series.per_period() != 0:
        return None  # the COUNT reaches past year 9999: as good as endless
    return _instance(series.dtstart, start, duration, zone)[1]
