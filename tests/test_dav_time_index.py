"""The time-range index behind calendar-query (store/timeranges.py): a query answered from the index
finds exactly what a full scan of every served object finds, for tricky objects and many windows, and
the index really narrows what the store loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from lxml import etree

from oxsync.config import LimitSettings
from oxsync.dav import filters, install
from oxsync.metrics import REGISTRY
from tests.davhelp import Dav, event, todo

CQ = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
      '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{comp}">{range}</C:comp-filter>'
      "</C:comp-filter></C:filter></C:calendar-query>")

LA = ("BEGIN:VTIMEZONE\r\nTZID:America/Los_Angeles\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\n"
      "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nTZOFFSETFROM:-0700\r\nTZOFFSETTO:-0800\r\nEND:STANDARD\r\n"
      "BEGIN:DAYLIGHT\r\nDTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nTZOFFSETFROM:-0800\r\n"
      "TZOFFSETTO:-0700\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")


PARIS = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
         "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\n"
         "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
         "END:STANDARD\r\nEND:VTIMEZONE\r\n")
BOGUS_PARIS = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
               "TZOFFSETFROM:+0500\r\nTZOFFSETTO:+0500\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
MY_OFFICE = ("BEGIN:VTIMEZONE\r\nTZID:My Office\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
             "TZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")


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
    # below: events whose times the exact index rows must read exactly as the served text does
    "paris.ics": _raw(_vevent("paris", "DTSTART;TZID=Europe/Paris:20261025T023000\r\n"
                                       "DTEND;TZID=Europe/Paris:20261025T033000\r\n"), PARIS),  # DST overlap
    "gap.ics": _raw(_vevent("gap", "DTSTART;TZID=America/Los_Angeles:20260308T023000\r\n"
                                   "DTEND;TZID=America/Los_Angeles:20260308T040000\r\n"), LA),  # DST gap
    "bogus-zone.ics": _raw(_vevent("bogus-zone", "DTSTART;TZID=Europe/Paris:20260707T100000\r\n"
                                                 "DTEND;TZID=Europe/Paris:20260707T110000\r\n"), BOGUS_PARIS),
    "custom-zone.ics": _raw(_vevent("custom-zone", "DTSTART;TZID=My Office:20260708T100000\r\n"
                                                   "DTEND;TZID=My Office:20260708T110000\r\n"), MY_OFFICE),
    "windows-zone.ics": _raw(_vevent("windows-zone", "DTSTART;TZID=Pacific Standard Time:20260709T230000\r\n"
                                                     "DTEND;TZID=Pacific Standard Time:20260709T233000\r\n")),
    "utc-tzid.ics": _raw(_vevent("utc-tzid", "DTSTART;TZID=UTC:20260710T100000\r\nDTEND;TZID=UTC:20260710T110000\r\n")),
    "zero.ics": event("zero", start="20260711T100000Z", end="20260711T100000Z"),
    "second.ics": event("second", start="20260712T100000Z", end="20260712T100001Z"),
    "long.ics": event("long", start="20260713T100000Z", end="20260910T100000Z"),
    "alarm.ics": _raw(_vevent("alarm", "DTSTART:20260714T100000Z\r\nDTEND:20260714T110000Z\r\n"
                                       "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\n"
                                       "DURATION:PT1M\r\nREPEAT:2\r\nEND:VALARM\r\n")),
    "floating-la.ics": ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nX-WR-TIMEZONE:America/Los_Angeles\r\n"
                        + _vevent("floating-la", "DTSTART:20260715T233000\r\nDTEND:20260716T003000\r\n")
                        + "END:VCALENDAR\r\n"),
    "allday-long.ics": _raw(_vevent("allday-long", "DTSTART;VALUE=DATE:20260716\r\nDTEND;VALUE=DATE:20260720\r\n")),
    # short counted series: the index keeps one exact row per instance
    "count-daily.ics": event("count-daily", start="20260720T220000Z", end="20260720T233000Z",
                             extra="RRULE:FREQ=DAILY;COUNT=5\r\n"),
    "count-dst.ics": _raw(_vevent("count-dst", "DTSTART;TZID=Europe/Paris:20260316T083000\r\n"
                                               "DTEND;TZID=Europe/Paris:20260316T093000\r\n"
                                               "RRULE:FREQ=WEEKLY;COUNT=4\r\n"), PARIS),  # across Mar 29
    "count-interval.ics": _raw(_vevent("count-interval", "DTSTART;TZID=America/Los_Angeles:20261019T230000\r\n"
                                                         "DTEND;TZID=America/Los_Angeles:20261019T233000\r\n"
                                                         "RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3\r\n"), LA),
    "count-night.ics": _raw(_vevent("count-night", "DTSTART;TZID=Europe/Paris:20261024T013000\r\n"
                                                   "DTEND;TZID=Europe/Paris:20261024T033000\r\n"
                                                   "RRULE:FREQ=DAILY;COUNT=3\r\n"), PARIS),  # 2nd one across DST
    "count-otherday.ics": event("count-otherday", start="20260803T100000Z", end="20260803T110000Z",
                                extra="RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=3\r\n"),
    # other rules and deleted instances: exact rows once the kept text expands as the model does
    "monthly-weekday.ics": _raw(_vevent("monthly-weekday", "DTSTART;TZID=Europe/Paris:20260210T083000\r\n"
                                                           "DTEND;TZID=Europe/Paris:20260210T093000\r\n"
                                                           "RRULE:FREQ=MONTHLY;BYDAY=2TU;COUNT=12\r\n"), PARIS),
    "monthly-31.ics": event("monthly-31", start="20260131T220000Z", end="20260131T233000Z",
                            extra="RRULE:FREQ=MONTHLY;BYMONTHDAY=31;COUNT=8\r\n"),  # skips the short months
    "yearly-weekday.ics": _raw(_vevent("yearly-weekday", "DTSTART;TZID=America/Los_Angeles:20260329T230000\r\n"
                                                         "DTEND;TZID=America/Los_Angeles:20260330T000000\r\n"
                                                         "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"), LA),
    "until-zoned.ics": _raw(_vevent("until-zoned", "DTSTART;TZID=Europe/Paris:20261019T230000\r\n"
                                                   "DTEND;TZID=Europe/Paris:20261019T233000\r\n"
                                                   "RRULE:FREQ=DAILY;UNTIL=20261101T220000Z\r\n"), PARIS),  # across DST
    "until-cut.ics": event("until-cut", start="20260907T100000Z", end="20260907T110000Z",
                           extra="RRULE:FREQ=WEEKLY;UNTIL=20260928T095959Z\r\n"),  # UNTIL before the last day's instance
    "monthly-exdate.ics": event("monthly-exdate", start="20260305T140000Z", end="20260305T150000Z",
                                extra="RRULE:FREQ=MONTHLY;INTERVAL=2\r\nEXDATE:20260705T140000Z\r\n"),
}
SERIES = {
    # endless and long series: exact rows per instance inside the expansion window, conservative outside
    "endless-paris.ics": _raw(_vevent("endless-paris", "DTSTART;TZID=Europe/Paris:20260105T083000\r\n"
                                                       "DTEND;TZID=Europe/Paris:20260105T091500\r\n"
                                                       "RRULE:FREQ=WEEKLY\r\n"), PARIS),  # as bench/peers_data
    "endless-night.ics": _raw(_vevent("endless-night", "DTSTART;TZID=Europe/Paris:20261020T023000\r\n"
                                                       "DTEND;TZID=Europe/Paris:20261020T033000\r\n"
                                                       "RRULE:FREQ=DAILY\r\n"), PARIS),  # repeated and missing hours
    "endless-old.ics": event("endless-old", start="20190603T100000Z", end="20190603T110000Z",
                             extra="RRULE:FREQ=WEEKLY;INTERVAL=2\r\n"),  # starts before the window
    "endless-late.ics": _raw(_vevent("endless-late", "DTSTART;TZID=America/Los_Angeles:20311120T230000\r\n"
                                                     "DTEND;TZID=America/Los_Angeles:20311121T000000\r\n"
                                                     "RRULE:FREQ=WEEKLY;BYDAY=TH\r\n"), LA),  # across its end
    "long-count.ics": _raw(_vevent("long-count", "DTSTART;TZID=America/Los_Angeles:20260601T230000\r\n"
                                                 "DTEND;TZID=America/Los_Angeles:20260602T001500\r\n"
                                                 "RRULE:FREQ=DAILY;COUNT=400\r\n"), LA),
    "endless-exdate.ics": _raw(_vevent("endless-exdate", "DTSTART;TZID=Europe/Paris:20260302T120000\r\n"
                                                         "DTEND;TZID=Europe/Paris:20260302T130000\r\n"
                                                         "RRULE:FREQ=WEEKLY\r\n"
                                                         "EXDATE;TZID=Europe/Paris:20260309T120000\r\n"), PARIS),
    "endless-monthly.ics": _raw(_vevent("endless-monthly", "DTSTART;TZID=Europe/Paris:20260130T170000\r\n"
                                                           "DTEND;TZID=Europe/Paris:20260130T183000\r\n"
                                                           "RRULE:FREQ=MONTHLY;BYDAY=-1FR\r\n"
                                                           "EXDATE;TZID=Europe/Paris:20270226T170000\r\n"), PARIS),
    "endless-override.ics": _raw(
        _vevent("endless-override", "DTSTART:20260406T090000Z\r\nDTEND:20260406T100000Z\r\nRRULE:FREQ=WEEKLY\r\n") +
        _vevent("endless-override", "RECURRENCE-ID:20260413T090000Z\r\nDTSTART:20260415T150000Z\r\n"
                                    "DTEND:20260415T160000Z\r\n")),
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
    limits = LimitSettings()  # queries straddling either edge of the expansion window of today's writes
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for edge in (now - timedelta(days=limits.recurrence_window_past_days),
                 now + timedelta(days=limits.recurrence_window_future_days)):
        for before, after in ((timedelta(hours=1), timedelta(hours=1)), (timedelta(days=3), timedelta(days=3)),
                              (timedelta(days=40), timedelta()), (timedelta(), timedelta(days=40)),
                              (timedelta(days=9), timedelta(days=-2)), (timedelta(days=-2), timedelta(days=9))):
            found.append(((edge - before).strftime(fmt), (edge + after).strftime(fmt)))
    return found


def _query(comp: str, start: str | None, end: str | None) -> str:
    attrs = (f' start="{start}"' if start else "") + (f' end="{end}"' if end else "")
    return CQ.format(comp=comp, range=f"<C:time-range{attrs}/>")


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


def _decided(how: str) -> float:
    return REGISTRY.get_sample_value("oxsync_dav_query_objects_total", {"decided": how}) or 0.0


SERIES_EDGES = (("2026-03-28", "2026-03-31"), ("2026-04-12", "2026-04-16"), ("2026-10-24", "2026-10-27"),
                ("2027-03-27", "2027-03-29"), ("2031-11-19", "2031-11-22"), ("2031-12-04", "2031-12-09"))
"""Where endless series get edge windows: DST changes of 2026/2027, an override, the expansion window's end."""


