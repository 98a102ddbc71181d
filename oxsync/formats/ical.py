"""iCalendar (RFC 5545) <-> Appointment (VEVENT) and Task (VTODO), on top of the `icalendar` library.

What must hold:
* One mapping table per class (`EVENT_FIELDS`, `TODO_FIELDS`): model field, iCalendar property, converters.
* Nothing is lost: a property no table consumes (or a value a converter cannot express, e.g. an RRULE OX
  cannot represent) is kept verbatim in `extra` (property name -> unfolded content line(s), joined by
  "\\n") and written out again. Keys `VALARM:<NAME>` hold the mapped alarm's own extra lines.
* A bad component is reported as a `ParseError` with its line number; the others are still read.
* Input is bounded (LimitSettings.max_import_bytes, max_recurrence_instances overrides per UID).

Layout: `icalscan` splits text into blocks (line numbers, folding), `icalfields` holds the tables and
converters, this module groups masters with their overrides and assembles output calendars.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from icalendar import Component, Event, GloballyUniqueTZIDGuessed, Todo

from oxsync.config import LimitSettings
from oxsync.formats.icalcodec import (
    KEEP,
    SKIP,
    Decoding,
    Encoding,
    FieldError,
    FieldMap,
    Resolver,
    Zones,
    local_date,
)
from oxsync.formats.icalfields import ADDITIVE, EVENT_FIELDS, NOT_KEPT, TABLES, TODO_FIELDS
from oxsync.formats.icalscan import (
    NAME_TOKEN,
    Block,
    ParseError,
    content_name,
    content_value,
    fold,
    scan,
    unescape,
)
from oxsync.formats.inputs import comparable, field_names
from oxsync.formats.kept import BASELINE, SOURCE
from oxsync.formats.timezones import iana_name, vtimezone
from oxsync.model.appointment import Appointment, Participant
from oxsync.model.task import Task
from oxsync.recurrence import occurrence_position

__all__ = [
    "EVENT_FIELDS", "TODO_FIELDS", "CalendarItem", "FieldMap", "ICalLimitError", "ParseError", "Resolver",
    "appointment_to_ical", "items_to_ical", "parse_calendar", "render_inputs", "task_to_ical",
]

PRODID = "-//oxsync//oxsync//EN"
# We resolve vendor-prefixed TZIDs ourselves (timezones.iana_name); icalendar's notice is noise here.
warnings.filterwarnings("ignore", category=GloballyUniqueTZIDGuessed)


class ICalLimitError(ValueError):
    """The input exceeds a configured bound (size, overrides per series)."""


@dataclass
class CalendarItem:
    """One series or single object: the master plus its RECURRENCE-ID overrides (master None: orphans)."""

    kind: str
    uid: str
    line: int
    master: Appointment | Task | None
    exceptions: list[Appointment] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ parsing

def _check_size(size: int, chars_hint: int, limits: LimitSettings) -> None:
    if max(size, chars_hint) > limits.max_import_bytes:
        raise ICalLimitError(f"calendar data of {size} bytes exceeds max_import_bytes "
                             f"({limits.max_import_bytes})")


def _map(block: Block, zones: Zones, resolve: Resolver | None) -> tuple[Any, Decoding] | ParseError:
    """Decode one VEVENT/VTODO block through its table; unknown lines go to `extra`."""
    if block.error is not None:
        return block.error
    try:
        comp = Component.from_ical(block.text())
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return ParseError(block.line, f"unreadable {block.name}: {exc}")
    cls, table = TABLES[block.name]
    obj = cls()
    ctx = Decoding(comp, block, zones, resolve, obj)
    for mapping in table:
        try:
            value = mapping.decode(ctx, ctx.values(mapping.prop))
        except FieldError as exc:
            return ParseError(block.line_of(exc.prop), exc.message)
        except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
            return ParseError(block.line_of(mapping.prop), f"{mapping.prop}: {exc}")
        if value is KEEP:
            for name in (mapping.prop, *mapping.also):
                for line in block.lines_of(name):
                    ctx.keep(name, line)
        elif value is not SKIP:
            setattr(obj, mapping.field, value)
    consumed = _consumed(block.name)
    for (_, line), name in zip(block.props, block.names(), strict=True):
        if name not in consumed:
            ctx.keep(name, line)
    for index, child in enumerate(block.children):
        if index != ctx.used_alarm:
            ctx.keep(child.name, "\n".join(child.raw))
    obj.extra = {name: "\n".join(lines) for name, lines in ctx.extra.items()}
    return obj, ctx


@cache
def _consumed(component: str) -> frozenset[str]:
    """The properties `_map` decodes through the table of `component` (or never keeps): the same for
    every parse, made once."""
    return frozenset({name for mapping in TABLES[component][1] for name in (mapping.prop, *mapping.also)} | NOT_KEPT)


def _build(kind: str, uid: str, blocks: list[Block], zones: Zones, resolve: Resolver | None,
           limits: LimitSettings) -> list[CalendarItem | ParseError]:
    """Group one UID's master and RECURRENCE-ID overrides into a CalendarItem (plus any errors)."""
    overrides = [b for b in blocks if b.lines_of("RECURRENCE-ID")]
    masters = [b for b in blocks if not b.lines_of("RECURRENCE-ID")]
    if len(overrides) > limits.max_recurrence_instances:
        return [ParseError(blocks[0].line, f"UID {uid}: {len(overrides)} RECURRENCE-ID overrides exceed "
                                           f"max_recurrence_instances ({limits.max_recurrence_instances})")]
    results: list[CalendarItem | ParseError] = [
        ParseError(b.line, f"duplicate UID {uid}") for b in masters[1:]]
    master = None
    if masters:
        mapped = _map(masters[0], zones, resolve)
        if isinstance(mapped, ParseError):
            results.append(mapped)
        else:
            master = mapped[0]
    item = CalendarItem(kind, uid, (masters or overrides)[0].line, master)
    for block in overrides:
        if kind != "VEVENT":
            results.append(ParseError(block.line, "RECURRENCE-ID overrides of tasks are not supported"))
            continue
        mapped = _map(block, zones, resolve)
        if isinstance(mapped, ParseError):
            results.append(mapped)
            continue
        exception, ctx = mapped
        if isinstance(master, Appointment):
            if isinstance(ctx.recurrence_id, datetime):
                exception.recurrence_date_position = local_date(ctx.recurrence_id, master.timezone)
            if master.recurrence is not None and master.start_date is not None:
                exception.recurrence_position = occurrence_position(
                    master.start_date, master.recurrence, master.timezone, exception.recurrence_date_position)
        item.exceptions.append(exception)
    if isinstance(master, Appointment):
        master.change_exceptions = sorted({e.recurrence_date_position for e in item.exceptions
                                           if e.recurrence_date_position is not None})
    if master is not None or item.exceptions:
        results.append(item)
    return results


