"""Calendar and Tasks over ActiveSync: time zones, recurrence, exceptions, attendees, 14.1 vs 16.1."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, date, datetime, timedelta

import pytest

from oxsync.eas import install
from oxsync.eas.mapping.timezone import decode_timezone, encode_timezone
from oxsync.eas.wbxml import E
from oxsync.model import Appointment, Module, Recurrence, RecurrenceType, Task, TaskStatus
from tests.eas_client import client, collection, items, server_ids

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""Protocol-level behaviour that does not depend on the database: run once, on SQLite."""

@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install)


def phone_for(running, version: str):  # type: ignore[no-untyped-def]
    c = client(running, version=version, device_id=f"dev{version.replace('.', '')}")
    c.provision()
    return c


def weekly_series(world) -> int:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CALENDAR)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
    with world.as_user(world.alice, write=True) as session:
        appt = session.create_object(folder, Appointment(
            title="Standup", location="Room 1", start_date=start, end_date=start + timedelta(minutes=30),
            timezone="Europe/Berlin", recurrence=Recurrence(RecurrenceType.WEEKLY, days=2, occurrences=10), alarm=15))
        session.delete_occurrence(folder, appt.object_id, date(2026, 3, 9))
    return appt.object_id


def test_timezone_blob_layout() -> None:
    blob = base64.b64decode(encode_timezone("Europe/Berlin", 2026))
    assert len(blob) == 172
    bias, = struct.unpack_from("<i", blob, 0)
    assert bias == -60
    assert struct.unpack_from("<8H", blob, 68)[1:4] == (10, 0, 5)  # standard: October, Sunday, last week
    assert struct.unpack_from("<8H", blob, 152)[1:5] == (3, 0, 5, 2)
    raw = bytearray(blob)
    raw[4:68] = bytes(64)
    raw[88:152] = bytes(64)
    assert decode_timezone(base64.b64encode(bytes(raw)).decode(), 2026) == "Europe/Berlin"
    pacific = bytearray(172)
    struct.pack_into("<i", pacific, 0, 480)
    struct.pack_into("<8H", pacific, 68, 0, 11, 0, 1, 2, 0, 0, 0)
    struct.pack_into("<i", pacific, 168, -60)
    struct.pack_into("<8H", pacific, 152, 0, 3, 0, 2, 2, 0, 0, 0)
    assert decode_timezone(base64.b64encode(bytes(pacific)).decode(), 2026) == "America/Los_Angeles"


@SQLITE_ONLY
@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_series_export_by_version(running, world, version: str) -> None:  # type: ignore[no-untyped-def]
    series = weekly_series(world)
    phone = phone_for(running, version)
    folder = phone.folder_of_type(8)
    phone.sync(folder, "0")
    data = items(phone.sync(folder))[str(series)]
    assert data.findtext("Calendar:StartTime") == "20260302T090000Z"
    assert decode_timezone(data.findtext("Calendar:TimeZone"), 2026) == "Europe/Berlin"
    assert data.findtext("Calendar:Reminder") == "15" and data.findtext("Calendar:UID")
    rec = data.find("Calendar:Recurrence")
    assert rec.findtext("Calendar:Type") == "1" and rec.findtext("Calendar:DayOfWeek") == "2"
    assert rec.findtext("Calendar:Occurrences") == "10"
    exc = data.find("Calendar:Exceptions").find("Calendar:Exception")
    assert exc.findtext("Calendar:Deleted") == "1"
    if version == "14.1":
        assert data.findtext("Calendar:Location") == "Room 1"
        assert exc.findtext("Calendar:ExceptionStartTime") == "20260309T090000Z"
    else:
        assert data.find("Calendar:Location") is None
        assert data.find("AirSyncBase:Location").findtext("AirSyncBase:DisplayName") == "Room 1"
        assert exc.findtext("AirSyncBase:InstanceId") == "20260309T090000Z"