def _edges(served: dict[str, str]) -> list[tuple[str | None, str | None]]:
    """Windows touching each served event's first start and end (as the filter reads them): just
    before, just after, one second inside; an exact index row off by a second fails one of them."""
    fmt = "%Y%m%dT%H%M%SZ"
    found: list[tuple[str | None, str | None]] = []
    for text in served.values():
        cal = Calendar.from_ical(text)
        comps = cal.walk("VEVENT")
        endless = False
        if any(b"COUNT=" in rule or b"UNTIL=" in rule for rule in (c["RRULE"].to_ical() for c in comps if "RRULE" in c)):
            comps = filters.occurrences(cal, "VEVENT", datetime(2025, 1, 1, tzinfo=UTC), datetime(2034, 1, 1, tzinfo=UTC))
        elif any("RRULE" in c for c in comps):  # endless: the instances around DST changes and the window's end
            endless = True
            comps = [occ for low, high in SERIES_EDGES for occ in filters.occurrences(
                cal, "VEVENT", datetime.fromisoformat(low).replace(tzinfo=UTC),
                datetime.fromisoformat(high).replace(tzinfo=UTC))]
        for comp in comps:
            begin = filters._prop_dt(comp, "DTSTART")
            finish = filters._prop_dt(comp, "DTEND") or begin
            if begin is None or finish is None:
                continue
            second, hour = timedelta(seconds=1), timedelta(hours=1)
            around = ((begin - hour, begin), (begin - hour, begin + second), (finish, finish + hour),
                      (finish - second, finish + hour), (begin, begin + second), (finish - second, finish))
            for low, high in around[1:4] if endless else around:
                found.append((low.strftime(fmt), high.strftime(fmt)))
    return found


