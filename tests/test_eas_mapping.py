"""The ActiveSync data-class tables, both directions, per protocol version (no server needed)."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime

import pytest

from oxsync.eas.mapping.calendar import CALENDAR
from oxsync.eas.mapping.common import Field, InvalidValue, MapContext
from oxsync.eas.mapping.contacts import CONTACTS
from oxsync.eas.mapping.tasks import TASKS
from oxsync.eas.wbxml import E, decode, encode
from oxsync.model import Appointment, Contact, Recurrence, RecurrenceType, Task, TaskPriority
from oxsync.model.contact import STRING_FIELDS


def round_trip(mapping, obj, version: float = 14.1):  # type: ignore[no-untyped-def]
    ctx = MapContext(version, user_id=1)
    data = decode(encode(mapping.to_eas(obj, ctx)))  # through the real codec: every tag must exist
    return data, mapping.from_eas(data, None, MapContext(version, user_id=1))


def test_every_contact_row_round_trips() -> None:
    contact = Contact(birthday=date(1980, 5, 17), anniversary=date(2005, 6, 1), categories="VIP,Family",
                      image1=b"\xff\xd8\xffjpegdata", note="line1\nline2",
                      extra={"YomiFirstName": "Ada-yomi", "CustomerId": "C-1", "Children": "Tom\nAnn"})
    mapped = [r.attr for r in CONTACTS.rows if isinstance(r, Field) and not r.attr.startswith("extra:")]
    for name in mapped:
        if name in STRING_FIELDS:
            value = f"{name}@example.org" if name.startswith("email") else f"v-{name}"
            setattr(contact, name, value)
    data, back = round_trip(CONTACTS, contact)
    for name in mapped:
        assert getattr(back, name) == getattr(contact, name), name
    assert back.categories == "VIP,Family" and back.image1 == contact.image1 and back.note == "line1\nline2"
    assert back.extra == contact.extra
    assert data.findtext("Contacts:Birthday") == "1980-05-17T00:00:00.000Z"
    assert data.findtext("Contacts2:NickName") == "v-nickname"


def test_contact_input_quirks() -> None:
    ctx = MapContext(16.1)
    data = E("AirSync:ApplicationData", E("Contacts:Birthday", "1980-05-16T22:00:00.000Z"),
             E("Contacts:Email1Address", '"Ada L." <ada@example.org>'),
             E("AirSyncBase:Body", E("AirSyncBase:Type", "2"), E("AirSyncBase:Data", "<p>Hi &amp; bye</p>")))
    contact = CONTACTS.from_eas(data, None, ctx)
    assert contact.birthday == date(1980, 5, 17) and contact.email1 == "ada@example.org"
    assert contact.note == "Hi & bye"
    with pytest.raises(InvalidValue):
        CONTACTS.from_eas(E("AirSync:ApplicationData", E("Contacts:Anniversary", "someday")), None, ctx)


@pytest.mark.parametrize("version,preview", [(12.1, False), (14.0, True), (16.1, True)])
def test_body_preference_truncation_and_preview(version: float, preview: bool) -> None:
    contact = Contact(note="x" * 300)
    ctx = MapContext(version, body_type=2, truncation=50, preview=20)
    body = CONTACTS.to_eas(contact, ctx).find("AirSyncBase:Body")
    assert body.findtext("AirSyncBase:Type") == "2" and body.findtext("AirSyncBase:Truncated") == "1"
    assert len(body.findtext("AirSyncBase:Data").encode()) <= 50
    assert (body.find("AirSyncBase:Preview") is not None) == preview
    ctx = MapContext(version, truncation=50, all_or_none=True)
    assert CONTACTS.to_eas(contact, ctx).find("AirSyncBase:Body").find("AirSyncBase:Data") is None


@pytest.mark.parametrize("rec", [
    Recurrence(RecurrenceType.DAILY, interval=2, occurrences=5),
    Recurrence(RecurrenceType.WEEKLY, days=2 | 8, until=date(2026, 12, 31)),
    Recurrence(RecurrenceType.MONTHLY, day_in_month=15),
    Recurrence(RecurrenceType.MONTHLY, days=32, day_in_month=5, interval=2),
    Recurrence(RecurrenceType.YEARLY, day_in_month=24, month=11),
    Recurrence(RecurrenceType.YEARLY, days=16, day_in_month=4, month=10),
])
def test_recurrence_patterns_round_trip(rec: Recurrence) -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    appt = Appointment(title="r", start_date=start, end_date=start, timezone="Europe/Berlin", recurrence=rec)
    _, back = round_trip(CALENDAR, appt)
    assert back.recurrence == rec
    task = Task(title="t", start_date=date(2026, 1, 5), recurrence=rec)
    _, back_task = round_trip(TASKS, task)
    assert back_task.recurrence == rec


def test_daily_with_weekday_mask_becomes_weekly() -> None:
    data = E("AirSync:ApplicationData", E("Calendar:StartTime", "20260105T080000Z"),
             E("Calendar:EndTime", "20260105T090000Z"),
             E("Calendar:Recurrence", E("Calendar:Type", "0"), E("Calendar:DayOfWeek", "62")))
    appt = CALENDAR.from_eas(data, None, MapContext(14.1))
    assert appt.recurrence == Recurrence(RecurrenceType.WEEKLY, days=62)


def test_calendar_version_differences_and_exceptions_in() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    appt = Appointment(title="s", location="Lab", start_date=start, end_date=start, private_flag=True,
                       recurrence=Recurrence(RecurrenceType.DAILY), delete_exceptions=[date(2026, 3, 4)])
    old, new = CALENDAR.to_eas(appt, MapContext(14.1)), CALENDAR.to_eas(appt, MapContext(16.0))
    assert old.findtext("Calendar:Location") == "Lab" and old.find("AirSyncBase:Location") is None
    assert new.find("Calendar:Location") is None and new.find("AirSyncBase:Location") is not None
    assert old.findtext("Calendar:Sensitivity") == "2"
    data = E("AirSync:ApplicationData", E("Calendar:StartTime", "20260302T090000Z"), E("Calendar:EndTime", "20260302T100000Z"),
             E("Calendar:Subject", "s"), E("Calendar:Recurrence", E("Calendar:Type", "0")),
             E("Calendar:Exceptions", E("Calendar:Exception", E("Calendar:Deleted", "1"),
                                         E("Calendar:ExceptionStartTime", "20260304T090000Z")),
               E("Calendar:Exception", E("Calendar:ExceptionStartTime", "20260305T090000Z"),
                 E("Calendar:Subject", "moved"))))
    ctx = MapContext(14.1)
    back = CALENDAR.from_eas(data, None, ctx)
    assert back.delete_exceptions == [date(2026, 3, 4)]
    assert [day for day, _ in ctx.exceptions] == [date(2026, 3, 5)]
    with pytest.raises(InvalidValue):
        CALENDAR.from_eas(E("AirSync:ApplicationData", E("Calendar:Subject", "no start")), None, MapContext(14.1))


def test_task_fields_round_trip() -> None:
    task = Task(title="Report", note="n", start_date=date(2026, 4, 1), end_date=date(2026, 4, 3),
                priority=TaskPriority.HIGH, alarm=datetime(2026, 4, 2, 7, 30, tzinfo=UTC), private_flag=True,
                categories="Work")
    data, back = round_trip(TASKS, task)
    for f in ("title", "note", "start_date", "end_date", "priority", "alarm", "private_flag", "categories"):
        assert getattr(back, f) == getattr(task, f), f
    assert data.findtext("Tasks:UtcDueDate") == data.findtext("Tasks:DueDate")
    assert {f.name for f in fields(Task)} >= {"title"}
