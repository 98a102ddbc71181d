"""Conversions between model times and OX milliseconds (UTC; all-day dates at 00:00 UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(value: datetime | date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int((value - EPOCH).total_seconds() * 1000)


def datetime_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def date_from_ms(ms: int) -> date:
    return datetime_from_ms(ms).date()


def utc(value: datetime) -> datetime:
    """Make a datetime UTC-aware (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