def test_device_adds_all_day_meeting_with_attendees(running, world) -> None:  # type: ignore[no-untyped-def]
    phone = phone_for(running, "14.1")
    folder = phone.folder_of_type(8)
    phone.sync(folder, "0")
    phone.sync(folder)
    add = E("AirSync:Add", E("AirSync:ClientId", "ev1"), E("AirSync:ApplicationData",
            E("Calendar:TimeZone", encode_timezone("Europe/Berlin", 2026)), E("Calendar:AllDayEvent", "1"),
            E("Calendar:StartTime", "20260704T220000Z"), E("Calendar:EndTime", "20260705T220000Z"),
            E("Calendar:Subject", "Summer party"), E("Calendar:UID", "party-uid-1"), E("Calendar:BusyStatus", "3"),
            E("Calendar:Sensitivity", "0"), E("Calendar:MeetingStatus", "1"),
            E("Calendar:Attendees", E("Calendar:Attendee", E("Calendar:Email", "bob@example.com"), E("Calendar:Name", "Bob")),
              E("Calendar:Attendee", E("Calendar:Email", "guest@elsewhere.org"), E("Calendar:Name", "Guest"))),
            E("AirSyncBase:Body", E("AirSyncBase:Type", "1"), E("AirSyncBase:Data", "Bring food"))))
    reply = phone.sync(folder, commands=[add])
    server_id = collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId")
    with world.as_user(world.alice) as session:
        appt = session.get_object(int(folder), int(server_id))
    assert appt.full_time and appt.start_date == date(2026, 7, 5) and appt.end_date == date(2026, 7, 6)
    assert appt.timezone == "Europe/Berlin" and appt.note == "Bring food" and appt.uid == "party-uid-1"
    emails = {p.email for p in appt.participants if p.email} | {p.entity for p in appt.participants}
    assert world.bob in emails and "guest@elsewhere.org" in emails
    # it is in bob's calendar too, as one object
    with world.as_user(world.bob) as session:
        bob_cal = world.default_folder(world.bob, Module.CALENDAR)
        assert any(o.object_id == int(server_id) for o in session.list_objects(bob_cal))
    # a second Add with the same UID (iOS "add to calendar") updates instead of duplicating
    again = E("AirSync:Add", E("AirSync:ClientId", "ev2"), E("AirSync:ApplicationData",
              E("Calendar:AllDayEvent", "0"), E("Calendar:StartTime", "20260705T100000Z"),
              E("Calendar:EndTime", "20260705T110000Z"), E("Calendar:Subject", "Summer party (moved)"),
              E("Calendar:UID", "party-uid-1")))
    reply = phone.sync(folder, commands=[again])
    assert collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId") == server_id


def test_16_instance_delete_and_change(running, world) -> None:  # type: ignore[no-untyped-def]
    series = weekly_series(world)
    phone = phone_for(running, "16.1")
    folder = phone.folder_of_type(8)
    phone.sync(folder, "0")
    phone.sync(folder)
    delete = E("AirSync:Delete", E("AirSync:ServerId", str(series)), E("AirSyncBase:InstanceId", "20260316T090000Z"))
    change = E("AirSync:Change", E("AirSync:ServerId", str(series)), E("AirSyncBase:InstanceId", "20260323T090000Z"),
               E("AirSync:ApplicationData", E("Calendar:Subject", "Standup (late)"),
                 E("Calendar:StartTime", "20260323T100000Z"), E("Calendar:EndTime", "20260323T103000Z")))
    reply = phone.sync(folder, commands=[delete, change])
    assert collection(reply).find("AirSync:Responses") is None
    with world.as_user(world.alice) as session:
        master = session.get_object(int(folder), series)
        assert date(2026, 3, 16) in master.delete_exceptions and date(2026, 3, 23) in master.change_exceptions
        assert any(o.title == "Standup (late)" for o in session.list_objects(int(folder)))


def test_filter_type_shrink_sends_soft_deletes(running, world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CALENDAR)
    now = datetime.now(UTC).replace(microsecond=0)
    with world.as_user(world.alice, write=True) as session:
        recent = session.create_object(folder, Appointment(title="recent", start_date=now - timedelta(days=3),
                                                           end_date=now - timedelta(days=3, hours=-1)))
        old = session.create_object(folder, Appointment(title="old", start_date=now - timedelta(days=60),
                                                        end_date=now - timedelta(days=60, hours=-1)))
    phone = phone_for(running, "14.1")
    cal = phone.folder_of_type(8)
    phone.sync(cal, "0", options=[E("AirSync:FilterType", "0")])
    assert set(items(phone.sync(cal, options=[E("AirSync:FilterType", "0")]))) == {str(recent.object_id), str(old.object_id)}
    shrunk = phone.sync(cal, options=[E("AirSync:FilterType", "4")])
    assert server_ids(shrunk, "SoftDelete") == [str(old.object_id)]
    grown = phone.sync(cal, options=[E("AirSync:FilterType", "0")])
    assert list(items(grown)) == [str(old.object_id)]


