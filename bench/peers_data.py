"""The data every server of bench_peers.py gets, byte for byte: events and vCards.

Events: spread over one year from 2027-01-04 (about N/365 a day), each with a time zone (TZID with its
VTIMEZONE), an external organizer and two attendees (the calendar's owner and a guest), an alarm; one in
ten recurring (weekly, alternately 10 times and endless). The organizer is external so that no server
sends invitations while it is measured (oxsync would queue iMIP REQUESTs for an internal organizer).
vCards: name, two addresses, phones, organisation, postal address, a note.
"""

from __future__ import annotations

from datetime import datetime, timedelta

YEAR_START = datetime(2027, 1, 4, 8, 0)
MONTH = ("20270301T000000Z", "20270401T000000Z")
"""The calendar-query window of the bench (one month)."""

VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\n"
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
    "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
    "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
)


def event_name(i: int) -> str:
    return f"ev{i}.ics"


def card_name(i: int) -> str:
    return f"card{i}.vcf"


def event(i: int, total: int, summary: str = "Bench event", owner: str = "alice@example.com") -> str:
    per_day = max(1, total // 365)
    day, slot = divmod(i, per_day)
    start = YEAR_START + timedelta(days=day, minutes=(slot * 37) % 600)
    end = start + timedelta(minutes=30 + (i % 4) * 15)
    fmt = "%Y%m%dT%H%M%S"
    rrule = ""
    if i % 10 == 0:
        rrule = "RRULE:FREQ=WEEKLY;COUNT=10\r\n" if i % 20 == 0 else "RRULE:FREQ=WEEKLY\r\n"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//oxsync bench//EN\r\n" + VTIMEZONE +
        "BEGIN:VEVENT\r\n"
        f"UID:bench-{i}@example.com\r\nDTSTAMP:20261201T000000Z\r\n"
        f"DTSTART;TZID=Europe/Paris:{start.strftime(fmt)}\r\nDTEND;TZID=Europe/Paris:{end.strftime(fmt)}\r\n"
        f"{rrule}SUMMARY:{summary} {i}\r\nLOCATION:Room {i % 17}\r\n"
        f"DESCRIPTION:Generated event number {i} for the side-by-side bench.\r\n"
        f"ORGANIZER;CN=Partner {i % 50}:mailto:partner{i % 50}@elsewhere.test\r\n"
        f"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:{owner}\r\n"
        f"ATTENDEE;CN=Guest {i % 31};PARTSTAT=ACCEPTED;ROLE=OPT-PARTICIPANT:mailto:guest{i % 31}@elsewhere.test\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def card(i: int, note: str = "Generated contact") -> str:
    return (
        "BEGIN:VCARD\r\nVERSION:3.0\r\n"
        f"UID:card-{i}@example.com\r\nFN:Person {i} Bench\r\nN:Bench;Person {i};;;\r\n"
        f"EMAIL;TYPE=INTERNET,WORK:person{i}@example.org\r\nEMAIL;TYPE=INTERNET,HOME:p{i}@home.test\r\n"
        f"TEL;TYPE=WORK,VOICE:+33 1 {i % 100:02d} {i % 97:02d} {i % 89:02d} {i % 83:02d}\r\n"
        f"TEL;TYPE=CELL:+33 6 {i % 79:02d} {i % 73:02d} {i % 71:02d} {i % 67:02d}\r\n"
        f"ORG:Company {i % 211}\r\nTITLE:Engineer\r\n"
        f"ADR;TYPE=WORK:;;{i} rue de la Paix;Paris;;75002;France\r\n"
        f"NOTE:{note} {i}.\r\nEND:VCARD\r\n"
    )