_FULL_SCANS: dict[tuple[tuple[tuple[str, str], ...], str], set[str]] = {}
"""What the full scan answers, by (served texts, query): the same texts on both backends are scanned once
(expanding every series for each of ~2,500 windows was half of these tests' time)."""


_PARSED: dict[tuple[tuple[str, str], ...], dict[str, Calendar]] = {}


def _full_scan(served: dict[str, str], body: str) -> set[str]:
    texts = tuple(sorted(served.items()))
    key = (texts, body)
    if key not in _FULL_SCANS:
        if texts not in _PARSED:  # the full scan's objects, parsed once
            _PARSED[texts] = {name: Calendar.from_ical(text) for name, text in served.items()}
        parsed = _PARSED[texts]
        top = etree.fromstring(body.encode()).find("{urn:ietf:params:xml:ns:caldav}filter")[0]
        _FULL_SCANS[key] = {n for n, cal in parsed.items() if filters._comp_filter(cal, [cal], top)}
    return _FULL_SCANS[key]


def _compare(dav: Dav, collection: str, comp: str, items: dict[str, str],
             windows: list[tuple[str | None, str | None]], edges: bool) -> None:
    served = {}
    for name, body in items.items():
        assert dav.put(collection + name, body).status == 201, name
        reply = dav.request("GET", collection + name)
        assert reply.status == 200
        served[name] = reply.text
    for start, end in windows + (_edges(served) if edges else []):
        body = _query(comp, start, end)
        expected = _full_scan(served, body)
        reply = dav.report(collection, body)
        assert reply.status == 207
        got = {h.rsplit("/", 1)[-1] for h in reply.hrefs() if not h.endswith("/")}
        assert got == expected, (comp, start, end)