def test_tasks_both_ways(running, world) -> None:  # type: ignore[no-untyped-def]
    phone = phone_for(running, "14.1")
    folder = phone.folder_of_type(7)
    tasks = world.default_folder(world.alice, Module.TASK)
    with world.as_user(world.alice, write=True) as session:
        done = session.create_object(tasks, Task(title="Done already", status=TaskStatus.DONE, percent_completed=100))
        todo = session.create_object(tasks, Task(title="Weekly report", end_date=date(2026, 5, 1),
                                                 recurrence=Recurrence(RecurrenceType.WEEKLY, days=32)))
    phone.sync(folder, "0", options=[E("AirSync:FilterType", "8")])
    got = items(phone.sync(folder, options=[E("AirSync:FilterType", "8")]))
    assert list(got) == [str(todo.object_id)]  # incomplete tasks only
    data = got[str(todo.object_id)]
    assert data.findtext("Tasks:DueDate").startswith("2026-05-01") and data.findtext("Tasks:Complete") == "0"
    assert data.find("Tasks:Recurrence").findtext("Tasks:DayOfWeek") == "32"
    add = E("AirSync:Add", E("AirSync:ClientId", "t1"), E("AirSync:ApplicationData",
            E("Tasks:Subject", "Call Bob"), E("Tasks:Importance", "2"), E("Tasks:UtcDueDate", "2026-06-01T22:00:00.000Z"),
            E("Tasks:DueDate", "2026-06-02T00:00:00.000Z"), E("Tasks:Complete", "0"), E("Tasks:ReminderSet", "1"),
            E("Tasks:ReminderTime", "2026-06-01T07:00:00.000Z")))
    reply = phone.sync(folder, commands=[add], options=[E("AirSync:FilterType", "8")])
    server_id = collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId")
    with world.as_user(world.alice) as session:
        task = session.get_object(tasks, int(server_id))
    assert task.end_date == date(2026, 6, 2) and task.priority == 3
    assert task.alarm == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    complete = E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:ApplicationData",
                 E("Tasks:Subject", "Call Bob"), E("Tasks:Complete", "1"), E("Tasks:DateCompleted", "2026-06-01T10:00:00.000Z")))
    phone.sync(folder, commands=[complete], options=[E("AirSync:FilterType", "8")])
    with world.as_user(world.alice) as session:
        assert session.get_object(tasks, int(server_id)).status == TaskStatus.DONE
    assert done.object_id


def test_14_change_with_exceptions_list(running, world) -> None:  # type: ignore[no-untyped-def]
    series = weekly_series(world)
    phone = phone_for(running, "14.1")
    folder = phone.folder_of_type(8)
    phone.sync(folder, "0")
    data = items(phone.sync(folder))[str(series)]
    data.children = [c for c in data.children if c.tag not in ("Calendar:Exceptions", "Calendar:MeetingStatus",
                                                                  "Calendar:DtStamp")]
    data.append(E("Calendar:Exceptions",
                  E("Calendar:Exception", E("Calendar:Deleted", "1"), E("Calendar:ExceptionStartTime", "20260309T090000Z")),
                  E("Calendar:Exception", E("Calendar:ExceptionStartTime", "20260330T080000Z"),
                    E("Calendar:Subject", "Standup moved"), E("Calendar:StartTime", "20260330T120000Z"),
                    E("Calendar:EndTime", "20260330T123000Z"))))
    reply = phone.sync(folder, commands=[E("AirSync:Change", E("AirSync:ServerId", str(series)), data)])
    assert collection(reply).find("AirSync:Responses") is None
    with world.as_user(world.alice) as session:
        master = session.get_object(int(folder), series)
        assert date(2026, 3, 9) in master.delete_exceptions and date(2026, 3, 30) in master.change_exceptions
        moved = [o for o in session.list_objects(int(folder)) if o.title == "Standup moved"]
    assert len(moved) == 1 and moved[0].start_date == datetime(2026, 3, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_change_exception_travels_inside_its_series(running, world, version: str) -> None:  # type: ignore[no-untyped-def]
    series = weekly_series(world)
    folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        moved = Appointment(title="Standup (moved)", start_date=datetime(2026, 3, 16, 13, 0, tzinfo=UTC),
                            end_date=datetime(2026, 3, 16, 13, 30, tzinfo=UTC))
        exception = session.change_occurrence(folder, series, date(2026, 3, 16), moved)
    phone = phone_for(running, version)
    cal = phone.folder_of_type(8)
    phone.sync(cal, "0")
    got = items(phone.sync(cal))
    assert list(got) == [str(series)]  # the exception is not an item of its own
    exceptions = got[str(series)].find("Calendar:Exceptions").findall("Calendar:Exception")
    changed = [e for e in exceptions if e.findtext("Calendar:Deleted") != "1"]
    assert len(changed) == 1 and changed[0].findtext("Calendar:Subject") == "Standup (moved)"
    assert changed[0].findtext("Calendar:StartTime") == "20260316T130000Z"
    key = "AirSyncBase:InstanceId" if version == "16.1" else "Calendar:ExceptionStartTime"
    assert changed[0].findtext(key) == "20260316T090000Z"
    with world.as_user(world.alice, write=True) as session:
        moved.title = "Standup (moved again)"
        session.change_occurrence(folder, series, date(2026, 3, 16), moved)
    update = phone.sync(cal)
    assert list(items(update, "Change")) == [str(series)] and not items(update)
    assert exception.object_id
