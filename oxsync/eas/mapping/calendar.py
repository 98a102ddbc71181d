"""Calendar (MS-ASCAL) <-> `oxsync.model.Appointment`, as one table, with the 16.x differences.

- Times are UTC compact; an all-day event starts and ends at local midnight of its TimeZone.
- <= 14.1: Location and UID are Calendar elements, exceptions are keyed by ExceptionStartTime.
- 16.x: Location is airsyncbase:Location, UID is server-generated (ClientUid de-duplicates retried
  Adds), exceptions are keyed by airsyncbase:InstanceId and single occurrences are changed or
  deleted with Change/Delete + InstanceId (handled by the Sync command).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from oxsync.eas.mapping.common import (
    ATTACHMENTS_ROW,
    BOOL,
    ClassMapping,
    Conv,
    Field,
    InvalidValue,
    MapContext,
    Row,
    Special,
    body_row,
    categories_row,
    compact,
    enum_conv,
    int_conv,
    parse_datetime,
)
from oxsync.eas.mapping.recurrence import recurrence_in, recurrence_out, until_in_zone
from oxsync.eas.mapping.timezone import decode_timezone, encode_timezone
from oxsync.eas.wbxml import E, Element
from oxsync.model import Appointment, Confirmation, Participant, ParticipantKind, ShownAs

P = "Calendar"
BUSY = {ShownAs.FREE: "0", ShownAs.TEMPORARY: "1", ShownAs.RESERVED: "2", ShownAs.ABSENT: "3"}
ATTENDEE_STATUS = {Confirmation.NONE: "5", Confirmation.TENTATIVE: "2", Confirmation.ACCEPT: "3",
                   Confirmation.DECLINE: "4"}
STATUS_CONFIRMATION = {"2": Confirmation.TENTATIVE, "3": Confirmation.ACCEPT, "4": Confirmation.DECLINE}


def _zone(obj: Appointment) -> ZoneInfo:
    try:
        return ZoneInfo(obj.timezone or "UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def _instant(obj: Appointment, value: datetime | date | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0, 0), _zone(obj))


def occurrence_start(obj: Appointment, day: date) -> datetime:
    """The original start instant of the occurrence on local date `day`."""
    start = obj.start_date
    if isinstance(start, datetime):
        local = start.astimezone(_zone(obj))
        return datetime.combine(day, local.time().replace(tzinfo=None), _zone(obj))
    return datetime.combine(day, time(0, 0), _zone(obj))


def occurrence_date(obj: Appointment, text: str) -> date:
    moment = parse_datetime(text).astimezone(_zone(obj))
    if obj.full_time and moment.hour >= 12:
        return (moment + timedelta(hours=12)).date()
    return moment.date()


# ------------------------------------------------------------------ specials


def _tz_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    start = _instant(obj, obj.start_date) or datetime.now(UTC)
    return [E(f"{P}:TimeZone", encode_timezone(obj.timezone or "UTC", start.year))]


def _tz_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is None:
        return
    year = datetime.now(UTC).year
    start = ctx.data.findtext(f"{P}:StartTime") if ctx.data is not None else None
    if start:
        year = parse_datetime(start).year
    obj.timezone = decode_timezone(elem.value_text(), year)


def _times_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    out = [E(f"{P}:DtStamp", compact(datetime.fromtimestamp((obj.last_modified or 0) / 1000, UTC)))]
    for tag, value in (("StartTime", obj.start_date), ("EndTime", obj.end_date)):
        moment = _instant(obj, value)
        if moment is not None:
            out.append(E(f"{P}:{tag}", compact(moment)))
    return out


def _local_date(obj: Appointment, text: str) -> date:
    moment = parse_datetime(text).astimezone(_zone(obj))
    return (moment + timedelta(hours=12)).date() if moment.hour >= 12 else moment.date()


def _times_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    data = ctx.data
    start = data.findtext(f"{P}:StartTime") if data is not None else None
    end = data.findtext(f"{P}:EndTime") if data is not None else None
    if start is None:
        if obj.start_date is None:
            raise InvalidValue("StartTime is required")
        return
    if obj.full_time:
        obj.start_date = _local_date(obj, start)
        obj.end_date = _local_date(obj, end) if end else obj.start_date + timedelta(days=1)
        if obj.end_date <= obj.start_date:
            obj.end_date = obj.start_date + timedelta(days=1)
    else:
        obj.start_date = parse_datetime(start)
        obj.end_date = parse_datetime(end) if end else obj.start_date
    if obj.end_date < obj.start_date:
        raise InvalidValue("EndTime before StartTime")


def _meeting_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    out: list[Element] = []
    organizer_is_me = obj.organizer_id == ctx.user_id or (obj.organizer_id is None and obj.created_by == ctx.user_id)
    others = [p for p in obj.participants if not (p.kind == ParticipantKind.USER and p.entity == obj.organizer_id)]
    status = "0" if not obj.participants or not others else ("1" if organizer_is_me else "3")
    out.append(E(f"{P}:MeetingStatus", status))
    name, email = _organizer(obj, ctx)
    if email:
        out.append(E(f"{P}:OrganizerEmail", email))
    if name:
        out.append(E(f"{P}:OrganizerName", name))
    if status != "0" and ctx.version >= 14.0:
        mine = next((p for p in obj.participants if p.kind == ParticipantKind.USER and p.entity == ctx.user_id), None)
        response = "1" if organizer_is_me else ATTENDEE_STATUS.get(mine.confirmation if mine else Confirmation.NONE, "5")
        out.append(E(f"{P}:ResponseRequested", "1"))
        out.append(E(f"{P}:ResponseType", response))
    return out


def _organizer(obj: Appointment, ctx: MapContext) -> tuple[str, str]:
    if obj.organizer_id is not None and ctx.user_address is not None:
        return ctx.user_address(obj.organizer_id)
    return "", obj.organizer


def _attendees_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    attendees = E(f"{P}:Attendees")
    for p in obj.participants:
        if p.kind == ParticipantKind.USER and p.entity == obj.organizer_id:
            continue
        name, email = p.display_name, p.email
        if p.kind == ParticipantKind.USER and ctx.user_address is not None and not email:
            name, email = ctx.user_address(p.entity)
        if not email:
            continue
        attendee = E(f"{P}:Attendee", E(f"{P}:Email", email), E(f"{P}:Name", name or email))
        if ctx.version >= 12.0:
            attendee.append(E(f"{P}:AttendeeStatus", ATTENDEE_STATUS.get(p.confirmation, "0")))
            kind = "3" if p.kind in (ParticipantKind.RESOURCE, ParticipantKind.RESOURCE_GROUP) else "1"
            attendee.append(E(f"{P}:AttendeeType", kind))
        attendees.append(attendee)
    return [attendees] if attendees.children else []


def _attendees_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is None:
        return  # absent attendees never drop the participants of a meeting
    participants: list[Participant] = []
    for attendee in elem.findall(f"{P}:Attendee"):
        email = attendee.findtext(f"{P}:Email", "").strip()
        name = attendee.findtext(f"{P}:Name", "").strip()
        if not email:
            continue
        found = ctx.resolve(email) if ctx.resolve is not None else None
        confirmation = STATUS_CONFIRMATION.get(attendee.findtext(f"{P}:AttendeeStatus", ""), Confirmation.NONE)
        if found is not None and found[0] == "user":
            participants.append(Participant(ParticipantKind.USER, found[1], email=email, display_name=name,
                                            confirmation=confirmation))
        elif found is not None:
            participants.append(Participant(ParticipantKind.RESOURCE, found[1], email=email, display_name=name))
        else:
            participants.append(Participant(ParticipantKind.EXTERNAL_USER, 0, email=email, display_name=name,
                                            confirmation=confirmation))
    keep = [p for p in obj.participants if p.kind == ParticipantKind.USER and p.entity in (obj.organizer_id, ctx.user_id)
            and not any(q.kind == p.kind and q.entity == p.entity for q in participants)]
    obj.participants = keep + participants


def _recurrence_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    out, _ = until_in_zone(obj.timezone)
    return recurrence_out(obj.recurrence, P, out)


def _recurrence_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is None:
        obj.recurrence = None
        return
    _, into = until_in_zone(obj.timezone)
    obj.recurrence = recurrence_in(elem, P, into)


def _exception_fields(master: Appointment, exc: Appointment, ctx: MapContext) -> list[Element]:
    """The fields of a change exception that differ from the series, as Exception children."""
    out: list[Element] = []
    for tag, value in (("Subject", exc.title), ("StartTime", _instant(exc, exc.start_date)),
                       ("EndTime", _instant(exc, exc.end_date))):
        if value is not None and value != "":
            out.append(E(f"{P}:{tag}", compact(value) if isinstance(value, datetime) else str(value)))
    if exc.location and ctx.version < 16.0:
        out.append(E(f"{P}:Location", exc.location))
    elif exc.location:
        out.append(E("AirSyncBase:Location", E("AirSyncBase:DisplayName", exc.location)))
    out.append(E(f"{P}:BusyStatus", BUSY.get(exc.shown_as, "2")))
    if exc.alarm is not None:
        out.append(E(f"{P}:Reminder", str(exc.alarm)))
    if exc.full_time != master.full_time:
        out.append(E(f"{P}:AllDayEvent", "1" if exc.full_time else "0"))
    return out


def _exceptions_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    if not obj.is_series:
        return []
    days = sorted(set(obj.delete_exceptions) | set(obj.change_exceptions))
    if not days:
        return []
    changed = ctx.exceptions_of(obj) if ctx.exceptions_of is not None and obj.change_exceptions else {}
    out = E(f"{P}:Exceptions")
    for day in days:
        when = compact(occurrence_start(obj, day))
        key = E("AirSyncBase:InstanceId", when) if ctx.version >= 16.0 else E(f"{P}:ExceptionStartTime", when)
        exc = changed.get(day)
        if exc is None or day in obj.delete_exceptions:
            out.append(E(f"{P}:Exception", E(f"{P}:Deleted", "1"), key))
        else:
            out.append(E(f"{P}:Exception", key, *_exception_fields(obj, exc, ctx)))
    return [out]


def _exceptions_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is None:
        return
    deleted: set[date] = set()
    for exc in elem.findall(f"{P}:Exception"):
        key = exc.findtext(f"{P}:ExceptionStartTime") or exc.findtext("AirSyncBase:InstanceId")
        if not key:
            raise InvalidValue("Exception without ExceptionStartTime")
        day = occurrence_date(obj, key)
        if exc.findtext(f"{P}:Deleted") == "1":
            deleted.add(day)
        else:
            ctx.exceptions.append((day, exc))
    obj.delete_exceptions = sorted(deleted)


def _location16_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    return [E("AirSyncBase:Location", E("AirSyncBase:DisplayName", obj.location))] if obj.location else []


def _location16_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    obj.location = elem.findtext("AirSyncBase:DisplayName", "") if elem is not None else ""


def _uid_out(obj: Appointment, ctx: MapContext) -> list[Element]:
    """Objects made by other dialects may lack a UID: derive a stable one from the id."""
    uid = obj.uid or (f"oxsync-{obj.object_id}" if obj.object_id is not None else "")
    return [E(f"{P}:UID", uid)] if uid else []


def _uid_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is not None and elem.value_text().strip():
        obj.uid = elem.value_text().strip()[:255]


def _client_uid_in(obj: Appointment, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is not None and elem.value_text().strip():
        obj.extra["ClientUid"] = elem.value_text().strip()[:256]


def _sensitivity_in(text: str) -> bool:
    return text.strip() in ("2", "3")


SENSITIVITY = Field(f"{P}:Sensitivity", "private_flag", Conv(lambda v: "2" if v else "0", _sensitivity_in, False))

ROWS: tuple[Row, ...] = (
    Special((f"{P}:TimeZone",), _tz_out, _tz_in),
    Field(f"{P}:AllDayEvent", "full_time", BOOL),
    Special((f"{P}:StartTime", f"{P}:EndTime", f"{P}:DtStamp"), _times_out, _times_in),
    ATTACHMENTS_ROW,
    body_row("note"),
    Field(f"{P}:BusyStatus", "shown_as", enum_conv(BUSY, ShownAs.RESERVED, ShownAs.RESERVED)),
    categories_row(P),
    Field(f"{P}:Location", "location", until=14.1),
    Special(("AirSyncBase:Location",), _location16_out, _location16_in, since=16.0),
    Field(f"{P}:Reminder", "alarm", int_conv(0, 525600)),
    SENSITIVITY,
    Field(f"{P}:Subject", "title"),
    Special((f"{P}:UID",), _uid_out, _uid_in, until=14.1),
    Special((f"{P}:UID",), _uid_out, lambda o, e, c, clear: None, since=16.0),
    Special((f"{P}:ClientUid",), lambda o, c: [], _client_uid_in, since=16.0),
    Special((f"{P}:MeetingStatus", f"{P}:OrganizerEmail", f"{P}:OrganizerName"), _meeting_out,
            lambda o, e, c, clear: None),
    Special((f"{P}:Attendees",), _attendees_out, _attendees_in),
    Special((f"{P}:Recurrence",), _recurrence_out, _recurrence_in),
    Special((f"{P}:Exceptions",), _exceptions_out, _exceptions_in),
)

CALENDAR = ClassMapping("Calendar", ROWS, Appointment)


def exception_changes(master: Appointment, exc: Element, ctx: MapContext) -> Appointment:
    """An Appointment with the fields an Exception element overrides (for `change_occurrence`)."""
    changed = Appointment(title=master.title, location=master.location, note=master.note,
                          full_time=master.full_time, shown_as=master.shown_as, timezone=master.timezone,
                          alarm=master.alarm, private_flag=master.private_flag, categories=master.categories)
    data = E("AirSync:ApplicationData", *exc.children)
    sub = MapContext(ctx.version, ctx.user_id, resolve=ctx.resolve)
    CALENDAR.from_eas(data, changed, sub, supported=frozenset())
    sub.data = data
    _times_in(changed, None, sub, False)
    return changed


def fill_defaults(obj: Any) -> Any:
    if obj.start_date is None:
        raise InvalidValue("StartTime is required")
    return obj