@pytest.mark.timeout(900)  # several hundred queries over daily and weekly endless series
def test_series_index_answers_exactly_like_a_full_scan(dav: Dav) -> None:
    """Endless and long series (exact rows per instance in the expansion window), exceptions, DST and
    queries straddling the window's edges: the index answers as parsing every served object does."""
    index, parsed = _decided("index"), _decided("parsed")
    near = [(a, b) for a, b in _windows() if a is None or b is None or
            (a[:4] in ("2025", "2026", "2027", "2031") and b[:4] in ("2025", "2026", "2027", "2031")
             and datetime.strptime(b, "%Y%m%dT%H%M%SZ") - datetime.strptime(a, "%Y%m%dT%H%M%SZ") < timedelta(days=60))]
    _compare(dav, dav.calendar(), "VEVENT", SERIES, near, edges=True)
    assert _decided("index") > index + 50 and _decided("parsed") > parsed  # both paths were exercised


def test_index_answers_exactly_like_a_full_scan(dav: Dav) -> None:
    index_before = _decided("index")
    for collection, comp, items in ((dav.calendar(), "VEVENT", EVENTS), (dav.tasks(), "VTODO", TASKS)):
        _compare(dav, collection, comp, items, _windows(), edges=comp == "VEVENT")
    # the grid must exercise both outcomes for the tricky ones, or it proves little
    assert dav.report(dav.calendar(), _query("VEVENT", "20261119T000000Z", "20261121T000000Z")).hrefs()
    assert _decided("index") > index_before + 50  # and the exact rows decided many of its answers


