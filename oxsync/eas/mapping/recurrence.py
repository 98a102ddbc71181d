"""EAS `Recurrence` (Calendar and Tasks pages) <-> OX `Recurrence`, as tables.

EAS types: 0 daily, 1 weekly, 2 monthly on a day, 3 monthly on the Nth weekday, 5 yearly on a day,
6 yearly on the Nth weekday. The DayOfWeek bitmask (Sun=1 ... Sat=64) is OX's `days`; WeekOfMonth is
OX's `day_in_month` for the Nth-weekday forms; MonthOfYear is 1-based (OX `month` is 0-based).
A daily rule with a DayOfWeek mask ("every weekday") becomes an OX weekly rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from oxsync.eas.mapping.common import InvalidValue, compact, parse_datetime
from oxsync.eas.wbxml import E, Element
from oxsync.model import Recurrence, RecurrenceType

EAS_TYPE = {  # (OX type, has weekday mask) -> EAS type
    (RecurrenceType.DAILY, False): 0, (RecurrenceType.WEEKLY, True): 1, (RecurrenceType.MONTHLY, False): 2,
    (RecurrenceType.MONTHLY, True): 3, (RecurrenceType.YEARLY, False): 5, (RecurrenceType.YEARLY, True): 6,
}
OX_TYPE = {0: RecurrenceType.DAILY, 1: RecurrenceType.WEEKLY, 2: RecurrenceType.MONTHLY, 3: RecurrenceType.MONTHLY,
           5: RecurrenceType.YEARLY, 6: RecurrenceType.YEARLY}
MAX_OCCURRENCES = 999


def _int(elem: Element, tag: str, low: int, high: int) -> int | None:
    text = elem.findtext(tag)
    if text is None or text.strip() == "":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise InvalidValue(f"{tag} is not a number") from exc
    if not low <= value <= high:
        raise InvalidValue(f"{tag} {value} out of range")
    return value


def recurrence_out(rec: Recurrence | None, page: str, until_text: Callable[[date], str],
                   extra: list[Element] | None = None) -> list[Element]:
    if rec is None or rec.type == RecurrenceType.NONE:
        return []
    masked = bool(rec.days) and rec.type != RecurrenceType.DAILY
    kind = EAS_TYPE.get((rec.type, masked))
    if kind is None:
        kind = 1 if rec.type == RecurrenceType.WEEKLY else 0
    out = E(f"{page}:Recurrence", E(f"{page}:Type", str(kind)))
    out.children.extend(extra or [])
    if rec.occurrences:
        out.append(E(f"{page}:Occurrences", str(rec.occurrences)))
    elif rec.until:
        out.append(E(f"{page}:Until", until_text(rec.until)))
    out.append(E(f"{page}:Interval", str(max(1, rec.interval))))
    if kind in (3, 6):
        out.append(E(f"{page}:WeekOfMonth", str(rec.day_in_month or 1)))
    if kind in (1, 3, 6) and rec.days:
        out.append(E(f"{page}:DayOfWeek", str(rec.days)))
    if kind in (2, 5):
        out.append(E(f"{page}:DayOfMonth", str(rec.day_in_month or 1)))
    if kind in (5, 6):
        out.append(E(f"{page}:MonthOfYear", str((rec.month or 0) + 1)))
    return [out]


def recurrence_in(elem: Element, page: str, until_date: Callable[[str], date]) -> Recurrence:
    kind = _int(elem, f"{page}:Type", 0, 6)
    if kind is None or kind not in OX_TYPE:
        raise InvalidValue("Recurrence without a valid Type")
    days = _int(elem, f"{page}:DayOfWeek", 0, 127)
    rec = Recurrence(type=OX_TYPE[kind], interval=_int(elem, f"{page}:Interval", 0, 999) or 1)
    if kind == 0 and days:
        rec.type, rec.days = RecurrenceType.WEEKLY, days
    elif kind in (1, 3, 6):
        rec.days = days or None
    if kind in (3, 6):
        rec.day_in_month = _int(elem, f"{page}:WeekOfMonth", 1, 5) or 1
    if kind in (2, 5):
        rec.day_in_month = _int(elem, f"{page}:DayOfMonth", 1, 31)
    if kind in (5, 6):
        rec.month = (_int(elem, f"{page}:MonthOfYear", 1, 12) or 1) - 1
    occurrences = _int(elem, f"{page}:Occurrences", 1, MAX_OCCURRENCES)
    until = elem.findtext(f"{page}:Until")
    if occurrences:
        rec.occurrences = occurrences
    elif until:
        rec.until = until_date(until)
    return rec


def until_in_zone(zone: str) -> tuple[Callable[[date], str], Callable[[str], date]]:
    """Until as the end of that local day (out) and as the local date of the instant (in)."""
    tz = ZoneInfo(zone or "UTC")

    def out(day: date) -> str:
        return compact(datetime.combine(day, time(23, 59, 59), tz))

    def into(text: str) -> date:
        return parse_datetime(text).astimezone(tz).date()

    return out, into


def until_plain() -> tuple[Callable[[date], str], Callable[[str], date]]:
    """Tasks: dates written as midnight UTC (extended format)."""
    def out(day: date) -> str:
        return f"{day.isoformat()}T00:00:00.000Z"

    def into(text: str) -> date:
        moment = parse_datetime(text)
        return (moment + timedelta(hours=12)).date() if moment.hour >= 12 else moment.date()

    return out, into
