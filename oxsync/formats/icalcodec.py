"""iCalendar mapping machinery: time-zone resolution, decoding/encoding contexts, the table row type and
the scalar converters (text, int, decimal, UTC time) shared by the VEVENT and VTODO tables in `icalfields`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Component, Timezone, vBroken, vText

from oxsync.formats.icalscan import Block, content_value, unescape
from oxsync.formats.timezones import guess_iana, iana_name
from oxsync.model.appointment import Appointment, Participant
from oxsync.model.task import Task

Resolver = Callable[[str], Participant | None]


class Zones:
    """TZID resolution: IANA and Windows names first, then the input's own VTIMEZONE definitions."""

    def __init__(self, blocks: list[Block], floating: str) -> None:
        self.blocks = {content_value(b.lines_of("TZID")[0]).strip(): b for b in blocks if b.lines_of("TZID")}
        self.floating = floating
        self.cache: dict[str, tuple[tzinfo, str] | None] = {}

    def resolve(self, tzid: str, year: int) -> tuple[tzinfo, str] | None:
        if tzid not in self.cache:
            name = iana_name(tzid)
            found: tuple[tzinfo, str] | None = (ZoneInfo(name), name) if name else None
            block = self.blocks.get(tzid)
            if found is None and block is not None and block.error is None:
                try:
                    parsed = Component.from_ical(block.text())
                    if not isinstance(parsed, Timezone):
                        raise ValueError(f"{tzid} is not a VTIMEZONE")
                    zone = parsed.to_tz(lookup_tzid=False)
                    found = (zone, guess_iana(zone, year) or "UTC")
                except (ValueError, TypeError, KeyError, AttributeError):
                    found = None
            self.cache[tzid] = found
        return self.cache[tzid]


class FieldError(ValueError):
    def __init__(self, prop: str, message: str) -> None:
        super().__init__(message)
        self.prop, self.message = prop, message


SKIP, KEEP = object(), object()
"""Decoder results: SKIP leaves the field at its default; KEEP also keeps the raw lines in `extra`."""


class Decoding:
    """What a decoder sees: the parsed component, its raw block, zones, the object built so far."""

    def __init__(self, comp: Component, block: Block, zones: Zones, resolve: Resolver | None,
                 obj: Appointment | Task) -> None:
        self.comp, self.block, self.zones, self.resolve, self.obj = comp, block, zones, resolve, obj
        self.extra: dict[str, list[str]] = {}
        self.tzname = "UTC"
        self.used_alarm: int | None = None
        self.recurrence_id: datetime | date | None = None

    def values(self, name: str) -> list[Any]:
        found = self.comp.get(name)
        values = [] if found is None else found if isinstance(found, list) else [found]
        for value in values:
            if isinstance(value, vBroken):
                why = next((msg for prop, msg in self.comp.errors if prop == name), "unreadable value")
                raise FieldError(name, f"{name}: {why}")
        return values

    def keep(self, name: str, line: str) -> None:
        self.extra.setdefault(name, []).append(line)

    def moment(self, value: Any) -> tuple[datetime | date, str | None]:
        """An aware datetime in its own zone (TZID, UTC or the floating default) or a date."""
        moment = getattr(value, "dt", value)
        if not isinstance(moment, date):
            raise ValueError(f"not a date or date-time: {moment!r}")
        if not isinstance(moment, datetime):
            return moment, None
        tzid = value.params.get("TZID") if hasattr(value, "params") else None
        if tzid:
            found = self.zones.resolve(str(tzid), moment.year)
            if found:
                return moment.replace(tzinfo=None).replace(tzinfo=found[0]), found[1]
            key = getattr(moment.tzinfo, "key", None)  # a ZoneInfo's IANA name
            if key:
                return moment, key
        elif moment.tzinfo is not None:
            return moment.astimezone(UTC), "UTC"
        return moment.replace(tzinfo=None).replace(tzinfo=ZoneInfo(self.zones.floating)), self.zones.floating


def _text_of(value: Any) -> str:
    return str(value) if isinstance(value, vText) else unescape(str(value))


def local_date(moment: datetime | date, tzname: str) -> date:
    return moment.astimezone(ZoneInfo(tzname)).date() if isinstance(moment, datetime) else moment


# ------------------------------------------------------------------------------------------ encoding

class Encoding:
    """What an encoder writes to: the icalendar component, alarm lines, and the names it emitted."""

    def __init__(self, obj: Appointment | Task, comp: Component, master: Appointment | Task | None) -> None:
        self.obj, self.comp, self.master = obj, comp, master or obj
        self.emitted: set[str] = set()
        self.alarm: list[str] = []
        self.zones: set[str] = set()

    def add(self, name: str, value: Any, params: dict[str, str] | None = None) -> None:
        self.comp.add(name, value, parameters=params or {})
        self.emitted.add(name)

    def local(self, moment: datetime, obj: Appointment | Task | None = None) -> datetime:
        """`moment` in the series zone (UTC stays UTC, written with Z)."""
        name = iana_name(getattr(obj or self.obj, "timezone", "") or "UTC")
        zone: tzinfo = UTC
        if name not in (None, "UTC"):
            zone = ZoneInfo(name)
            self.zones.add(name)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)


Decoder = Callable[[Decoding, list[Any]], Any]
Encoder = Callable[[Encoding, str, Any], None]


@dataclass(frozen=True)
class FieldMap:
    """One row of a mapping table: model field <-> iCalendar property (plus properties it also consumes)."""

    field: str
    prop: str
    decode: Decoder
    encode: Encoder
    also: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    """Further model fields the decoder sets (e.g. DTSTART also gives full_time and timezone)."""


def _dec_text(ctx: Decoding, values: list[Any]) -> Any:
    return _text_of(values[0]) if values else SKIP


def _enc_text(out: Encoding, prop: str, value: str) -> None:
    if value:
        out.add(prop, vText(value))


def dec_int(ctx: Decoding, values: list[Any]) -> Any:
    return int(str(values[0]).strip()) if values else SKIP


def enc_int(out: Encoding, prop: str, value: int | None) -> None:
    if value:
        out.add(prop, vText(str(value)) if prop.startswith("X-") else value)


def _dec_decimal(ctx: Decoding, values: list[Any]) -> Any:
    return Decimal(str(values[0]).strip()) if values else SKIP


def _enc_decimal(out: Encoding, prop: str, value: Decimal | None) -> None:
    if value is not None:
        out.add(prop, vText(str(value)))


def _dec_utc(ctx: Decoding, values: list[Any]) -> Any:
    if not values:
        return SKIP
    moment, _ = ctx.moment(values[0])
    return moment.astimezone(UTC) if isinstance(moment, datetime) else SKIP


def _enc_utc(out: Encoding, prop: str, value: datetime | None) -> None:
    if value is not None:
        out.add(prop, value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC))


def enc_ms(out: Encoding, prop: str, value: int | None) -> None:
    if value:
        out.add(prop, datetime.fromtimestamp(value / 1000, UTC).replace(microsecond=0))


def dec_ignore(ctx: Decoding, values: list[Any]) -> Any:
    return SKIP


TEXT, INT, DECIMAL, UTC_TIME = (_dec_text, _enc_text), (dec_int, enc_int), (_dec_decimal, _enc_decimal), (
    _dec_utc, _enc_utc)
