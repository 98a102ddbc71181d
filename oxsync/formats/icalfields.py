"""The iCalendar mapping tables: Appointment <-> VEVENT and Task <-> VTODO, one row per model field.

Each row names the model field, the iCalendar property (plus any it also consumes) and a decoder/encoder
pair. Decoders run in table order (DTSTART before what depends on it) and return a value, SKIP (leave the
default) or KEEP (leave the default and keep the raw lines in `extra`); they raise FieldError so the
caller can report the property's line.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from icalendar import vBroken, vCalAddress, vDuration, vRecur, vText

from oxsync.formats.icalcodec import (
    DECIMAL,
    INT,
    KEEP,
    SKIP,
    TEXT,
    UTC_TIME,
    Decoder,
    Decoding,
    Encoding,
    FieldError,
    FieldMap,
    dec_ignore,
    dec_int,
    enc_int,
    enc_ms,
    local_date,
)
from oxsync.formats.icalscan import content_name, content_value
from oxsync.formats.timezones import iana_name
from oxsync.model.appointment import Appointment, Confirmation, Participant, ParticipantKind, ShownAs
from oxsync.model.task import Task, TaskPriority, TaskStatus
from oxsync.recurrence import InvalidRecurrence, UnsupportedRecurrence, from_rrule, to_rrule


def _dec_start(ctx: Decoding, values: list[Any]) -> Any:
    if not values:
        raise FieldError("DTSTART", f"{ctx.block.name} without DTSTART")
    moment, tzname = ctx.moment(values[0])
    ctx.obj.full_time = not isinstance(moment, datetime)  # type: ignore[union-attr]
    if isinstance(moment, datetime):
        ctx.tzname = ctx.obj.timezone = tzname or "UTC"  # type: ignore[union-attr]
        return moment.astimezone(UTC)
    return moment


def _enc_start(out: Encoding, prop: str, value: datetime | date | None) -> None:
    if isinstance(value, datetime) and not getattr(out.obj, "full_time", False):
        out.add(prop, out.local(value))
    elif value is not None:
        out.add(prop, value.date() if isinstance(value, datetime) else value)


def _dec_end(ctx: Decoding, values: list[Any]) -> Any:
    start = ctx.obj.start_date
    if values:
        end, _ = ctx.moment(values[0])
        if isinstance(end, datetime) != isinstance(start, datetime):
            raise FieldError("DTEND", "DTEND and DTSTART must both be dates or both date-times")
    elif duration := ctx.values("DURATION"):
        end = start + duration[0].dt
        ctx.keep("DURATION", ctx.block.lines_of("DURATION")[0])  # written as given while it still holds
    else:
        end = start if isinstance(start, datetime) else start + timedelta(days=1)  # type: ignore[operator]
        ctx.keep("DTEND", NO_END)  # written without DTEND again while the end stays the implied one
    if end < start:  # type: ignore[operator]
        raise FieldError("DTEND" if values else "DURATION", "the event ends before it starts")
    return end.astimezone(UTC) if isinstance(end, datetime) else end


NO_END = ""
"""Kept value of DTEND for an event that had neither DTEND nor DURATION (an empty line is never output)."""


def _enc_end(out: Encoding, prop: str, value: datetime | date | None) -> None:
    start = getattr(out.obj, "start_date", None)
    implied = start if isinstance(start, datetime) else start + timedelta(days=1) if start is not None else None
    if out.obj.extra.get("DTEND") == NO_END and value == implied:
        return
    kept = out.obj.extra.get("DURATION", "")
    if kept and start is not None and value is not None and "\n" not in kept:
        try:
            if start + vDuration.from_ical(content_value(kept).strip()) == value:
                return
        except ValueError:
            pass
    out.emitted.update((prop, "DURATION"))
    _enc_start(out, prop, value)


BUSY_STATUS = {"FREE": ShownAs.FREE, "TENTATIVE": ShownAs.TEMPORARY, "BUSY": ShownAs.RESERVED,
               "OOF": ShownAs.ABSENT, "WORKINGELSEWHERE": ShownAs.FREE}
_BUSY_OUT = {ShownAs.TEMPORARY: "TENTATIVE", ShownAs.ABSENT: "OOF"}


def _dec_shown_as(ctx: Decoding, values: list[Any]) -> Any:
    busy = ctx.values("X-MICROSOFT-CDO-BUSYSTATUS")
    if busy and str(busy[0]).strip().upper() in BUSY_STATUS:
        return BUSY_STATUS[str(busy[0]).strip().upper()]
    return ShownAs.FREE if values and str(values[0]).upper() == "TRANSPARENT" else ShownAs.RESERVED


def _enc_shown_as(out: Encoding, prop: str, value: ShownAs) -> None:
    out.add(prop, "TRANSPARENT" if value == ShownAs.FREE else "OPAQUE")
    if value in _BUSY_OUT:
        out.add("X-MICROSOFT-CDO-BUSYSTATUS", vText(_BUSY_OUT[ShownAs(value)]))


def _dec_class(ctx: Decoding, values: list[Any]) -> Any:
    value = str(values[0]).upper() if values else "PUBLIC"
    return {"PUBLIC": False, "PRIVATE": True, "CONFIDENTIAL": True}.get(value, KEEP)


def _enc_class(out: Encoding, prop: str, value: bool) -> None:
    if value:
        out.add(prop, "PRIVATE")


def _dec_categories(ctx: Decoding, values: list[Any]) -> Any:
    names = [str(name).strip() for value in values for name in getattr(value, "cats", [value])]
    return ",".join(name for name in names if name) if values else SKIP


def _enc_categories(out: Encoding, prop: str, value: str) -> None:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if names:
        out.add(prop, names)


COLOR_LABELS = ("", "lightblue", "darkblue", "purple", "pink", "red", "orange", "yellow", "lightgreen",
                "darkgreen", "gray")
"""OX color_label 0-10 <-> RFC 7986 COLOR (CSS3 names)."""


def _dec_color(ctx: Decoding, values: list[Any]) -> Any:
    if values:
        label = int(str(values[0]).strip())
        return label if 0 <= label < len(COLOR_LABELS) else KEEP
    color = ctx.values("COLOR")
    name = str(color[0]).strip().lower() if color else ""
    return COLOR_LABELS.index(name) if name in COLOR_LABELS[1:] else KEEP if color else SKIP


def _enc_color(out: Encoding, prop: str, value: int) -> None:
    if 0 < value < len(COLOR_LABELS):
        out.add("COLOR", vText(COLOR_LABELS[value]))
        out.add(prop, vText(str(value)))


def _take_alarm(ctx: Decoding, index: int) -> None:
    """Remember which VALARM a field consumed; its other lines (ACTION, DESCRIPTION included: the
    client's alarm text is its own) survive as `VALARM:<NAME>` extras."""
    ctx.used_alarm = index
    for _, line in ctx.block.children[index].props:
        name = content_name(line)
        if name != "TRIGGER":
            ctx.keep(f"VALARM:{name}", line)


def _dec_alarm_minutes(ctx: Decoding, values: list[Any]) -> Any:
    """First VALARM with a TRIGGER relative to the start, whole minutes before it."""
    for index, alarm in enumerate(ctx.comp.subcomponents):
        trigger = alarm.get("TRIGGER") if alarm.name == "VALARM" else None
        if trigger is None or isinstance(trigger, vBroken) or not isinstance(trigger.dt, timedelta):
            continue
        seconds = -trigger.dt.total_seconds()
        if trigger.params.get("RELATED", "START").upper() == "START" and seconds >= 0 and seconds % 60 == 0:
            _take_alarm(ctx, index)
            return int(seconds // 60)
    return SKIP


def _dec_alarm_time(ctx: Decoding, values: list[Any]) -> Any:
    """Tasks: first VALARM whose TRIGGER is absolute, or relative to a DTSTART/DUE that has a time."""
    for index, alarm in enumerate(ctx.comp.subcomponents):
        trigger = alarm.get("TRIGGER") if alarm.name == "VALARM" else None
        if trigger is None or isinstance(trigger, vBroken):
            continue
        if isinstance(trigger.dt, datetime):
            moment, _ = ctx.moment(trigger)
        else:
            anchor = ctx.values("DUE" if trigger.params.get("RELATED", "").upper() == "END" else "DTSTART")
            base = ctx.moment(anchor[0])[0] if anchor else None
            if not isinstance(base, datetime):
                continue
            moment = base + trigger.dt
        _take_alarm(ctx, index)
        return moment.astimezone(UTC)  # type: ignore[union-attr]
    return SKIP


def _alarm_lines(out: Encoding, trigger: str) -> None:
    own = {key[7:]: value.split("\n") for key, value in out.obj.extra.items() if key.startswith("VALARM:")}
    lines = ["BEGIN:VALARM", trigger]
    if "ACTION" not in own:
        lines.append("ACTION:DISPLAY")
    display = "ACTION" not in own or content_value(own["ACTION"][0]).strip().upper() == "DISPLAY"
    if display and "DESCRIPTION" not in own:  # required for DISPLAY alarms (RFC 5545 §3.6.6)
        lines.append("DESCRIPTION:" + vText(out.obj.title or "Reminder").to_ical().decode())
    out.alarm = [*lines, *(line for group in own.values() for line in group), "END:VALARM"]


def _enc_alarm_minutes(out: Encoding, prop: str, value: int | None) -> None:
    if value is not None:
        _alarm_lines(out, f"TRIGGER:-PT{value}M" if value else "TRIGGER:PT0S")


def _enc_alarm_time(out: Encoding, prop: str, value: datetime | None) -> None:
    if value is not None:
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        _alarm_lines(out, f"TRIGGER;VALUE=DATE-TIME:{moment:%Y%m%dT%H%M%SZ}")


PARTSTAT = {"NEEDS-ACTION": Confirmation.NONE, "ACCEPTED": Confirmation.ACCEPT,
            "DECLINED": Confirmation.DECLINE, "TENTATIVE": Confirmation.TENTATIVE}
_PARTSTAT_OUT = {confirmation: name for name, confirmation in PARTSTAT.items()}
_CUTYPE_OUT = {ParticipantKind.GROUP: "GROUP", ParticipantKind.EXTERNAL_GROUP: "GROUP",
               ParticipantKind.RESOURCE: "RESOURCE", ParticipantKind.RESOURCE_GROUP: "RESOURCE"}


def _email(value: Any) -> str:
    address = str(getattr(value, "params", {}).get("EMAIL") or value).strip()
    address = address[7:] if address.lower().startswith("mailto:") else address
    return address if "@" in address and ":" not in address else ""


def _dec_participants(ctx: Decoding, values: list[Any]) -> Any:
    found: list[Participant] = []
    for index, value in enumerate(values):
        email = _email(value)
        if not email:  # e.g. urn:uuid without EMAIL: keep the line as it was
            ctx.keep("ATTENDEE", ctx.block.lines_of("ATTENDEE")[index])
            continue
        params = value.params
        confirmation = PARTSTAT.get(str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(), Confirmation.NONE)
        name = str(params.get("CN", ""))
        name = "" if name.strip().lower() == email.lower() else name  # the address is no name (not written)
        known = ctx.resolve(email) if ctx.resolve else None
        if known is not None:
            found.append(replace(known, confirmation=confirmation, display_name=known.display_name or name,
                                 email=known.email or email))
        else:
            kind = ParticipantKind.EXTERNAL_GROUP if str(params.get("CUTYPE", "")).upper() == "GROUP" else \
                ParticipantKind.EXTERNAL_USER
            found.append(Participant(kind=kind, email=email, display_name=name, confirmation=confirmation))
    return found if values else SKIP


def _enc_participants(out: Encoding, prop: str, value: list[Participant]) -> None:
    for participant in value:
        if participant.email:
            params = {"PARTSTAT": _PARTSTAT_OUT[Confirmation(participant.confirmation)]}
            if participant.display_name and participant.display_name != participant.email:
                params["CN"] = participant.display_name  # the store names externals by address: no news
            if participant.kind in _CUTYPE_OUT:
                params["CUTYPE"] = _CUTYPE_OUT[ParticipantKind(participant.kind)]
            out.add(prop, vCalAddress(f"mailto:{participant.email}"), params)


def _dec_organizer(ctx: Decoding, values: list[Any]) -> Any:
    email = _email(values[0]) if values else ""
    if not email:
        return KEEP if values else SKIP
    known = ctx.resolve(email) if ctx.resolve else None
    if known is not None and known.kind == ParticipantKind.USER:
        ctx.obj.organizer_id = known.entity  # type: ignore[union-attr]
    return email


def _enc_organizer(out: Encoding, prop: str, value: str) -> None:
    if value and "@" in value:
        name = next((p.display_name for p in out.obj.participants if p.email == value and p.display_name), "")
        out.add(prop, vCalAddress(f"mailto:{value}"), {"CN": name} if name else None)


def _series_start(obj: Appointment | Task) -> datetime | date | None:
    return obj.start_date or (obj.end_date if isinstance(obj, Task) else None)


def _dec_rrule(ctx: Decoding, values: list[Any]) -> Any:
    start = _series_start(ctx.obj)
    if not values or start is None:
        return KEEP if values else SKIP
    if len(values) > 1:
        return KEEP
    try:
        return from_rrule(content_value(ctx.block.lines_of("RRULE")[0]), start, ctx.tzname)
    except UnsupportedRecurrence:
        return KEEP
    except InvalidRecurrence as exc:
        raise FieldError("RRULE", f"RRULE: {exc}") from None


def _enc_rrule(out: Encoding, prop: str, value: Any) -> None:
    start = _series_start(out.obj)
    if value is not None and value.type != "none" and start is not None and not _is_exception(out.obj):
        local = out.local(start) if isinstance(start, datetime) and not _full_time(out.obj) else start
        out.add(prop, vRecur.from_ical(to_rrule(value, local)))  # UNTIL is a day of local's own zone


def _dec_exdate(ctx: Decoding, values: list[Any]) -> Any:
    if not values:
        return SKIP
    if ctx.obj.recurrence is None:
        return KEEP
    moments = (ctx.moment(item)[0] for value in values for item in value.dts)
    return sorted({local_date(moment, ctx.tzname) for moment in moments})


def _occurrence_time(out: Encoding, day: date) -> datetime | date:
    """The original start of the occurrence on `day`: the master's local start time on that date."""
    start = _series_start(out.master)
    if not isinstance(start, datetime) or _full_time(out.master):
        return day
    local = out.local(start, out.master)
    return datetime.combine(day, local.time(), local.tzinfo)


def _enc_exdate(out: Encoding, prop: str, value: list[date]) -> None:
    if value and out.obj.recurrence is not None:
        out.add(prop, [_occurrence_time(out, day) for day in value])


def _dec_recurrence_id(ctx: Decoding, values: list[Any]) -> Any:
    if not values:
        return SKIP
    ctx.recurrence_id, _ = ctx.moment(values[0])
    return local_date(ctx.recurrence_id, ctx.tzname)


def _enc_recurrence_id(out: Encoding, prop: str, value: date | None) -> None:
    if value is not None:
        out.add(prop, _occurrence_time(out, value))


def _is_exception(obj: Appointment | Task) -> bool:
    return getattr(obj, "recurrence_date_position", None) is not None


def _full_time(obj: Appointment | Task) -> bool:
    return bool(getattr(obj, "full_time", False))


def _dec_day_of(prop: str) -> Decoder:
    """Tasks keep dates: a DTSTART/DUE with a time becomes its local date. The original line is kept
    in `extra` so the time of day survives a round trip while the date is unchanged (OX tasks have
    no time; CalDAV clients such as Reminders do)."""

    def decode(ctx: Decoding, values: list[Any]) -> Any:
        if not values:
            return SKIP
        moment, _ = ctx.moment(values[0])
        if isinstance(moment, datetime):
            ctx.keep(prop, ctx.block.lines_of(prop)[0])
            return moment.date()
        return moment

    return decode


_dec_day = _dec_day_of("DTSTART")


def _dec_due(ctx: Decoding, values: list[Any]) -> Any:
    if values:
        return _dec_day_of("DUE")(ctx, values)
    duration, start = ctx.values("DURATION"), ctx.obj.start_date
    if not duration or start is None:
        return SKIP
    if "DTSTART" in ctx.extra:  # a timed start with a duration: keep both as written
        ctx.keep("DURATION", ctx.block.lines_of("DURATION")[0])
    return start + timedelta(days=duration[0].dt.days)


_DAY_IN_LINE = re.compile(r":(\d{8})(?:T\d{6}Z?)?$")


def _kept_time(out: Encoding, prop: str, value: date) -> bool:
    """True if the kept timed line of `prop` still falls on `value` (then it is written instead)."""
    line = out.obj.extra.get(prop, "")
    found = _DAY_IN_LINE.search(line) if line and "\n" not in line else None
    if found is None or found.group(1) != value.strftime("%Y%m%d"):
        return False
    tzid = re.search(r";TZID=\"?([^\":;]+)", line.split(":", 1)[0] + ":")
    if tzid and (name := iana_name(tzid.group(1))) not in (None, "UTC"):
        out.zones.add(name)
    return True


def _enc_day(out: Encoding, prop: str, value: date | None) -> None:
    if value is None:
        return
    day = value.date() if isinstance(value, datetime) else value
    if _kept_time(out, prop, day):
        return
    out.emitted.add(prop)  # a stale kept line must not be written
    out.add(prop, day)


def _enc_due(out: Encoding, prop: str, value: date | None) -> None:
    start = getattr(out.obj, "start_date", None)
    if "DURATION" in out.obj.extra and start is not None and value == start and \
            _kept_time(out, "DTSTART", start):
        return
    out.emitted.add("DURATION")
    _enc_day(out, prop, value)


TASK_STATUS = {"NEEDS-ACTION": TaskStatus.NOT_STARTED, "IN-PROCESS": TaskStatus.IN_PROGRESS,
               "COMPLETED": TaskStatus.DONE, "CANCELLED": TaskStatus.DEFERRED}
_STATUS_OUT = {**{status: name for name, status in TASK_STATUS.items()}, TaskStatus.WAITING: "NEEDS-ACTION"}


def _dec_status(ctx: Decoding, values: list[Any]) -> Any:
    marker = ctx.values("X-OX-TASK-STATUS")
    if marker and str(marker[0]).strip().upper() == "WAITING":
        return TaskStatus.WAITING
    return TASK_STATUS.get(str(values[0]).strip().upper(), KEEP) if values else SKIP


def _enc_status(out: Encoding, prop: str, value: TaskStatus) -> None:
    out.add(prop, _STATUS_OUT[TaskStatus(value)])
    if value == TaskStatus.WAITING:
        out.add("X-OX-TASK-STATUS", vText("WAITING"))


def _dec_priority(ctx: Decoding, values: list[Any]) -> Any:
    level = int(str(values[0]).strip()) if values else 0
    return TaskPriority.HIGH if 1 <= level <= 4 else TaskPriority.LOW if level >= 6 else TaskPriority.NORMAL


def _enc_priority(out: Encoding, prop: str, value: TaskPriority) -> None:
    out.add(prop, {TaskPriority.HIGH: 1, TaskPriority.NORMAL: 5, TaskPriority.LOW: 9}[TaskPriority(value)])


def _dec_percent(ctx: Decoding, values: list[Any]) -> Any:
    return min(100, max(0, int(str(values[0]).strip()))) if values else SKIP


_COMMON_HEAD = (
    FieldMap("uid", "UID", *TEXT),
    FieldMap("title", "SUMMARY", *TEXT),
    FieldMap("note", "DESCRIPTION", *TEXT),
)
_COMMON_TAIL = (
    FieldMap("private_flag", "CLASS", _dec_class, _enc_class),
    FieldMap("categories", "CATEGORIES", _dec_categories, _enc_categories),
    FieldMap("color_label", "X-OX-COLOR-LABEL", _dec_color, _enc_color, also=("COLOR",)),
    FieldMap("participants", "ATTENDEE", _dec_participants, _enc_participants),
    FieldMap("recurrence", "RRULE", _dec_rrule, _enc_rrule),
    FieldMap("delete_exceptions", "EXDATE", _dec_exdate, _enc_exdate),
    FieldMap("creation_time", "CREATED", *UTC_TIME),
    FieldMap("last_modified", "LAST-MODIFIED", dec_ignore, enc_ms),
)

EVENT_FIELDS: tuple[FieldMap, ...] = (
    *_COMMON_HEAD,
    FieldMap("location", "LOCATION", *TEXT),
    FieldMap("start_date", "DTSTART", _dec_start, _enc_start, derived=("full_time", "timezone")),
    FieldMap("end_date", "DTEND", _dec_end, _enc_end, also=("DURATION",)),
    FieldMap("shown_as", "TRANSP", _dec_shown_as, _enc_shown_as, also=("X-MICROSOFT-CDO-BUSYSTATUS",)),
    FieldMap("alarm", "VALARM", _dec_alarm_minutes, _enc_alarm_minutes),
    FieldMap("organizer", "ORGANIZER", _dec_organizer, _enc_organizer, derived=("organizer_id",)),
    *_COMMON_TAIL,
    FieldMap("recurrence_date_position", "RECURRENCE-ID", _dec_recurrence_id, _enc_recurrence_id),
    FieldMap("sequence", "SEQUENCE", dec_int, lambda out, prop, value: out.add(prop, value)),
)
"""Appointment <-> VEVENT, in decoding order (DTSTART before what depends on it)."""

TODO_FIELDS: tuple[FieldMap, ...] = (
    *_COMMON_HEAD,
    FieldMap("start_date", "DTSTART", _dec_day, _enc_day),
    FieldMap("end_date", "DUE", _dec_due, _enc_due, also=("DURATION",)),
    FieldMap("date_completed", "COMPLETED", *UTC_TIME),
    FieldMap("percent_completed", "PERCENT-COMPLETE", _dec_percent, enc_int),
    FieldMap("status", "STATUS", _dec_status, _enc_status, also=("X-OX-TASK-STATUS",)),
    FieldMap("priority", "PRIORITY", _dec_priority, _enc_priority),
    FieldMap("alarm", "VALARM", _dec_alarm_time, _enc_alarm_time),
    *_COMMON_TAIL,
    FieldMap("target_duration", "X-OX-TARGET-DURATION", *INT),
    FieldMap("actual_duration", "X-OX-ACTUAL-DURATION", *INT),
    FieldMap("target_costs", "X-OX-TARGET-COSTS", *DECIMAL),
    FieldMap("actual_costs", "X-OX-ACTUAL-COSTS", *DECIMAL),
    FieldMap("currency", "X-OX-CURRENCY", *TEXT),
    FieldMap("trip_meter", "X-OX-TRIP-METER", *TEXT),
    FieldMap("billing_information", "X-OX-BILLING-INFORMATION", *TEXT),
    FieldMap("companies", "X-OX-COMPANIES", *TEXT),
)
"""Task <-> VTODO; OX task fields without an iCalendar property travel as X-OX-* properties."""

TABLES: dict[str, tuple[type[Appointment] | type[Task], tuple[FieldMap, ...]]] = {
    "VEVENT": (Appointment, EVENT_FIELDS), "VTODO": (Task, TODO_FIELDS)}
NOT_KEPT = {"DTSTAMP"}  # regenerated on output
ADDITIVE = frozenset({"ATTENDEE"})
"""Properties whose kept lines add to the mapped ones (e.g. an attendee without e-mail) on output."""
