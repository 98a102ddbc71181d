"""OX recurrence patterns <-> RFC 5545 RRULE, and bounded, DST-correct expansion.

The OX pattern (reference ox-webdav-xml.md §2.4) is the canonical form; every dialect converts to and
from it here. What must hold:

* `to_rrule` / `from_rrule` are exact inverses for every OX combination; an RRULE that OX cannot express
  raises `UnsupportedRecurrence` (the caller may keep the raw text), a malformed one `InvalidRecurrence`.
* Expansion runs in the series' local zone (wall-clock times stay put across DST), uses `dateutil.rrule`
  for the calendar arithmetic and is bounded: whole periods before the window are skipped by counting,
  not by iterating, so a rule starting in year 1 or with a huge COUNT answers in milliseconds.
* Dates (`until`, delete exceptions, `recurrence_date_position`) are dates of the occurrence in the
  series' local zone (for all-day series: the occurrence's own date).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, weekday

from oxsync.config import LimitSettings
from oxsync.model.appointment import LAST_WEEK_OF_MONTH, Recurrence, RecurrenceType

__all__ = [
    "InvalidRecurrence", "UnsupportedRecurrence", "expand", "from_rrule", "occurrence_date",
    "occurrence_position", "series_end", "to_rrule", "validate_recurrence",
]


class InvalidRecurrence(ValueError):
    """The RRULE text or the OX pattern is malformed (bad syntax, out-of-range values)."""


class UnsupportedRecurrence(ValueError):
    """A valid RRULE that no OX pattern expresses exactly (e.g. BYHOUR, several BYMONTH, FREQ=HOURLY)."""


# (OX bit, iCalendar code), Monday first: the index is Python's / dateutil's weekday number.
WEEKDAYS: tuple[tuple[int, str], ...] = (
    (2, "MO"), (4, "TU"), (8, "WE"), (16, "TH"), (32, "FR"), (64, "SA"), (1, "SU"),
)
_CODE_INDEX = {code: index for index, (_, code) in enumerate(WEEKDAYS)}

# OX type <-> (RRULE FREQ, dateutil constant, relativedelta unit of one period)
FREQUENCIES: dict[RecurrenceType, tuple[str, int, str]] = {
    RecurrenceType.DAILY: ("DAILY", DAILY, "days"),
    RecurrenceType.WEEKLY: ("WEEKLY", WEEKLY, "weeks"),
    RecurrenceType.MONTHLY: ("MONTHLY", MONTHLY, "months"),
    RecurrenceType.YEARLY: ("YEARLY", YEARLY, "years"),
}
_TYPE_OF_FREQ = {freq: rtype for rtype, (freq, _, _) in FREQUENCIES.items()}
_SUBDAILY = {"HOURLY", "MINUTELY", "SECONDLY"}
_UNSUPPORTED_PARTS = {"BYSECOND", "BYMINUTE", "BYHOUR", "BYYEARDAY", "BYWEEKNO", "RSCALE", "SKIP"}
_KNOWN_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
_BYDAY_TOKEN = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_TOKEN = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")
_MONTH_DAYS_MIN = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTH_DAYS_MAX = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The Gregorian calendar repeats (weekdays included) every 400 years = 4800 months.
_CYCLE = {"months": 4800, "years": 400}


# --------------------------------------------------------------------------------------------- pattern

def _bits_to_indexes(days: int) -> tuple[int, ...]:
    return tuple(index for index, (bit, _) in enumerate(WEEKDAYS) if days & bit)


def _indexes_to_bits(indexes: Iterable[int]) -> int:
    return sum({WEEKDAYS[index][0] for index in indexes})


def validate_recurrence(rec: Recurrence) -> None:
    """Raise `InvalidRecurrence` unless `rec` is one of the OX combinations of §2.4."""
    if rec.type not in FREQUENCIES:
        raise InvalidRecurrence(f"recurrence type {rec.type!r} is not a series")
    if not isinstance(rec.interval, int) or rec.interval < 1:
        raise InvalidRecurrence(f"interval must be a positive integer, got {rec.interval!r}")
    if rec.until is not None and rec.occurrences is not None:
        raise InvalidRecurrence("until and occurrences are mutually exclusive")
    if rec.occurrences is not None and rec.occurrences < 1:
        raise InvalidRecurrence(f"occurrences must be positive, got {rec.occurrences}")
    if rec.days is not None and not 1 <= rec.days <= 127:
        raise InvalidRecurrence(f"days bitmask must be 1..127, got {rec.days}")
    if rec.type == RecurrenceType.DAILY and (rec.days or rec.day_in_month or rec.month is not None):
        raise InvalidRecurrence("a daily pattern takes only interval (every weekday is weekly with days=62)")
    if rec.type == RecurrenceType.WEEKLY and (rec.day_in_month or rec.month is not None):
        raise InvalidRecurrence("a weekly pattern takes only interval and days")
    if rec.type in (RecurrenceType.MONTHLY, RecurrenceType.YEARLY):
        if rec.days is not None and rec.day_in_month is None:
            raise InvalidRecurrence("the nth-weekday form needs day_in_month (1-5) with days")
        if rec.day_in_month is not None:
            upper = LAST_WEEK_OF_MONTH if rec.days is not None else 31
            if not 1 <= rec.day_in_month <= upper:
                raise InvalidRecurrence(f"day_in_month must be 1..{upper}, got {rec.day_in_month}")
    if rec.type == RecurrenceType.MONTHLY and rec.month is not None:
        raise InvalidRecurrence("a monthly pattern takes no month")
    if rec.month is not None and not 0 <= rec.month <= 11:
        raise InvalidRecurrence(f"month is 0-based (0 = January), got {rec.month}")


@dataclass(frozen=True)
class _Pattern:
    """The OX pattern made explicit (defaults taken from the series start)."""

    rtype: RecurrenceType
    interval: int
    weekdays: tuple[int, ...] = ()
    ordinal: int | None = None
    """1..4 or -1 (last) for the nth-weekday forms."""
    monthday: int | None = None
    month: int | None = None
    """1-based."""


def _pattern(rec: Recurrence, start: date) -> _Pattern:
    validate_recurrence(rec)
    rtype = RecurrenceType(rec.type)
    if rtype == RecurrenceType.DAILY:
        return _Pattern(rtype, rec.interval)
    if rtype == RecurrenceType.WEEKLY:
        weekdays = _bits_to_indexes(rec.days) if rec.days else (start.weekday(),)
        return _Pattern(rtype, rec.interval, weekdays=weekdays)
    month = None
    if rtype == RecurrenceType.YEARLY:
        month = rec.month + 1 if rec.month is not None else start.month
    if rec.days is not None:
        assert rec.day_in_month is not None
        ordinal = -1 if rec.day_in_month == LAST_WEEK_OF_MONTH else rec.day_in_month
        return _Pattern(rtype, rec.interval, _bits_to_indexes(rec.days), ordinal, None, month)
    monthday = rec.day_in_month if rec.day_in_month is not None else start.day
    return _Pattern(rtype, rec.interval, monthday=monthday, month=month)


# --------------------------------------------------------------------------------------------- RRULE text

def _zone(tz: str | tzinfo | None) -> tzinfo | None:
    if tz is None or isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _format_until(until: date, start: datetime | date, tz: str | tzinfo | None) -> str:
    """UNTIL for an inclusive last day: a DATE for all-day series, else the end of that local day."""
    if not isinstance(start, datetime):
        return f"{until:%Y%m%d}"
    if start.tzinfo is None:
        return f"{until:%Y%m%d}T235959"
    zone = _zone(tz) or start.tzinfo
    last = datetime.combine(until, time(23, 59, 59), zone).astimezone(UTC)
    return f"{last:%Y%m%dT%H%M%S}Z"


def to_rrule(rec: Recurrence, start: datetime | date, tz: str | tzinfo | None = None) -> str:
    """The RRULE value (without the `RRULE:` prefix) for an OX pattern.

    `start` is the series start; `tz` (default: start's own zone) is the zone `until` is a day of.
    Every BY-part is written out, so the text does not depend on DTSTART.
    """
    aware = isinstance(start, datetime) and start.tzinfo is not None and tz is not None
    pattern = _pattern(rec, start.astimezone(_zone(tz)) if aware else start)  # type: ignore[union-attr]
    parts = [f"FREQ={FREQUENCIES[pattern.rtype][0]}"]
    if rec.until is not None:
        parts.append(f"UNTIL={_format_until(rec.until, start, tz)}")
    elif rec.occurrences is not None:
        parts.append(f"COUNT={rec.occurrences}")
    if pattern.interval != 1:
        parts.append(f"INTERVAL={pattern.interval}")
    codes = [WEEKDAYS[index][1] for index in pattern.weekdays]
    if pattern.ordinal is not None and len(codes) == 1:
        parts.append(f"BYDAY={pattern.ordinal}{codes[0]}")
    elif codes:
        parts.append(f"BYDAY={','.join(codes)}")
    if pattern.monthday is not None:
        parts.append(f"BYMONTHDAY={pattern.monthday}")
    if pattern.month is not None:
        parts.append(f"BYMONTH={pattern.month}")
    if pattern.ordinal is not None and len(codes) > 1:
        parts.append(f"BYSETPOS={pattern.ordinal}")
    return ";".join(parts)


def _int_list(key: str, value: str, low: int, high: int) -> list[int]:
    try:
        numbers = [int(item) for item in value.split(",")]
    except ValueError:
        raise InvalidRecurrence(f"{key}={value}: not a list of integers") from None
    for number in numbers:
        if number == 0 or not low <= abs(number) <= high:
            raise InvalidRecurrence(f"{key}={value}: {number} is out of range")
    return numbers


def _parse_until(value: str) -> date | datetime:
    match = _UNTIL_TOKEN.match(value)
    if not match:
        raise InvalidRecurrence(f"UNTIL={value}: not a DATE or DATE-TIME")
    try:
        day = datetime.strptime(match[1], "%Y%m%d").date()
        if match[2] is None:
            return day
        moment = datetime.combine(day, datetime.strptime(match[2], "%H%M%S").time())
    except ValueError:
        raise InvalidRecurrence(f"UNTIL={value}: not a valid date") from None
    return moment.replace(tzinfo=UTC) if match[3] else moment


def _parse_parts(text: str) -> dict[str, str]:
    text = text.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    parts: dict[str, str] = {}
    for chunk in filter(None, text.split(";")):
        key, sep, value = chunk.partition("=")
        key = key.strip().upper()
        if not sep or not value:
            raise InvalidRecurrence(f"RRULE part {chunk!r} is not NAME=VALUE")
        if key in parts:
            raise InvalidRecurrence(f"RRULE part {key} appears twice")
        if key not in _KNOWN_PARTS and key not in _UNSUPPORTED_PARTS and not key.startswith("X-"):
            raise InvalidRecurrence(f"unknown RRULE part {key}")
        parts[key] = value.strip().upper()
    if "FREQ" not in parts:
        raise InvalidRecurrence("RRULE has no FREQ")
    return parts


def _until_date(until: date | datetime, start: datetime | date, tz: str | tzinfo | None) -> date:
    """The last day (inclusive) an UNTIL admits: exact because every occurrence has start's local time."""
    if not isinstance(until, datetime):
        return until
    if not isinstance(start, datetime):
        zone = _zone(tz) or UTC
        return until.astimezone(zone).date() if until.tzinfo else until.date()
    zone = _zone(tz) or start.tzinfo
    local_until = until.astimezone(zone) if until.tzinfo and zone else until
    local_start = start.astimezone(zone) if start.tzinfo and zone else start
    wall_until, wall_start = local_until.replace(tzinfo=None), local_start.replace(tzinfo=None)
    if wall_until.time() < wall_start.time():
        return wall_until.date() - timedelta(days=1)
    return wall_until.date()


def _nth_weekday(byday: list[tuple[int | None, int]], bysetpos: str | None) -> tuple[int, int]:
    """(days bitmask, OX day_in_month 1-5) for the nth-weekday forms, or UnsupportedRecurrence."""
    ordinals = {ordinal for ordinal, _ in byday}
    if bysetpos is not None:
        positions = _int_list("BYSETPOS", bysetpos, 1, 366)
        if len(positions) != 1 or ordinals != {None}:
            raise UnsupportedRecurrence("OX supports one BYSETPOS over plain weekdays only")
        ordinal = positions[0]
    elif len(byday) == 1 and byday[0][0] is not None:
        ordinal = byday[0][0]
    else:
        raise UnsupportedRecurrence("OX cannot repeat on every matching weekday of a month/year")
    if ordinal not in (1, 2, 3, 4, -1):
        raise UnsupportedRecurrence(f"OX supports the 1st-4th and last weekday only, not {ordinal}")
    return _indexes_to_bits(index for _, index in byday), LAST_WEEK_OF_MONTH if ordinal == -1 else ordinal


def _drop_start_time_parts(parts: dict[str, str], local: datetime | date) -> None:
    """BYHOUR/BYMINUTE/BYSECOND naming exactly the start's own time add nothing (Outlook and Exchange
    write `BYHOUR=6;BYMINUTE=55` for a 06:55 weekly meeting): the OX pattern is the rule without them."""
    if not isinstance(local, datetime):
        return
    own = {"BYHOUR": local.hour, "BYMINUTE": local.minute, "BYSECOND": local.second}
    present = [key for key in own if key in parts]
    if present and all(parts[key].strip().isdigit() and int(parts[key]) == own[key] for key in present):
        for key in present:
            del parts[key]


def from_rrule(text: str, start: datetime | date, tz: str | tzinfo | None = None) -> Recurrence:
    """The OX pattern for an RRULE value (with or without `RRULE:`); inverse of `to_rrule`.

    Raises `InvalidRecurrence` for malformed text and `UnsupportedRecurrence` for valid rules OX cannot
    express exactly (the caller decides, e.g. keeps the raw RRULE).
    """
    parts = _parse_parts(text)
    local = start.astimezone(_zone(tz)) if isinstance(start, datetime) and start.tzinfo and tz else start
    freq = parts["FREQ"]
    if freq in _SUBDAILY:
        raise UnsupportedRecurrence(f"OX has no FREQ={freq} recurrence")
    if freq not in _TYPE_OF_FREQ:
        raise InvalidRecurrence(f"unknown FREQ={freq}")
    _drop_start_time_parts(parts, local)
    extra = sorted(key for key in parts if key in _UNSUPPORTED_PARTS or key.startswith("X-"))
    if extra:
        raise UnsupportedRecurrence(f"OX cannot express RRULE part(s) {', '.join(extra)}")
    interval = _int_list("INTERVAL", parts.get("INTERVAL", "1"), 1, 10**6)
    count = _int_list("COUNT", parts["COUNT"], 1, 10**9) if "COUNT" in parts else None
    if len(interval) != 1 or (count is not None and len(count) != 1):
        raise InvalidRecurrence("INTERVAL and COUNT take one number")
    until = _parse_until(parts["UNTIL"]) if "UNTIL" in parts else None
    if until is not None and count is not None:
        raise InvalidRecurrence("COUNT and UNTIL are mutually exclusive")
    byday: list[tuple[int | None, int]] = []
    for token in parts["BYDAY"].split(",") if "BYDAY" in parts else ():
        match = _BYDAY_TOKEN.match(token.strip())
        if not match or (match[1] is not None and not 1 <= abs(int(match[1])) <= 53):
            raise InvalidRecurrence(f"BYDAY={parts['BYDAY']}: bad weekday {token!r}")
        byday.append((int(match[1]) if match[1] else None, _CODE_INDEX[match[2]]))
    monthdays = _int_list("BYMONTHDAY", parts["BYMONTHDAY"], 1, 31) if "BYMONTHDAY" in parts else None
    months = _int_list("BYMONTH", parts["BYMONTH"], 1, 12) if "BYMONTH" in parts else None
    if "WKST" in parts and parts["WKST"] not in _CODE_INDEX:
        raise InvalidRecurrence(f"WKST={parts['WKST']}: not a weekday")
    bysetpos = parts.get("BYSETPOS")
    rtype = _TYPE_OF_FREQ[freq]
    rec = Recurrence(type=rtype, interval=interval[0], occurrences=count[0] if count else None)
    if until is not None:
        rec.until = _until_date(until, start, tz)
    plain_days = [index for ordinal, index in byday if ordinal is None]

    if rtype == RecurrenceType.DAILY:
        if monthdays or months or bysetpos:
            raise UnsupportedRecurrence("OX daily patterns take no BYMONTHDAY/BYMONTH/BYSETPOS")
        if byday:  # "every weekday" exported as FREQ=DAILY;BYDAY=MO,...: OX weekly, interval 1
            if rec.interval != 1 or len(plain_days) != len(byday):
                raise UnsupportedRecurrence("OX cannot express a daily rule with BYDAY and an interval")
            rec.type, rec.days = RecurrenceType.WEEKLY, _indexes_to_bits(plain_days)
        return rec
    if rtype == RecurrenceType.WEEKLY:
        if monthdays or months or bysetpos or len(plain_days) != len(byday):
            raise UnsupportedRecurrence("OX weekly patterns take plain BYDAY weekdays only")
        indexes = plain_days or [local.weekday()]
        wkst = _CODE_INDEX.get(parts.get("WKST", "MO"), 0)
        if rec.interval > 1 and wkst and len({index >= wkst for index in indexes}) > 1:
            raise UnsupportedRecurrence("OX weeks start on Monday; this WKST groups the weekdays differently")
        rec.days = _indexes_to_bits(indexes)
        return rec
    if rtype == RecurrenceType.YEARLY:
        if rec.interval != 1:
            raise UnsupportedRecurrence("OX yearly patterns have interval 1")
        if months is not None and len(months) != 1:
            raise UnsupportedRecurrence("OX yearly patterns name one month")
        if months is None and byday:
            raise UnsupportedRecurrence("OX cannot express an nth weekday of the year")
        rec.month = (months[0] if months else local.month) - 1
    elif months is not None:
        raise UnsupportedRecurrence("OX monthly patterns take no BYMONTH")
    if monthdays is not None:
        if byday or bysetpos or len(monthdays) != 1 or monthdays[0] < 0:
            raise UnsupportedRecurrence("OX repeats on one positive day of the month")
        rec.day_in_month = monthdays[0]
    elif byday:
        rec.days, rec.day_in_month = _nth_weekday(byday, bysetpos)
    elif bysetpos:
        raise UnsupportedRecurrence("BYSETPOS without BYDAY")
    else:
        rec.day_in_month = local.day
    return rec


# --------------------------------------------------------------------------------------------- expansion

@dataclass(frozen=True)
class _Series:
    """A pattern anchored at a naive local start, with its end condition."""

    pattern: _Pattern
    dtstart: datetime
    count: int | None
    until: date | None

    @property
    def unit(self) -> str:
        return FREQUENCIES[self.pattern.rtype][2]

    def period_start(self, k: int) -> datetime | None:
        """Start (00:00) of the k-th period after the one holding dtstart; None past year 9999."""
        day = self.dtstart.date()
        base = {
            "days": day,
            "weeks": day - timedelta(days=day.weekday()),
            "months": day.replace(day=1),
            "years": day.replace(month=1, day=1),
        }[self.unit]
        try:
            return datetime.combine(base, time()) + relativedelta(**{self.unit: k * self.pattern.interval})
        except (OverflowError, ValueError):
            return None

    def period_index(self, when: datetime) -> int:
        """How many whole periods lie between dtstart's period and the one holding `when`."""
        base = self.period_start(0)
        assert base is not None
        if self.unit in ("days", "weeks"):
            size = 7 if self.unit == "weeks" else 1
            return (when.date() - base.date()).days // (size * self.pattern.interval)
        months = (when.year - base.year) * 12 + when.month - base.month
        return (months if self.unit == "months" else when.year - base.year) // self.pattern.interval

    def rule(self, dtstart: datetime) -> rrule:
        """dateutil rule with every BY-part explicit, so it can start at any period boundary."""
        p = self.pattern
        byweekday: tuple[weekday, ...] | None = None
        bysetpos = None
        if p.weekdays:
            if p.ordinal is not None and len(p.weekdays) == 1:
                byweekday = (weekday(p.weekdays[0], p.ordinal),)
            else:
                byweekday = tuple(weekday(index) for index in p.weekdays)
                bysetpos = p.ordinal
        return rrule(
            FREQUENCIES[p.rtype][1], dtstart=dtstart, interval=p.interval, wkst=0, byweekday=byweekday,
            bysetpos=bysetpos, bymonthday=p.monthday, bymonth=p.month, byhour=self.dtstart.hour,
            byminute=self.dtstart.minute, bysecond=self.dtstart.second, cache=False,
        )

    def per_period(self) -> int | None:
        """Occurrences in every full period, or None when it varies (day 29-31, 29 February)."""
        p = self.pattern
        if p.rtype == RecurrenceType.WEEKLY:
            return len(p.weekdays)
        if p.monthday is None:
            return 1  # daily, and the nth-weekday forms: every month has a 1st-4th and last
        if p.month is None:
            return 1 if p.monthday <= 28 else None
        if p.monthday <= _MONTH_DAYS_MIN[p.month - 1]:
            return 1
        return None if p.monthday <= _MONTH_DAYS_MAX[p.month - 1] else 0

    def count_between(self, first: int, stop: int) -> int:
        """Occurrences in full periods [first, stop) by iteration (callers keep the span small)."""
        begin, end = self.period_start(first), self.period_start(stop)
        if begin is None:
            return 0
        total = 0
        for moment in self.rule(begin):
            if end is not None and moment >= end:
                break
            total += 1
        return total

    @cached_property
    def cycle(self) -> tuple[int, int]:
        """(periods, occurrences) of one Gregorian cycle, for the variable-count patterns."""
        whole = _CYCLE[self.unit]
        periods = whole // math.gcd(self.pattern.interval, whole)
        return periods, self.count_between(1, 1 + periods)

    def count_full(self, first: int, stop: int) -> int:
        """Occurrences in the full periods [first, stop), counting instead of iterating."""
        constant = self.per_period()
        if constant is not None:
            return (stop - first) * constant
        periods, per_cycle = self.cycle
        cycles, rest = divmod(stop - first, periods)
        return cycles * per_cycle + self.count_between(first, first + rest)

    @cached_property
    def first_count(self) -> int:
        """Occurrences in dtstart's own (possibly partial) period."""
        end = self.period_start(1)
        total = 0
        for moment in self.rule(self.dtstart):
            if end is not None and moment >= end:
                break
            total += 1
        return total

    def occurrences(self, k: int = 0) -> Iterator[tuple[int, datetime]]:
        """(1-based position, naive local start) from period k on, honouring COUNT and UNTIL."""
        if self.per_period() == 0:
            return
        if k <= 0:
            position, begin = 0, self.dtstart
        else:
            position = self.first_count + self.count_full(1, k)
            begin = self.period_start(k)
            if begin is None or (self.count is not None and position >= self.count):
                return
        for moment in self.rule(begin):
            position += 1
            if (self.count is not None and position > self.count) or (
                self.until is not None and moment.date() > self.until
            ):
                return
            yield position, moment

    def nth(self, position: int) -> datetime | None:
        """Local start of the occurrence at `position`, skipping whole periods arithmetically."""
        if position < 1 or (self.count is not None and position > self.count):
            return None
        first, constant, k = self.first_count, self.per_period(), 0
        if position > first:
            rest = position - first
            if constant == 0:
                return None
            if constant is not None:
                k = 1 + (rest - 1) // constant
            else:
                periods, per_cycle = self.cycle
                if per_cycle == 0:
                    return None
                k = 1 + ((rest - 1) // per_cycle) * periods
        for index, moment in self.occurrences(k):
            if index == position:
                return moment
            if index > position:
                break
        return None


def _local_start(start: datetime | date, zone: tzinfo) -> datetime:
    if not isinstance(start, datetime):
        return datetime.combine(start, time())
    if start.tzinfo is None:
        return start  # floating: wall time as given
    return start.astimezone(zone).replace(tzinfo=None)


def _series(rec: Recurrence, start: datetime | date, zone: tzinfo) -> _Series:
    local = _local_start(start, zone)
    return _Series(_pattern(rec, local.date()), local, rec.occurrences, rec.until)


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
    return max(end - start, timedelta())  # type: ignore[operator]


def expand(
    start: datetime | date,
    end: datetime | date | None,
    rec: Recurrence,
    tz: str = "UTC",
    *,
    window_start: datetime | date | None = None,
    window_end: datetime | date | None = None,
    max_instances: int | None = None,
    delete_exceptions: Iterable[date] = (),
    now: datetime | None = None,
    limits: LimitSettings | None = None,
) -> list[Occurrence]:
    """Occurrences (start, end) of a series overlapping [window_start, window_end), oldest first.

    `start`/`end` are the first occurrence (UTC-aware, floating, or dates for full-day series); `tz` is the
    series' IANA zone. Defaults: the window is now - recurrence_window_past_days .. now +
    recurrence_window_future_days and at most max_recurrence_instances are returned. Delete exceptions
    (local dates) are skipped but keep their position. Cost is bounded by the window, not the series age.
    """
    limits = limits or LimitSettings()
    zone = _zone(tz) or UTC
    now = now or datetime.now(UTC)
    if window_start is None:
        window_start = now - timedelta(days=limits.recurrence_window_past_days)
    if window_end is None:
        window_end = now + timedelta(days=limits.recurrence_window_future_days)
    if max_instances is None:
        max_instances = limits.max_recurrence_instances
    low, high = _aware(window_start, zone), _aware(window_end, zone)
    if max_instances <= 0 or low >= high:
        return []
    series = _series(rec, start, zone)
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
    zone = _zone(tz) or UTC
    series = _series(rec, start, zone)
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
    zone = _zone(tz) or UTC
    local = _series(rec, start, zone).nth(position)
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
    zone = _zone(tz) or UTC
    series = _series(rec, start, zone)
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
