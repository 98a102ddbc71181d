"""iCalendar mapping: vendor exports (Apple, Google, Outlook, Thunderbird), round trips, errors, bounds."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from oxsync.config import LimitSettings
from oxsync.formats.ical import (
    EVENT_FIELDS,
    TODO_FIELDS,
    CalendarItem,
    ICalLimitError,
    ParseError,
    appointment_to_ical,
    items_to_ical,
    parse_calendar,
    task_to_ical,
)
from oxsync.formats.timezones import WINDOWS_TO_IANA, iana_name, vtimezone
from oxsync.model.appointment import (
    FRIDAY,
    MONDAY,
    THURSDAY,
    TUESDAY,
    WEDNESDAY,
    Appointment,
    Confirmation,
    Participant,
    ParticipantKind,
    Recurrence,
    RecurrenceType,
    ShownAs,
)
from oxsync.model.task import Task, TaskPriority, TaskStatus

DATA = Path(__file__).parent / "data" / "ical"
FIXTURES = ["apple.ics", "google.ics", "outlook.ics", "thunderbird_tasks.ics"]


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8")


def items(name: str, **kwargs) -> dict[str, CalendarItem]:
    parsed = parse_calendar(read(name), **kwargs)
    assert not [r for r in parsed if isinstance(r, ParseError)], parsed
    return {item.uid: item for item in parsed if isinstance(item, CalendarItem)}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def line_number(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(re.split(r"\r\n|\n", text), 1) if needle in line)


# ---------------------------------------------------------------------------------------------- vendors

def test_apple_recurring_event_with_exdate_override_alarm_and_attendees() -> None:
    item = items("apple.ics")["4B1A2C3D-0001-4E5F-8A9B-APPLEWEEKLY"]
    master = item.master
    assert isinstance(master, Appointment) and item.line == 22
    assert master.title == "Réunion d'équipe"
    assert master.location == "Salle Mistral, 3e étage"
    assert master.note == ("Réunion d'équipe hebdomadaire — ordre du jour : café ☕, bilan de la semaine, "
                           "points bloquants et prochaines étapes pour l'équipe produit.")
    assert (master.start_date, master.end_date) == (utc(2024, 3, 4, 8), utc(2024, 3, 4, 9))
    assert master.timezone == "Europe/Paris" and not master.full_time
    assert master.sequence == 2 and master.creation_time == utc(2024, 2, 20, 9)
    assert master.recurrence == Recurrence(RecurrenceType.WEEKLY, days=MONDAY | WEDNESDAY,
                                           until=date(2024, 6, 24))
    assert master.delete_exceptions == [date(2024, 3, 13), date(2024, 4, 1)]
    assert master.change_exceptions == [date(2024, 3, 20)]
    assert master.alarm == 15
    assert master.organizer == "alice@example.fr"
    assert [(p.kind, p.email, p.display_name, p.confirmation) for p in master.participants] == [
        (ParticipantKind.EXTERNAL_USER, "alice@example.fr", "Alice Martin", Confirmation.ACCEPT),
        (ParticipantKind.EXTERNAL_USER, "bob@example.org", "Bob Dupont", Confirmation.TENTATIVE),
    ]
    # What no field holds is kept verbatim (unfolded): the room without e-mail, X- properties, the
    # second (Apple default) alarm, and the mapped alarm's own lines.
    assert master.extra["ATTENDEE"].endswith(":urn:uuid:7a6b5c4d-0000-1111-2222-333344445555")
    assert master.extra["X-APPLE-TRAVEL-ADVISORY-BEHAVIOR"] == "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC"
    assert master.extra["X-APPLE-STRUCTURED-LOCATION"] == (
        'X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS="12 rue de Rivoli, 75001 Paris";'
        'X-APPLE-RADIUS=70.5;X-TITLE="Salle Mistral":geo:48.856,2.352')
    assert master.extra["VALARM"].startswith("BEGIN:VALARM\nX-WR-ALARMUID:99999999")
    assert master.extra["VALARM:ACKNOWLEDGED"] == "ACKNOWLEDGED:20240304T074600Z"
    assert master.extra["VALARM:ACTION"] == "ACTION:AUDIO"
    assert "DTSTAMP" not in master.extra and "RRULE" not in master.extra

    [moved] = item.exceptions
    assert moved.title == "Réunion d'équipe (déplacée)"
    assert moved.recurrence_date_position == date(2024, 3, 20)
    assert moved.recurrence_position == 6  # 4, 6, 11, 13 (deleted, still counted), 18, 20 March
    assert (moved.start_date, moved.end_date) == (utc(2024, 3, 20, 10), utc(2024, 3, 20, 11))
    assert moved.recurrence is None and moved.uid == master.uid


def test_apple_all_day_birthday_and_reminder() -> None:
    parsed = items("apple.ics")
    birthday = parsed["4B1A2C3D-0002-ALLDAY"].master
    assert isinstance(birthday, Appointment)
    assert birthday.full_time and (birthday.start_date, birthday.end_date) == (date(2024, 5, 17),
                                                                              date(2024, 5, 18))
    assert birthday.recurrence == Recurrence(RecurrenceType.YEARLY, month=4, day_in_month=17)
    assert birthday.categories == "Famille,Anniversaires"
    assert birthday.shown_as == ShownAs.FREE
    reminder = parsed["4B1A2C3D-0003-REMINDER"].master
    assert isinstance(reminder, Task)
    assert reminder.end_date == date(2024, 3, 5) and reminder.start_date is None
    assert reminder.status == TaskStatus.DONE and reminder.percent_completed == 100
    assert reminder.date_completed == utc(2024, 3, 5, 7, 15)
    assert reminder.priority == TaskPriority.HIGH
    assert reminder.extra == {"X-APPLE-SORT-ORDER": "X-APPLE-SORT-ORDER:728400000"}


def test_google_series_all_day_utc_and_floating() -> None:
    parsed = items("google.ics")
    item = parsed["7kq3n0s1l2m3o4p5q6r7s8t9u0@google.com"]
    master = item.master
    assert isinstance(master, Appointment)
    assert master.timezone == "Europe/Berlin" and master.start_date == utc(2024, 3, 5, 13)
    assert master.recurrence == Recurrence(RecurrenceType.WEEKLY, days=TUESDAY | THURSDAY,
                                           until=date(2024, 4, 30))
    assert master.delete_exceptions == [date(2024, 3, 28)]
    assert master.note == ("Wöchentlicher Abgleich.\n\n日本語のメモ: 進捗を確認します。\n"
                           "Bitte vorher die Unterlagen lesen.")
    assert master.alarm == 30  # TRIGGER:-P0DT0H30M0S, an e-mail alarm: its lines are kept
    assert master.extra["VALARM:ACTION"] == "ACTION:EMAIL"
    assert master.extra["STATUS"] == "STATUS:CONFIRMED"
    assert master.extra["X-GOOGLE-CONFERENCE"] == "X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij"
    assert [(p.display_name, p.confirmation) for p in master.participants] == [  # CN=<the address> names no one
        ("Jürgen Schmidt", Confirmation.ACCEPT), ("", Confirmation.NONE),
        ("田中 太郎", Confirmation.DECLINE)]
    [moved] = item.exceptions
    assert moved.recurrence_date_position == date(2024, 3, 14) and moved.recurrence_position == 4
    assert moved.start_date == utc(2024, 3, 14, 15) and moved.location == "Besprechungsraum Nord"

    holiday = parsed["0abc123def456ghi@google.com"].master
    assert holiday.full_time
    assert (holiday.start_date, holiday.end_date) == (date(2024, 7, 22), date(2024, 8, 3))
    assert holiday.shown_as == ShownAs.FREE and holiday.note == "" and holiday.location == ""
    standup = parsed["utc-event-1@google.com"].master
    assert standup.timezone == "UTC" and standup.start_date == utc(2024, 3, 18, 8, 30)
    assert standup.private_flag
    breakfast = parsed["floating-event-1@google.com"].master
    # Floating time: taken in the calendar's X-WR-TIMEZONE (07:30 CET).
    assert breakfast.timezone == "Europe/Berlin" and breakfast.start_date == utc(2024, 3, 19, 6, 30)


def test_outlook_windows_time_zones_busy_status_and_unsupported_rule() -> None:
    text = read("outlook.ics")
    assert "\r\n" in text
    parsed = items("outlook.ics")
    review = parsed["040000008200E00074C5B7101A82E00800000000D0B2C0A1F56BDA01000000000000000"
                    "01000000012345678901234567890123456789012"]  # a folded Outlook UID
    master = review.master
    assert master.timezone == "Europe/Berlin" and master.start_date == utc(2024, 3, 4, 8, 30)
    assert master.private_flag and master.shown_as == ShownAs.ABSENT
    assert master.categories == "Finance,Red Category" and master.alarm == 15
    assert master.recurrence == Recurrence(RecurrenceType.WEEKLY, days=MONDAY, until=date(2024, 3, 25))
    assert master.delete_exceptions == [date(2024, 3, 11)]
    assert master.extra["VALARM:DESCRIPTION"] == "DESCRIPTION:Reminder"  # the client's alarm text, not the title
    assert master.extra["X-ALT-DESC"].startswith("X-ALT-DESC;FMTTYPE=text/html:<html><body><p>Quarterly")
    assert master.extra["X-MICROSOFT-CDO-INTENDEDSTATUS"] == "X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY"
    assert "X-MICROSOFT-CDO-BUSYSTATUS" not in master.extra
    [moved] = review.exceptions
    assert moved.recurrence_date_position == date(2024, 3, 18) and moved.shown_as == ShownAs.RESERVED
    assert moved.recurrence_position == 3

    paris = parsed["040000008200E00074C5B7101A82E00800000000A1B2C3D4"].master
    assert paris.timezone == "Europe/Paris" and paris.start_date == utc(2024, 4, 12, 14)
    assert paris.shown_as == ShownAs.TEMPORARY
    assert paris.recurrence == Recurrence(RecurrenceType.MONTHLY, days=FRIDAY, day_in_month=2, occurrences=6)

    custom = parsed["040000008200E00074C5B7101A82E00800000000CUSTOM"].master
    # "Customized Time Zone": the VTIMEZONE converts (09:00 EDT = 13:00Z) and names a matching IANA zone.
    assert custom.timezone == "America/New_York" and custom.start_date == utc(2024, 7, 9, 13)
    assert custom.recurrence is None and custom.extra["RRULE"] == "RRULE:FREQ=DAILY;BYHOUR=9,15"


@pytest.mark.filterwarnings("ignore::icalendar.GloballyUniqueTZIDGuessed")  # pytest resets our module filter
def test_thunderbird_tasks() -> None:
    parsed = items("thunderbird_tasks.ics")
    tax = parsed["6b1f4c2e-7d3a-4f5b-9c8d-thunderbird-1"].master
    assert isinstance(tax, Task)
    assert (tax.start_date, tax.end_date) == (date(2024, 3, 10), date(2024, 3, 31))
    assert tax.status == TaskStatus.IN_PROGRESS and tax.priority == TaskPriority.HIGH
    assert tax.percent_completed == 40 and tax.private_flag and tax.categories == "Finanzen"
    assert tax.note == "Belege sammeln, Formular ausfüllen\nund unterschreiben."
    assert tax.alarm == utc(2024, 3, 31, 20, 59)  # RELATED=END -PT1H before 23:59 CEST
    assert (tax.target_duration, tax.actual_duration) == (120, 45)
    assert (tax.target_costs, tax.actual_costs) == (Decimal("150.50"), Decimal("99.99"))
    assert (tax.currency, tax.trip_meter, tax.companies) == ("EUR", "12 km", "ACME GmbH")
    assert tax.billing_information == "Projekt 4711, Kostenstelle 12"
    assert tax.color_label == 5
    assert tax.extra["X-MOZ-LASTACK"] == "X-MOZ-LASTACK:20240330T230000Z"
    tyres = parsed["6b1f4c2e-7d3a-4f5b-9c8d-thunderbird-2"].master
    assert tyres.alarm == utc(2024, 4, 14, 7) and tyres.priority == TaskPriority.LOW
    assert tyres.status == TaskStatus.NOT_STARTED
    assert parsed["6b1f4c2e-7d3a-4f5b-9c8d-thunderbird-3"].master.status == TaskStatus.DEFERRED
    flowers = parsed["6b1f4c2e-7d3a-4f5b-9c8d-thunderbird-4"].master
    assert flowers.recurrence == Recurrence(RecurrenceType.WEEKLY, days=MONDAY, occurrences=10)
    assert [(p.email, p.display_name) for p in flowers.participants] == [("nachbar@example.de", "Nachbar")]


# ---------------------------------------------------------------------------------------------- round trips

def _models(parsed: list) -> list[tuple]:
    return [(dataclasses.asdict(i.master), [dataclasses.asdict(e) for e in i.exceptions])
            for i in parsed if isinstance(i, CalendarItem)]


@pytest.mark.parametrize("name", FIXTURES)
def test_parse_emit_parse_is_stable(name: str) -> None:
    first = parse_calendar(read(name))
    emitted = items_to_ical(first)
    second = parse_calendar(emitted)
    assert not [r for r in second if isinstance(r, ParseError)]
    assert _models(second) == _models(first)
    again = items_to_ical(second)
    assert re.sub(r"DTSTAMP:\S+", "", again) == re.sub(r"DTSTAMP:\S+", "", emitted)
    Calendar.from_ical(emitted)  # the library itself accepts our output
    assert all(len(line.encode()) <= 75 for line in emitted.split("\r\n"))
    assert emitted.endswith("END:VCALENDAR\r\n") and "\n" not in emitted.replace("\r\n", "")


def test_unknown_lines_are_written_back_verbatim() -> None:
    emitted = items_to_ical(parse_calendar(read("apple.ics")))
    unfolded = emitted.replace("\r\n ", "")
    for line in ('X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS="12 rue de Rivoli, 75001 Paris";'
                 'X-APPLE-RADIUS=70.5;X-TITLE="Salle Mistral":geo:48.856,2.352',
                 "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC", "ACKNOWLEDGED:20240304T074600Z",
                 "X-APPLE-DEFAULT-ALARM:TRUE",
                 'ATTENDEE;CN="Salle Mistral";CUTYPE=ROOM;PARTSTAT=ACCEPTED:urn:uuid:7a6b5c4d-0000-1111-2222-'
                 '333344445555'):
        assert line + "\r\n" in unfolded
    assert unfolded.count("BEGIN:VALARM") == 2
    assert "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n" in emitted
    assert "RECURRENCE-ID;TZID=Europe/Paris:20240320T090000\r\n" in emitted
    assert "EXDATE;TZID=Europe/Paris:20240313T090000,20240401T090000\r\n" in emitted


def test_model_to_vevent() -> None:
    master = Appointment(
        uid="series-1", title="Monatsabschluss", start_date=utc(2024, 1, 26, 8), end_date=utc(2024, 1, 26, 9),
        timezone="Europe/Paris", alarm=10, private_flag=True, categories="Finance, Close", color_label=5,
        shown_as=ShownAs.TEMPORARY, organizer="boss@example.org",
        recurrence=Recurrence(RecurrenceType.MONTHLY, days=FRIDAY, day_in_month=5, until=date(2024, 6, 28)),
        delete_exceptions=[date(2024, 3, 29)],
        participants=[Participant(ParticipantKind.USER, entity=17, email="jdoe@example.org",
                                  display_name="Doe, John", confirmation=Confirmation.ACCEPT),
                      Participant(ParticipantKind.GROUP, entity=5, display_name="Staff")],
        extra={"X-CUSTOM": "X-CUSTOM;X-P=1:kept", "contact:photo": "not ours", "RRULE": "RRULE:FREQ=HOURLY"},
    )
    moved = Appointment(title="Monatsabschluss (später)", start_date=utc(2024, 2, 23, 14),
                        end_date=utc(2024, 2, 23, 15), timezone="Europe/Paris",
                        recurrence_date_position=date(2024, 2, 23))
    text = appointment_to_ical(master, [moved])
    unfolded = text.replace("\r\n ", "")
    for line in ("DTSTART;TZID=Europe/Paris:20240126T090000", "DTEND;TZID=Europe/Paris:20240126T100000",
                 "RRULE:FREQ=MONTHLY;UNTIL=20240628T215959Z;BYDAY=-1FR",
                 "EXDATE;TZID=Europe/Paris:20240329T090000",
                 "TRIGGER:-PT10M", "ACTION:DISPLAY", "CLASS:PRIVATE", "CATEGORIES:Finance,Close", "COLOR:red",
                 "X-OX-COLOR-LABEL:5", "TRANSP:OPAQUE", "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE",
                 'ATTENDEE;CN="Doe, John";PARTSTAT=ACCEPTED:mailto:jdoe@example.org',
                 "ORGANIZER:mailto:boss@example.org", "X-CUSTOM;X-P=1:kept", "UID:series-1",
                 "RECURRENCE-ID;TZID=Europe/Paris:20240223T090000",
                 "DTSTART;TZID=Europe/Paris:20240223T150000",
                 "BEGIN:VTIMEZONE", "TZID:Europe/Paris"):
        assert line + "\r\n" in unfolded, line
    assert "not ours" not in text and "FREQ=HOURLY" not in text and "Staff" not in text
    assert unfolded.count("UID:series-1") == 2 and unfolded.count("BEGIN:VTIMEZONE") == 1
    [item] = parse_calendar(text)
    assert item.master.recurrence == master.recurrence and item.master.alarm == 10
    assert item.exceptions[0].recurrence_date_position == date(2024, 2, 23)


def test_model_to_vtodo() -> None:
    task = Task(uid="task-1", title="Angebot schreiben", end_date=date(2024, 5, 2), status=TaskStatus.WAITING,
                priority=TaskPriority.LOW, percent_completed=10, alarm=utc(2024, 5, 1, 7, 30),
                target_costs=Decimal("12.50"), currency="EUR", billing_information="A; B, C",
                companies="ACME")
    text = task_to_ical(task)
    for line in ("DUE;VALUE=DATE:20240502", "STATUS:NEEDS-ACTION", "X-OX-TASK-STATUS:WAITING", "PRIORITY:9",
                 "PERCENT-COMPLETE:10", "TRIGGER;VALUE=DATE-TIME:20240501T073000Z", "X-OX-TARGET-COSTS:12.50",
                 "X-OX-CURRENCY:EUR", "X-OX-BILLING-INFORMATION:A\\; B\\, C", "X-OX-COMPANIES:ACME"):
        assert line + "\r\n" in text, line
    assert "BEGIN:VTIMEZONE" not in text
    [item] = parse_calendar(text)
    back = item.master
    assert (back.status, back.priority, back.alarm, back.target_costs, back.billing_information) == (
        TaskStatus.WAITING, TaskPriority.LOW, utc(2024, 5, 1, 7, 30), Decimal("12.50"), "A; B, C")


def test_long_non_ascii_lines_are_folded_between_characters() -> None:
    title = "Planungstreffen für das nächste Quartal — 日本語のタイトルも長くなります " * 3
    text = appointment_to_ical(Appointment(uid="u", title=title, start_date=utc(2024, 1, 1, 9),
                                           end_date=utc(2024, 1, 1, 10)))
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    [item] = parse_calendar(text)
    assert item.master.title == title


# ---------------------------------------------------------------------------------------------- errors

def test_malformed_components_report_their_line_and_the_rest_is_read() -> None:
    text = read("malformed.ics")
    parsed = parse_calendar(text)
    errors = {error.line: error.message for error in parsed if isinstance(error, ParseError)}
    good = [item.uid for item in parsed if isinstance(item, CalendarItem)]
    assert good == ["good-1", "good-task", "good-2"]
    assert errors.keys() == {
        line_number(text, "UID:missing-end") - 1,  # the BEGIN:VEVENT that never ends
        line_number(text, "DTSTART:2024XX07"),
        line_number(text, "RRULE:FREQ=SOMETIMES"),
        line_number(text, "this line has no colon"),
        line_number(text, "DTEND:20240110T090000Z"),
        line_number(text, "UID:mismatched-end") + 4,  # its stray END:VTODO
    }
    assert "no END:VEVENT" in errors[line_number(text, "UID:missing-end") - 1]
    assert "DTSTART" in errors[line_number(text, "DTSTART:2024XX07")]
    assert "RRULE" in errors[line_number(text, "RRULE:FREQ=SOMETIMES")]
    assert [r.line for r in parsed] == sorted(r.line for r in parsed)


def test_missing_end_at_end_of_input_and_bad_until() -> None:
    text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20240101T100000Z\n"
            "RRULE:FREQ=DAILY;UNTIL=2024-02-01\nEND:VEVENT\nBEGIN:VEVENT\nUID:b\nDTSTART:20240101T100000Z\n")
    parsed = parse_calendar(text)
    assert [(type(r).__name__, r.line) for r in parsed] == [("ParseError", 5), ("ParseError", 7)]


def test_limits() -> None:
    text = read("apple.ics")
    with pytest.raises(ICalLimitError, match="max_import_bytes"):
        parse_calendar(text, limits=LimitSettings(max_import_bytes=1000))
    with pytest.raises(ICalLimitError):
        parse_calendar(text.encode(), limits=LimitSettings(max_import_bytes=1000))
    parsed = parse_calendar(text, limits=LimitSettings(max_recurrence_instances=0))
    errors = [r for r in parsed if isinstance(r, ParseError)]
    assert len(errors) == 1 and "max_recurrence_instances" in errors[0].message and errors[0].line == 22
    assert {r.uid for r in parsed if isinstance(r, CalendarItem)} == {"4B1A2C3D-0002-ALLDAY",
                                                                      "4B1A2C3D-0003-REMINDER"}


def test_task_overrides_are_refused() -> None:
    text = ("BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:t\nSUMMARY:a\nEND:VTODO\nBEGIN:VTODO\nUID:t\n"
            "RECURRENCE-ID;VALUE=DATE:20240102\nEND:VTODO\nEND:VCALENDAR\n")
    parsed = parse_calendar(text)
    assert isinstance(parsed[0], CalendarItem) and parsed[0].master.title == "a"
    assert isinstance(parsed[1], ParseError) and parsed[1].line == 6


def test_resolver_turns_attendees_into_internal_users() -> None:
    directory = {"bob@example.org": Participant(ParticipantKind.USER, entity=42, display_name="Bob D."),
                 "alice@example.fr": Participant(ParticipantKind.USER, entity=7)}
    master = items("apple.ics", resolve=directory.get)["4B1A2C3D-0001-4E5F-8A9B-APPLEWEEKLY"].master
    assert master.organizer_id == 7
    assert [(p.kind, p.entity, p.display_name, p.email, p.confirmation) for p in master.participants] == [
        (ParticipantKind.USER, 7, "Alice Martin", "alice@example.fr", Confirmation.ACCEPT),
        (ParticipantKind.USER, 42, "Bob D.", "bob@example.org", Confirmation.TENTATIVE)]
    assert directory["bob@example.org"].confirmation == Confirmation.NONE  # the resolver's object untouched


def test_duration_transp_and_kept_rrule_precedence() -> None:
    text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:d\nDTSTART;TZID=Asia/Tokyo:20240601T090000\nDURATION:PT90M\n"
            "TRANSP:TRANSPARENT\nRRULE:FREQ=MONTHLY;BYMONTHDAY=1,15\nEXDATE;TZID=Asia/Tokyo:20240615T090000\n"
            "END:VEVENT\nEND:VCALENDAR\n")
    [item] = parse_calendar(text)
    event = item.master
    assert event.timezone == "Asia/Tokyo" and event.end_date == utc(2024, 6, 1, 1, 30)
    assert event.shown_as == ShownAs.FREE
    assert event.recurrence is None and event.extra["RRULE"] == "RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15"
    assert event.extra["EXDATE"] == "EXDATE;TZID=Asia/Tokyo:20240615T090000"
    assert "RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15" in items_to_ical([item])
    event.recurrence = Recurrence(RecurrenceType.MONTHLY, day_in_month=1)  # e.g. set through OX later
    out = items_to_ical([item])
    assert out.count("RRULE") == 1 and "RRULE:FREQ=MONTHLY;BYMONTHDAY=1\r\n" in out


# ---------------------------------------------------------------------------------------------- tables, zones

def test_tables_cover_the_model_and_use_each_property_once() -> None:
    for table, cls in ((EVENT_FIELDS, Appointment), (TODO_FIELDS, Task)):
        names = {f.name for f in dataclasses.fields(cls)}
        for row in table:
            assert {row.field, *row.derived} <= names, row.field
        props = [p for row in table for p in (row.prop, *row.also)]
        assert len(props) == len(set(props))
    assert {row.field for row in TODO_FIELDS} >= {
        "end_date", "date_completed", "percent_completed", "status", "priority", "alarm", "target_duration",
        "actual_duration", "target_costs", "actual_costs", "currency", "trip_meter", "billing_information",
        "companies", "color_label"}


@pytest.mark.parametrize(("tzid", "expected"), [
    ("W. Europe Standard Time", "Europe/Berlin"), ("Pacific Standard Time", "America/Los_Angeles"),
    ("Romance Standard Time", "Europe/Paris"), ("Eastern Standard Time", "America/New_York"),
    ("India Standard Time", "Asia/Kolkata"), ("Tokyo Standard Time", "Asia/Tokyo"),
    ("GMT Standard Time", "Europe/London"), ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("/mozilla.org/20070129_1/Europe/Berlin", "Europe/Berlin"), ("Europe/Paris", "Europe/Paris"),
    ("Z", "UTC"), ("Customized Time Zone", None),
])
def test_tzid_names(tzid: str, expected: str | None) -> None:
    assert iana_name(tzid) == expected


def test_windows_table_names_real_zones() -> None:
    assert len(WINDOWS_TO_IANA) > 100
    for iana in WINDOWS_TO_IANA.values():
        ZoneInfo(iana)


@pytest.mark.parametrize(("zone", "rrule_based"), [("Europe/Paris", True), ("America/New_York", True),
                                                   ("Australia/Sydney", True), ("Asia/Tokyo", True),
                                                   ("Asia/Jerusalem", False)])
def test_generated_vtimezones_give_the_real_offsets(zone: str, rrule_based: bool) -> None:
    text = vtimezone(zone, 2024)
    assert ("RDATE" not in text) == rrule_based
    calendar = Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{text}END:VCALENDAR\r\n")
    tz = calendar.timezones[0].to_tz(lookup_tzid=False)
    for moment in (datetime(2024, 1, 15, 12), datetime(2024, 7, 15, 12), datetime(2030, 1, 15, 12),
                   datetime(2030, 7, 15, 12)):
        assert moment.replace(tzinfo=tz).utcoffset() == moment.replace(tzinfo=ZoneInfo(zone)).utcoffset()


def test_hostile_nesting_is_refused_quickly() -> None:
    depth = 20_000
    text = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:deep\nDTSTART:20240101T000000Z\n" + "BEGIN:X\n" * depth
            + "END:X\n" * depth + "END:VEVENT\nBEGIN:VEVENT\nUID:fine\nDTSTART:20240101T000000Z\nEND:VEVENT\n"
            "END:VCALENDAR\n")
    parsed = parse_calendar(text)
    assert isinstance(parsed[0], ParseError) and "nested deeper" in parsed[0].message
    assert [item.uid for item in parsed if isinstance(item, CalendarItem)] == ["fine"]
