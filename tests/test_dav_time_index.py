"""The time-range index behind calendar-query (store/timeranges.py): a query answered from the index
finds exactly what a full scan of every served object finds, for tricky objects and many windows, and
the index really narrows what the store loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from oxsync.dav import filters, install
from tests.davhelp import Dav, event, todo

CQ = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
      '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{comp}">{range}</C:comp-filter>'
      "</C:comp-filter></C:filter></C:calendar-query>")

LA = ("BEGIN:VTIMEZONE\r\nTZID:America/Los_Angeles\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\n"
      "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nTZOFFSETFROM:-0700\r\nTZOFFSETTO:-0800\r\nEND:STANDARD\r\n"
      "BEGIN:DAYLIGHT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nTZOFFSETFROM:-0800\r\n"
      "TZOFFSETTO:-0700\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")


def _raw(body: str, zone: str = "") -> str:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{zone}{body}END:VCALENDAR\r\n"


def _vevent(uid: str, lines: str) -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{uid}\r\n{lines}END:VEVENT\r\n"


EVENTS = {
    "plain.ics": event("plain", start="20260310T090000Z", end="20260310T100000Z"),
    "zoned.ics": _raw(_vevent("zoned", "DTSTART;TZID=America/Los_Angeles:20260415T230000\r\n"
                                       "DTEND;TZID=America/Los_Angeles:20260415T233000\r\n"), LA),
    "allday.ics": _raw(_vevent("allday", "DTSTART;VALUE=DATE:20260501\r\nDTEND;VALUE=DATE:20260502\r\n")),
    "floating.ics": _raw(_vevent("floating", "DTSTART:20260601T235000\r\nDTEND:20260602T001000\r\n")),
    "weekly.ics": event("weekly", start="20260105T080000Z", end="20260105T083000Z", extra="RRULE:FREQ=WEEKLY\r\n"),
    "monthly.ics": event("monthly", start="20260115T080000Z", end="20260115T090000Z",
                         extra="RRULE:FREQ=MONTHLY;COUNT=5\r\n"),
    "yearly.ics": event("yearly", start="20150704T100000Z", end="20150704T110000Z", extra="RRULE:FREQ=YEARLY\r\n"),
    "until.ics": event("until", start="20260202T070000Z", end="20260202T073000Z",
                       extra="RRULE:FREQ=DAILY;UNTIL=20260206T070000Z\r\n"),
    "exdate.ics": event("exdate", start="20260803T120000Z", end="20260803T130000Z",
                        extra="RRULE:FREQ=WEEKLY;COUNT=3\r\nEXDATE:20260810T120000Z\r\n"),
    "override.ics": _raw(
        _vevent("override", "DTSTART:20260907T090000Z\r\nDTEND:20260907T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n") +
        _vevent("override", "RECURRENCE-ID:20260914T090000Z\r\nDTSTART:20261120T090000Z\r\nDTEND:20261120T100000Z\r\n")),
    "noend.ics": _raw(_vevent("noend", "DTSTART;VALUE=DATE:20261010\r\n")),
    "duration.ics": _raw(_vevent("duration", "DTSTART:20261201T220000Z\r\nDURATION:PT5H\r\n")),
    "old.ics": event("old", start="20100101T090000Z", end="20100101T100000Z"),
    "far.ics": event("far", start="20400101T090000Z", end="20400101T100000Z"),
}
TASKS = {
    "due.ics": todo("due", extra="DUE:20260320T170000Z\r\n"),
    "start.ics": todo("start", extra="DTSTART:20260322T080000Z\r\n"),
    "both.ics": todo("both", extra="DTSTART:20260401T080000Z\r\nDUE:20260420T170000Z\r\n"),
    "dateonly.ics": todo("dateonly", extra="DUE;VALUE=DATE:20260505\r\n"),
    "none.ics": todo("none"),
}


def _windows() -> list[tuple[str | None, str | None]]:
    fmt = "%Y%m%dT%H%M%SZ"
    found: list[tuple[str | None, str | None]] = []
    anchor = datetime(2009, 12, 1, tzinfo=UTC)
    spans = [timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=31), timedelta(days=400)]
    step = 0
    while anchor < datetime(2041, 1, 1, tzinfo=UTC):
        width = spans[step % len(spans)]
        found.append((anchor.strftime(fmt), (anchor + width).strftime(fmt)))
        anchor += timedelta(days=23, hours=7) if anchor.year in (2026, 2027) else timedelta(days=211)
        step += 1
    found += [("20261119T000000Z", None), (None, "20260201T000000Z"), ("20300101T000000Z", "20300102T000000Z"),
              ("20200704T000000Z", "20200705T000000Z"), ("20260101T000000Z", "20260102T000000Z")]
    return found


def _query(comp: str, start: str | None, end: str | None) -> str:
    attrs = (f' start="{start}"' if start else "") + (f' end="{end}"' if end else "")
    return CQ.format(comp=comp, range=f"<C:time-range{attrs}/>")


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


def test_index_answers_exactly_like_a_full_scan(dav: Dav) -> None:
    for collection, comp, items in ((dav.calendar(), "VEVENT", EVENTS), (dav.tasks(), "VTODO", TASKS)):
        served = {}
        for name, body in items.items():
            assert dav.put(collection + name, body).status == 201, name
            reply = dav.request("GET", collection + name)
            assert reply.status == 200
            served[name] = reply.text
        for start, end in _windows():
            body = _query(comp, start, end)
            filter_el = etree.fromstring(body.encode()).find("{urn:ietf:params:xml:ns:caldav}filter")
            expected = {n for n, text in served.items() if filters.calendar_matches(text, filter_el)}
            reply = dav.report(collection, body)
            assert reply.status == 207
            got = {h.rsplit("/", 1)[-1] for h in reply.hrefs() if not h.endswith("/")}
            assert got == expected, (comp, start, end)
    # the grid must exercise both outcomes for the tricky ones, or it proves little
    assert dav.report(dav.calendar(), _query("VEVENT", "20261119T000000Z", "20261121T000000Z")).hrefs()


def test_index_narrows_what_the_store_loads(store, world, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    cal = dav.calendar()
    for name in ("plain.ics", "weekly.ics", "override.ics", "far.ics", "old.ics", "yearly.ics"):
        assert dav.put(cal + name, EVENTS[name]).status == 201
    tasks = dav.tasks()
    for name in ("due.ics", "none.ics"):
        assert dav.put(tasks + name, TASKS[name]).status == 201
    folder = int(cal.rstrip("/").rsplit("/", 1)[-1])
    task_folder = int(tasks.rstrip("/").rsplit("/", 1)[-1])

    def uids(folder_id: int, start: str, end: str) -> set[str]:
        begin, finish = (int(datetime.strptime(t, "%Y%m%d").replace(tzinfo=UTC).timestamp() * 1000) for t in (start, end))
        with world.as_user(world.alice) as s:
            return {o.uid for o in s.list_objects_in_range(folder_id, begin, finish)}

    # November 2026: the endless weekly series and the override moved there (with its whole series)
    assert uids(folder, "20261119", "20261121") == {"weekly", "override"}
    # beyond the expansion window endless series are kept conservatively
    assert uids(folder, "20400101", "20400102") == {"weekly", "yearly", "far"}
    assert uids(folder, "20100101", "20100102") == {"old"}
    assert uids(folder, "20200704", "20200705") == {"yearly"}  # before the expansion window
    assert uids(folder, "20260704", "20260705") == {"weekly", "yearly"}
    assert uids(task_folder, "20300101", "20300102") == {"none"}
    assert uids(task_folder, "20260320", "20260321") == {"none", "due"}