def parse_calendar(text: str | bytes, *, resolve: Resolver | None = None, limits: LimitSettings | None = None,
                   floating_tz: str = "UTC") -> list[CalendarItem | ParseError]:
    """Read every VEVENT/VTODO of an iCalendar stream, in input order; bad components become ParseErrors.

    `resolve(email)` may turn attendees into internal participants; floating times are taken in
    X-WR-TIMEZONE if the calendar names one, else `floating_tz`. Raises ICalLimitError for oversize input.
    """
    limits = limits or LimitSettings()
    if isinstance(text, bytes):
        _check_size(len(text), 0, limits)
        text = text.decode("utf-8", errors="replace")
    _check_size(len(text), len(text), limits)
    if len(text) * 4 > limits.max_import_bytes:
        _check_size(len(text.encode("utf-8", errors="replace")), 0, limits)
    zone_blocks, blocks, errors, calendar = scan(text)
    floating = iana_name(calendar.get("X-WR-TIMEZONE", "")) or iana_name(floating_tz) or "UTC"
    zones = Zones(zone_blocks, floating)
    results: list[CalendarItem | ParseError] = list(errors)
    groups: dict[tuple[str, str], list[Block]] = {}
    for block in blocks:
        uid_lines = block.lines_of("UID")
        uid = unescape(content_value(uid_lines[0])).strip() if uid_lines else f"(no UID, line {block.line})"
        groups.setdefault((block.name, uid), []).append(block)
    for (kind, uid), members in groups.items():
        results.extend(_build(kind, uid, members, zones, resolve, limits))
    return sorted(results, key=lambda result: result.line)


# ------------------------------------------------------------------------------------------ output

def _extra_lines(extra: dict[str, str], emitted: set[str]) -> list[str]:
    """The kept lines that are still valid iCalendar and not superseded by a mapped property."""
    lines: list[str] = []
    for key, value in extra.items():
        superseded = key in emitted and key not in ADDITIVE
        if not NAME_TOKEN.fullmatch(key) or superseded or key in ("BEGIN", "END"):
            continue
        group = value.split("\n")
        block = group[0].upper() == f"BEGIN:{key}" and group[-1].upper() == f"END:{key}"
        if block or all(content_name(line) == key for line in group):
            lines.extend(group)
    return lines