EXACT = ("plain.ics", "zoned.ics", "gap.ics", "bogus-zone.ics", "utc-tzid.ics", "second.ics", "long.ics", "alarm.ics",
         "count-daily.ics", "count-dst.ics", "count-interval.ics", "count-night.ics", "weekly.ics",
         "monthly.ics", "yearly.ics", "until.ics", "exdate.ics", "monthly-weekday.ics", "monthly-31.ics",
         "yearly-weekday.ics", "until-zoned.ics", "until-cut.ics", "monthly-exdate.ics")
"""Events of 2026 the index decides alone; every other one of EVENTS is parsed when it is a candidate."""


def test_plain_events_are_decided_by_the_index_without_parsing(dav: Dav) -> None:
    cal = dav.calendar()
    served = {}
    for name, body in EVENTS.items():
        assert dav.put(cal + name, body).status == 201, name
        served[name] = dav.request("GET", cal + name).text
    years = _query("VEVENT", "20260101T000000Z", "20350101T000000Z")  # not old.ics, not far.ics
    filter_el = etree.fromstring(years.encode()).find("{urn:ietf:params:xml:ns:caldav}filter")
    expected = {n for n, text in served.items() if filters.calendar_matches(text, filter_el)}
    assert set(EXACT) < expected and "old.ics" not in expected and "far.ics" not in expected
    index, parsed = _decided("index"), _decided("parsed")
    reply = dav.report(cal, years)
    assert reply.status == 207
    assert {h.rsplit("/", 1)[-1] for h in reply.hrefs() if not h.endswith("/")} == expected
    assert _decided("index") - index == len(EXACT)
    assert _decided("parsed") - parsed == len(expected) - len(EXACT)  # every other candidate matched
    # a filter the index cannot decide alone (a second test on the component) parses every candidate
    busy = CQ.format(comp="VEVENT", range='<C:time-range start="20260101T000000Z" end="20350101T000000Z"/>'
                                           '<C:prop-filter name="SUMMARY"><C:text-match>o</C:text-match>'
                                           "</C:prop-filter>")
    index, parsed = _decided("index"), _decided("parsed")
    assert dav.report(cal, busy).status == 207
    assert _decided("index") == index and _decided("parsed") - parsed == len(expected)


def test_a_month_inside_the_window_parses_no_series(dav: Dav) -> None:
    """The bench's question (a month of a calendar with endless weekly series in a DST zone): every
    candidate is decided by the index, none parsed; a query beyond the window's end parses again."""
    cal = dav.calendar()
    plain = ("endless-paris.ics", "endless-night.ics", "endless-old.ics", "long-count.ics", "endless-exdate.ics",
             "endless-monthly.ics")  # the last two: deleted instances, a monthly rule (checked against their text)
    for name in plain:
        assert dav.put(cal + name, SERIES[name]).status == 201, name
    index, parsed = _decided("index"), _decided("parsed")
    reply = dav.report(cal, _query("VEVENT", "20270301T000000Z", "20270401T000000Z"))  # spans a DST change
    assert reply.status == 207
    assert {h.rsplit("/", 1)[-1] for h in reply.hrefs() if not h.endswith("/")} == set(plain)
    assert _decided("parsed") == parsed and _decided("index") - index == len(plain)
    parsed = _decided("parsed")
    assert len(dav.report(cal, _query("VEVENT", "20380301T000000Z", "20380401T000000Z")).hrefs()) >= 3
    assert _decided("parsed") - parsed >= 3
    parsed = _decided("parsed")  # the day of a deleted instance: the monthly series is not in it
    reply = dav.report(cal, _query("VEVENT", "20270226T000000Z", "20270227T000000Z"))
    assert "endless-monthly.ics" not in {h.rsplit("/", 1)[-1] for h in reply.hrefs()} and _decided("parsed") == parsed
