"""The Calendar `TimeZone` element: base64 of a 172-byte TIME_ZONE_INFORMATION (MS-ASDTYPE 2.7.6).

Layout (little-endian): Bias int32 (UTC = local + Bias, minutes), StandardName 32 UTF-16 chars,
StandardDate SYSTEMTIME (8 x uint16), StandardBias int32, DaylightName, DaylightDate, DaylightBias.
Yearly rules use wYear 0 and wDay = week of month 1-5 (5 = last).

Encoding derives the rules of an IANA zone for a given year and writes the IANA name as
StandardName, so our own blobs come back exactly. Decoding takes that name when it is a known
zone, and otherwise looks for a zone with the same bias and rules (results cached).
"""

from __future__ import annotations

import base64
import binascii
import struct
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

BLOB_SIZE = 172
_LAYOUT = struct.Struct("<i64s8Hi64s8Hi")
PREFERRED = ("Europe/Berlin", "Europe/Paris", "Europe/London", "America/New_York", "America/Chicago",
             "America/Denver", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney", "UTC")

SystemTime = tuple[int, int, int, int, int, int, int, int]
NO_DATE: SystemTime = (0, 0, 0, 0, 0, 0, 0, 0)


def _offset_minutes(zone: ZoneInfo, moment: datetime) -> int:
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def _transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """UTC instants in `year` where the offset changes (month probe, then bisection to the minute)."""
    found = []
    points = [datetime(year, m, 1, tzinfo=UTC) for m in range(1, 13)] + [datetime(year + 1, 1, 1, tzinfo=UTC)]
    for a, b in zip(points, points[1:], strict=False):
        if _offset_minutes(zone, a) == _offset_minutes(zone, b):
            continue
        low, high = a, b
        while high - low > timedelta(minutes=1):
            mid = low + (high - low) / 2
            if _offset_minutes(zone, mid) == _offset_minutes(zone, low):
                low = mid
            else:
                high = mid
        found.append(high.replace(second=0, microsecond=0))
    return found


def _rule(moment_utc: datetime, offset_before: int) -> SystemTime:
    """SYSTEMTIME of a yearly rule from a transition instant (local wall time before the change)."""
    local = moment_utc + timedelta(minutes=offset_before)
    week = (local.day - 1) // 7 + 1
    if local.day + 7 > _days_in_month(local.year, local.month):
        week = 5
    weekday = (local.weekday() + 1) % 7
    return (0, local.month, weekday, week, local.hour, local.minute, 0, 0)


def _days_in_month(year: int, month: int) -> int:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


@lru_cache(maxsize=1024)
def rules_for(name: str, year: int) -> tuple[int, SystemTime, int, SystemTime, int]:
    """(Bias, StandardDate, StandardBias, DaylightDate, DaylightBias) of an IANA zone in `year`."""
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return 0, NO_DATE, 0, NO_DATE, 0
    changes = _transitions(zone, year)
    jan = _offset_minutes(zone, datetime(year, 1, 15, tzinfo=UTC))
    if len(changes) != 2:
        return -jan, NO_DATE, 0, NO_DATE, 0
    offsets = [_offset_minutes(zone, c) for c in changes]
    standard = min(offsets)
    daylight = max(offsets)
    std_rule = dst_rule = NO_DATE
    for moment, after in zip(changes, offsets, strict=True):
        before = daylight if after == standard else standard
        if after == standard:
            std_rule = _rule(moment, before)
        else:
            dst_rule = _rule(moment, before)
    return -standard, std_rule, 0, dst_rule, standard - daylight


def encode_timezone(name: str, year: int) -> str:
    bias, std, std_bias, dst, dst_bias = rules_for(name or "UTC", year)
    label = (name or "UTC")[:31].encode("utf-16-le").ljust(64, b"\0")
    blob = _LAYOUT.pack(bias, label, *std, std_bias, label, *dst, dst_bias)
    return base64.b64encode(blob).decode("ascii")


@lru_cache(maxsize=512)
def decode_timezone(text: str, year: int) -> str:
    """An IANA zone name for a TimeZone blob ("UTC" when nothing better matches)."""
    try:
        blob = base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        return "UTC"
    if len(blob) < BLOB_SIZE:
        return "UTC"
    values = _LAYOUT.unpack(blob[:BLOB_SIZE])
    bias, raw_name = values[0], values[1]
    std = tuple(values[2:10])
    std_bias, dst, dst_bias = values[10], tuple(values[12:20]), values[20]
    name = raw_name.decode("utf-16-le", "ignore").split("\0")[0].strip()
    if name and "/" in name or name == "UTC":
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    has_dst = std[1] != 0 and dst[1] != 0
    wanted = (bias, (std[1], std[2], std[3], std[4]) if has_dst else None,
              (dst[1], dst[2], dst[3], dst[4]) if has_dst else None, (std_bias + dst_bias) if has_dst else 0)
    for candidate in PREFERRED + tuple(sorted(_zones())):
        b, s, sb, d, db = rules_for(candidate, year)
        got_dst = s[1] != 0 and d[1] != 0
        got = (b, (s[1], s[2], s[3], s[4]) if got_dst else None, (d[1], d[2], d[3], d[4]) if got_dst else None,
               (sb + db) if got_dst else 0)
        if got == wanted:
            return candidate
    if not has_dst and bias % 60 == 0 and abs(bias) <= 12 * 60:
        hours = bias // 60
        return "UTC" if hours == 0 else f"Etc/GMT{'+' if hours > 0 else '-'}{abs(hours)}"
    return "UTC"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))
