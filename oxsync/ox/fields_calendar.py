"""Appointments <-> `ox:` elements (reference §2.4), plus the recurrence block and participant list
that tasks share (§2.5).

What must hold: full-day start/end are 00:00 UTC dates; an update without `recurrence_type` makes the
object a single appointment (OX rule, §2.4 "Update rules"); `alarm_flag=false` removes the reminder;
change exceptions are server-maintained and never taken from input.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from lxml import etree

from oxsync.model import Appointment, Participant, ParticipantKind, Recurrence, RecurrenceType, ShownAs, Task
from oxsync.model.appointment import Confirmation
from oxsync.model.timeutil import date_from_ms, to_ms
from oxsync.ox.errors import INVALID_INPUT, OxFailure
from oxsync.ox.fields import (
    BOOL,
    DATE,
    INT,
    Field,
    _int_in,
    bool_in,
    bool_out,
    common_fields,
    read_fields,
    write_fields,
)
from oxsync.ox.wire import attr, attrs, el, local, text

TABLE: tuple[Field, ...] = (
    Field("title", "title"),
    Field("location", "location"),
    Field("note", "note"),
    Field("full_time", "full_time", BOOL),
    Field("uid", "uid"),
    *common_fields(with_color=True),
)

CONFIRM_NAMES = {Confirmation.NONE: "none", Confirmation.ACCEPT: "accept", Confirmation.DECLINE: "decline",
                 Confirmation.TENTATIVE: "tentative"}
CONFIRM_OF_NAME = {v: k for k, v in CONFIRM_NAMES.items()}

# (element, model attribute of Recurrence, converter)
RECURRENCE_FIELDS: tuple[Field, ...] = (
    Field("interval", "interval", INT),
    Field("days", "days", INT),
    Field("day_in_month", "day_in_month", INT),
    Field("month", "month", INT),
    Field("until", "until", DATE),
    Field("occurrences", "occurrences", INT),
)


def parse_confirm(value: str) -> Confirmation:
    value = value.strip().lower()
    if value in CONFIRM_OF_NAME:
        return CONFIRM_OF_NAME[value]
    if value.isdigit() and int(value) in Confirmation._value2member_map_:
        return Confirmation(int(value))
    raise OxFailure(INVALID_INPUT, f"unknown confirm value {value[:20]!r}")


def _ms_list(values: list[date]) -> str | None:
    return ",".join(str(to_ms(d)) for d in sorted(values)) if values else None


def _dates_in(value: str) -> list[date]:
    out = []
    for item in value.split(","):
        ms = _int_in(item)
        if ms is not None:
            out.append(date_from_ms(ms))
    return sorted(set(out))


# ------------------------------------------------------------------ recurrence (appointments and tasks)


def recurrence_xml(obj: Appointment | object) -> str:
    rec: Recurrence | None = getattr(obj, "recurrence", None)
    parts = []
    if rec is not None and rec.type != RecurrenceType.NONE:
        parts.append(el("recurrence_type", rec.type.value))
        parts.append(write_fields(rec, RECURRENCE_FIELDS))
    parts.append(el("deleteexceptions", _ms_list(getattr(obj, "delete_exceptions", []))))
    parts.append(el("changeexceptions", _ms_list(getattr(obj, "change_exceptions", []))))
    return "".join(parts)


def read_recurrence(obj: Appointment | Task, given: dict[str, etree._Element], creating: bool, has_data: bool) -> None:
    if "recurrence_type" in given:
        name = text(given["recurrence_type"]).strip().lower()
        try:
            rtype = RecurrenceType(name or "none")
        except ValueError:
            raise OxFailure(INVALID_INPUT, f"unknown recurrence_type {name[:20]!r}") from None
        if rtype == RecurrenceType.NONE:
            obj.recurrence = None
        else:
            rec = Recurrence(type=rtype)
            read_fields(rec, RECURRENCE_FIELDS, given)
            rec.interval = rec.interval or 1
            obj.recurrence = rec
    elif not creating and has_data and getattr(obj, "recurrence_id", None) in (None, getattr(obj, "object_id", None)):
        obj.recurrence = None  # OX: an update without the block ends the series
    if "deleteexceptions" in given:
        obj.delete_exceptions = _dates_in(text(given["deleteexceptions"]))


# ------------------------------------------------------------------ participants


def participants_xml(parts: list[Participant]) -> str:
    if not parts:
        return ""
    out = []
    for p in parts:
        if p.kind in (ParticipantKind.USER, ParticipantKind.EXTERNAL_USER):
            name = "user"
        elif p.kind in (ParticipantKind.GROUP, ParticipantKind.EXTERNAL_GROUP):
            name = "group"
        else:
            name = "resource"
        pairs: list[tuple[str, object]] = []
        if p.kind == ParticipantKind.USER:
            pairs.append(("confirm", CONFIRM_NAMES[p.confirmation]))
            if p.message:
                pairs.append(("confirm_message", p.message))
        pairs.append(("external", bool_out(p.is_external)))
        if p.is_external:
            pairs += [("displayname", p.display_name or p.email), ("mail", p.email)]
        out.append(f"<ox:{name}{attrs(pairs)}>{p.entity}</ox:{name}>")
    return f"<ox:participants>{''.join(out)}</ox:participants>"


def read_participants(element: etree._Element) -> list[Participant]:
    parts = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = local(child)
        external = bool_in(attr(child, "external", "false") or "false")
        if name == "user":
            kind = ParticipantKind.EXTERNAL_USER if external else ParticipantKind.USER
        elif name == "group":
            kind = ParticipantKind.EXTERNAL_GROUP if external else ParticipantKind.GROUP
        elif name == "resource":
            kind = ParticipantKind.RESOURCE
        else:
            raise OxFailure(INVALID_INPUT, f"unknown participant element {name[:30]!r}")
        p = Participant(kind)
        if external:
            p.email = (attr(child, "mail") or "").strip()
            p.display_name = attr(child, "displayname") or ""
        else:
            entity = _int_in(text(child))
            if entity is None:
                raise OxFailure(INVALID_INPUT, f"participant {name} without id")
            p.entity = entity
        confirm = attr(child, "confirm")
        if confirm and kind == ParticipantKind.USER:
            p.confirmation = parse_confirm(confirm)
        parts.append(p)
    return parts


# ------------------------------------------------------------------ appointments


def appointment_xml(a: Appointment) -> str:
    parts = [
        el("start_date", to_ms(a.start_date)), el("end_date", to_ms(a.end_date)),
        el("shown_as", int(a.shown_as)),
        el("alarm_flag", bool_out(a.alarm is not None)), el("alarm", a.alarm),
        write_fields(a, TABLE),
        el("recurrence_id", a.recurrence_id),
        el("recurrence_position", a.recurrence_position),
        el("recurrence_date_position", to_ms(a.recurrence_date_position)),
        recurrence_xml(a),
        participants_xml(a.participants),
    ]
    return "".join(parts)


def read_appointment(a: Appointment, given: dict[str, etree._Element], creating: bool, has_data: bool) -> None:
    read_fields(a, TABLE, given)
    for name in ("start_date", "end_date"):
        if name in given:
            ms = _int_in(text(given[name]))
            setattr(a, name, None if ms is None else ms)
    if "shown_as" in given:
        value = _int_in(text(given["shown_as"]))
        try:
            a.shown_as = ShownAs(value or ShownAs.RESERVED)
        except ValueError:
            raise OxFailure(INVALID_INPUT, f"shown_as must be 1-4, got {value}") from None
    if "alarm" in given:
        a.alarm = _int_in(text(given["alarm"]))
    if "alarm_flag" in given and not BOOL.inp(text(given["alarm_flag"])):
        a.alarm = None
    if "ignore_conflicts" in given:
        a.ignore_conflicts = BOOL.inp(text(given["ignore_conflicts"]))
    if "notify_participants" in given:
        a.notify_participants = BOOL.inp(text(given["notify_participants"]))
    if "participants" in given:
        a.participants = read_participants(given["participants"])
    read_recurrence(a, given, creating, has_data)
    _normalise_times(a)


def _normalise_times(a: Appointment) -> None:
    """Millisecond inputs (or carried-over values) -> datetimes, or dates for full-day events."""
    for name in ("start_date", "end_date"):
        value = getattr(a, name)
        if isinstance(value, int):
            value = datetime.fromtimestamp(value / 1000, tz=UTC)
        if a.full_time and isinstance(value, datetime):
            value = value.date()
        elif not a.full_time and value is not None and not isinstance(value, datetime):
            value = datetime.fromisoformat(value.isoformat()).replace(tzinfo=UTC)
        setattr(a, name, value)

