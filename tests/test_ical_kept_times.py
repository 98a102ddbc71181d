"""Mapper extensions made for CalDAV clients: a VTODO's time of day (OX tasks keep dates) and an
event's DURATION / missing DTEND survive a round trip while the mapped value is unchanged, and are
dropped (the mapped value wins) once another dialect changed it."""

from __future__ import annotations

from datetime import date, timedelta

from oxsync.formats.ical import CalendarItem, items_to_ical, parse_calendar


def _one(text: str):  # type: ignore[no-untyped-def]
    found = parse_calendar(text)
    assert len(found) == 1 and isinstance(found[0], CalendarItem)
    return found[0].master


def _wrap(body: str) -> str:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{body}END:VCALENDAR\r\n"


def test_task_time_of_day_round_trip_and_stale_drop() -> None:
    task = _one(_wrap("BEGIN:VTODO\r\nUID:t\r\nDTSTART:20260109T120000Z\r\nDUE:20260109T130000Z\r\n"
                      "SUMMARY:x\r\nEND:VTODO\r\n"))
    assert task.start_date == date(2026, 1, 9) and task.end_date == date(2026, 1, 9)
    out = items_to_ical([task])
    assert "DTSTART:20260109T120000Z" in out and "DUE:20260109T130000Z" in out
    task.end_date = date(2026, 1, 12)  # e.g. changed through EAS: the date wins, the kept time goes
    out = items_to_ical([task])
    assert "DUE;VALUE=DATE:20260112" in out and "DUE:20260109T130000Z" not in out
    assert "DTSTART:20260109T120000Z" in out


def test_task_duration_kept() -> None:
    task = _one(_wrap("BEGIN:VTODO\r\nUID:d\r\nDTSTART:20260118T120000Z\r\nDURATION:PT2H\r\nSUMMARY:x\r\n"
                      "END:VTODO\r\n"))
    out = items_to_ical([task])
    assert "DURATION:PT2H" in out and "DUE" not in out


def test_event_duration_and_missing_dtend_kept() -> None:
    with_duration = _one(_wrap("BEGIN:VEVENT\r\nUID:e\r\nDTSTART:20260110T100000Z\r\nDURATION:PT45M\r\n"
                               "SUMMARY:x\r\nEND:VEVENT\r\n"))
    out = items_to_ical([with_duration])
    assert "DURATION:PT45M" in out and "DTEND" not in out
    with_duration.end_date = with_duration.end_date + timedelta(minutes=15)
    out = items_to_ical([with_duration])
    assert "DTEND:20260110T110000Z" in out and "DURATION" not in out
    no_end = _one(_wrap("BEGIN:VEVENT\r\nUID:n\r\nDTSTART:20260110T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n"))
    assert "DTEND" not in items_to_ical([no_end])
