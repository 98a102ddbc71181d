"""OX recurrence patterns <-> RFC 5545 RRULE text.

What must hold: `to_rrule` / `from_rrule` are exact inverses for every OX combination; an RRULE that OX
cannot express raises `UnsupportedRecurrence` (the caller may keep the raw text), a malformed one
`InvalidRecurrence`. `until` is the last day (inclusive) in the series' local zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from oxsync.model.appointment import LAST_WEEK_OF_MONTH, Recurrence, RecurrenceType
from oxsync.recurrence.pattern import (
    FREQUENCIES,
    WEEKDAYS,
    InvalidRecurrence,
    UnsupportedRecurrence,
    indexes_to_bits,
    pattern_of,
    zone_of,
)

_CODE_INDEX = {code: index for index, (_, code) in enumerate(WEEKDAYS)}
_TYPE_OF_FREQ = {freq: rtype for rtype, (freq, _, _) in FREQUENCIES.items()}
_SUBDAILY = {"HOURLY", "MINUTELY", "SECONDLY"}
_UNSUPPORTED_PARTS = {"BYSECOND", "BYMINUTE", "BYHOUR", "BYYEARDAY", "BYWEEKNO", "RSCALE", "SKIP"}
_KNOWN_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
_BYDAY_TOKEN = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_TOKEN = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")


def _format_until(until: date, start: datetime | date, tz: str | tzinfo | None) -> str:
    """UNTIL for an inclusive last day: a DATE for all-day series, else the end of that local day."""
    if not isinstance(start, datetime):
        return f"{until:%Y%m%d}"
    if start.tzinfo is None:
        return f"{until:%Y%m%d}T235959"
    zone = zone_of(tz) or start.tzinfo
    last = datetime.combine(until, time(23, 59, 59), zone).astimezone(UTC)
    return f"{last:%Y%m%dT%H%M%S}Z"


def to_rrule(rec: Recurrence, start: datetime | date, tz: str | tzinfo | None = None) -> str:
    """The RRULE value (without the `RRULE:` prefix) for an OX pattern.

    `start` is the series start; `tz` (default: start's own zone) is the zone `until` is a day of.
    Every BY-part is written out, so the text does not depend on DTSTART.
    """
    aware = isinstance(start, datetime) and start.tzinfo is not None and tz is not None
    pattern = pattern_of(rec, start.astimezone(zone_of(tz)) if aware and isinstance(start, datetime) else start)
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
        day_zone = zone_of(tz) or UTC
        return until.astimezone(day_zone).date() if until.tzinfo else until.date()
    zone = zone_of(tz) or start.tzinfo
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
    return indexes_to_bits(index for _, index in byday), LAST_WEEK_OF_MONTH if ordinal == -1 else ordinal


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
    local = start.astimezone(zone_of(tz)) if isinstance(start, datetime) and start.tzinfo and tz else start
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
            rec.type, rec.days = RecurrenceType.WEEKLY, indexes_to_bits(plain_days)
        return rec
    if rtype == RecurrenceType.WEEKLY:
        if monthdays or months or bysetpos or len(plain_days) != len(byday):
            raise UnsupportedRecurrence("OX weekly patterns take plain BYDAY weekdays only")
        indexes = plain_days or [local.weekday()]
        wkst = _CODE_INDEX.get(parts.get("WKST", "MO"), 0)
        if rec.interval > 1 and wkst and len({index >= wkst for index in indexes}) > 1:
            raise UnsupportedRecurrence("OX weeks start on Monday; this WKST groups the weekdays differently")
        rec.days = indexes_to_bits(indexes)
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
