"""The OX recurrence pattern made explicit: its validation, weekday bits and frequencies.

The pattern itself is plain data (`oxsync.model.appointment.Recurrence`, reference ox-webdav-xml.md §2.4);
this module checks it is one of the OX combinations and resolves its defaults from the series start, for
both the RRULE conversion (`rrule.py`) and the expansion (`series.py`, `expand.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY

from oxsync.model.appointment import LAST_WEEK_OF_MONTH, Recurrence, RecurrenceType


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
Frequency = Literal[0, 1, 2, 3, 4, 5, 6]
"""dateutil's frequency constants, YEARLY (0) to SECONDLY (6)."""
FREQUENCIES: dict[RecurrenceType, tuple[str, Frequency, str]] = {
    RecurrenceType.DAILY: ("DAILY", DAILY, "days"),
    RecurrenceType.WEEKLY: ("WEEKLY", WEEKLY, "weeks"),
    RecurrenceType.MONTHLY: ("MONTHLY", MONTHLY, "months"),
    RecurrenceType.YEARLY: ("YEARLY", YEARLY, "years"),
}
_TYPE_OF_FREQ = {freq: rtype for rtype, (freq, _, _) in FREQUENCIES.items()}


def bits_to_indexes(days: int) -> tuple[int, ...]:
    return tuple(index for index, (bit, _) in enumerate(WEEKDAYS) if days & bit)


def indexes_to_bits(indexes: Iterable[int]) -> int:
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
class Pattern:
    """The OX pattern made explicit (defaults taken from the series start)."""

    rtype: RecurrenceType
    interval: int
    weekdays: tuple[int, ...] = ()
    ordinal: int | None = None
    """1..4 or -1 (last) for the nth-weekday forms."""
    monthday: int | None = None
    month: int | None = None
    """1-based."""


def pattern_of(rec: Recurrence, start: date) -> Pattern:
    validate_recurrence(rec)
    rtype = RecurrenceType(rec.type)
    if rtype == RecurrenceType.DAILY:
        return Pattern(rtype, rec.interval)
    if rtype == RecurrenceType.WEEKLY:
        weekdays = bits_to_indexes(rec.days) if rec.days else (start.weekday(),)
        return Pattern(rtype, rec.interval, weekdays=weekdays)
    month = None
    if rtype == RecurrenceType.YEARLY:
        month = rec.month + 1 if rec.month is not None else start.month
    if rec.days is not None:
        assert rec.day_in_month is not None
        ordinal = -1 if rec.day_in_month == LAST_WEEK_OF_MONTH else rec.day_in_month
        return Pattern(rtype, rec.interval, bits_to_indexes(rec.days), ordinal, None, month)
    monthday = rec.day_in_month if rec.day_in_month is not None else start.day
    return Pattern(rtype, rec.interval, monthday=monthday, month=month)



def zone_of(tz: str | tzinfo | None) -> tzinfo | None:
    if tz is None or isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