def _component(obj: Appointment | Task, master: Appointment | Task | None = None) -> tuple[str, set[str]]:
    """One VEVENT/VTODO as text, and the IANA zones it needs VTIMEZONEs for."""
    kind = "VEVENT" if isinstance(obj, Appointment) else "VTODO"
    comp = Event() if kind == "VEVENT" else Todo()
    out = Encoding(obj, comp, master)
    stamp = datetime.fromtimestamp(obj.last_modified / 1000, UTC) if obj.last_modified else datetime.now(UTC)
    comp.add("DTSTAMP", stamp.replace(microsecond=0))
    uid = (master.uid if master is not None else "") or obj.uid or (
        f"oxsync-{obj.object_id}" if obj.object_id else str(uuid.uuid4()))
    for mapping in TABLES[kind][1]:
        mapping.encode(out, mapping.prop, uid if mapping.prop == "UID" else getattr(obj, mapping.field))
    text = _ical_text(comp)
    tail = f"END:{kind}\r\n"
    body = [*out.alarm, *_extra_lines(obj.extra, out.emitted)]
    folded = "".join(f"{part}\r\n" for line in body for part in fold(line))
    return text[: -len(tail)] + folded + tail, out.zones


def _ical_text(comp: Component) -> str:
    """`comp.to_ical().decode()`, without icalendar's folding of every short line character by character:
    a content line of at most 74 UTF-8 octets is never folded (icalendar folds before the 75th), the
    others are folded by icalendar itself (`Contentline.to_ical`)."""
    return "".join(f"{line if len(line.encode()) < 75 else line.to_ical().decode()}\r\n"
                   for line in comp.content_lines() if line)


def _year(obj: Appointment | Task) -> int:
    start = obj.start_date or obj.end_date
    return start.year if start else datetime.now(UTC).year


def items_to_ical(items: Iterable[CalendarItem | Appointment | Task]) -> str:
    """One VCALENDAR holding every item (masters with their exceptions), VTIMEZONEs first."""
    bodies: list[str] = []
    zones: dict[str, int] = {}
    for item in items:
        pairs: list[tuple[Appointment | Task, Appointment | Task | None]]
        if isinstance(item, CalendarItem):
            pairs = [(item.master, None)] if item.master is not None else []
            pairs += [(exception, item.master) for exception in item.exceptions]
        else:
            pairs = [(item, None)]
        for obj, master in pairs:
            text, used = _component(obj, master)
            bodies.append(text)
            for name in used:
                zones[name] = min(zones.get(name, 9999), _year(obj))
    head = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{PRODID}\r\nCALSCALE:GREGORIAN\r\n"
    timezones = "".join(vtimezone(name, year) for name, year in sorted(zones.items()))
    return head + timezones + "".join(bodies) + "END:VCALENDAR\r\n"


def appointment_to_ical(master: Appointment, exceptions: Iterable[Appointment] = ()) -> str:
    """A series (or single appointment) and its change exceptions as one VCALENDAR."""
    return items_to_ical([CalendarItem("VEVENT", master.uid, 0, master, list(exceptions))])


def task_to_ical(task: Task) -> str:
    """One task as a VCALENDAR with a VTODO."""
    return items_to_ical([task])


# ------------------------------------------------------------------------------------------ inputs

NOT_RENDERED = frozenset({"extra", "object_id", "folder_id", "created_by", "modified_by", "recurrence_id",
                          "organizer_id", "resource_name", "ignore_conflicts", "notify_participants",
                          "creation_time", "last_modified"})
"""Model fields `_component` does not read (store bookkeeping; `object_id` only for an object without
UID, which `render_inputs` refuses), or reads only into the stamp lines DTSTAMP, LAST-MODIFIED and
CREATED that kept.patch leaves out of its comparison (`creation_time`, `last_modified`); `extra` is
compared apart (`_kept_apart`)."""
KEPT_KEYS = (SOURCE, BASELINE)
PARTICIPANT_RENDERED = ("kind", "email", "display_name", "confirmation")
"""What `_enc_participants` and `_enc_organizer` read of a participant (not its entity, folder, alarm)."""
_ONLY: dict[type, tuple[str, ...]] = {Participant: PARTICIPANT_RENDERED}


def render_inputs(master: Appointment | Task, exceptions: Iterable[Appointment] = ()) -> tuple[Any, ...] | None:
    """What rendering `master` with `exceptions` (`appointment_to_ical`, `task_to_ical`, `items_to_ical`
    of their CalendarItem) reads, as a value: equal inputs give texts equal but for their stamp lines,
    so an object read back from the store need not be rendered again to know it renders as written.
    None for an object without UID (its rendering names it by id or a random UID)."""
    if not master.uid:
        return None
    return tuple((type(obj), *(comparable(getattr(obj, name), _ONLY) for name in field_names(type(obj), NOT_RENDERED)),
                  _kept_apart(obj.extra))
                 for obj in (master, *exceptions))


def _kept_apart(extra: dict[str, str]) -> tuple[Any, ...]:
    """`extra` as rendering reads it: in order, but for the kept texts, which it never writes out (no
    property name) and which the store may give back in another place; those by name."""
    return comparable({k: v for k, v in extra.items() if k not in KEPT_KEYS}), *(extra.get(k) for k in KEPT_KEYS)
