"""Hostile and broken input on the DAV side: every case gets the RFC's error, changes nothing, and
the server keeps serving (each test ends with a request that must still work)."""

from __future__ import annotations

import pytest

from oxsync.dav import install
from tests.davhelp import Dav, event, vcard


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


def members(dav: Dav, collection: str) -> set[str]:
    listing = dav.propfind(collection, "<D:getetag/>", "1")
    assert listing.status == 207
    return {h.rsplit("/", 1)[-1] for h in listing.hrefs() if h != collection}


PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>'


def test_dtd_entities_and_malformed_xml(dav: Dav) -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
              '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol2;</D:displayname></D:prop></D:propfind>')
    xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&e;</D:displayname></D:prop></D:propfind>')
    for body in (laughs, xxe, "<D:propfind xmlns:D='DAV:'><D:prop>", "not xml at all"):
        reply = dav.request("PROPFIND", "/dav/", body, Depth="0")
        assert reply.status == 400 and b"root:" not in reply.body
    deep = "<a>" * 200 + "</a>" * 200
    assert dav.request("REPORT", dav.calendar(), deep).status == 400
    assert dav.request("PROPFIND", "/dav/", PROPFIND, Depth="0").status == 207


def test_too_many_xml_elements(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(live_server(store, setup=install, limits={"max_xml_elements": 100}).port, world)
    body = '<D:propfind xmlns:D="DAV:"><D:prop>' + "<D:displayname/>" * 200 + "</D:prop></D:propfind>"
    assert dav.request("PROPFIND", "/dav/", body, Depth="0").status == 400
    assert dav.request("PROPFIND", "/dav/", PROPFIND, Depth="0").status == 207


def test_malformed_icalendar_changes_nothing(dav: Dav) -> None:
    cal = dav.calendar()
    assert dav.put(cal + "ok.ics", event("ok", "Keep me")).status == 201
    cases = [
        "garbage",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:notadate\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        event("noend").replace("END:VCALENDAR\r\n", ""),
        event("x", extra="RRULE:FREQ=SECONDLY\r\n"),
        event("y", extra="RRULE:FREQ=MINUTELY;INTERVAL=1\r\n"),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
    ]
    for body in cases:
        reply = dav.put(cal + "bad.ics", body)
        assert reply.status == 403, body
        assert b"valid-calendar" in reply.body
    # overwriting a good resource with bad data keeps the good one
    assert dav.put(cal + "ok.ics", cases[1]).status == 403
    assert "SUMMARY:Keep me" in dav.request("GET", cal + "ok.ics").text
    assert members(dav, cal) == {"ok.ics"}


def test_bad_override_rolls_back_whole_put(dav: Dav) -> None:
    cal = dav.calendar()
    series = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:s1\r\n"
              "DTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\n"
              "RRULE:FREQ=WEEKLY;COUNT=3\r\nEXDATE:20260309T090000Z\r\nSUMMARY:S\r\nEND:VEVENT\r\n"
              "BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260309T090000Z\r\n"
              "DTSTART:20260309T110000Z\r\nDTEND:20260309T120000Z\r\nSUMMARY:override of a deleted one\r\n"
              "END:VEVENT\r\nEND:VCALENDAR\r\n")
    reply = dav.put(cal + "s1.ics", series)
    assert reply.status in (400, 403)
    assert members(dav, cal) == set()


def test_hostile_recurrence_is_bounded(dav: Dav) -> None:
    cal = dav.calendar()
    hourly = event("h", "Ping", "19000101T000000Z", "19000101T000100Z", extra="RRULE:FREQ=HOURLY\r\n")
    assert dav.put(cal + "h.ics", hourly).status == 403
    daily = event("d", "Ping", "19000101T000000Z", "19000101T000100Z", extra="RRULE:FREQ=DAILY\r\n")
    assert dav.put(cal + "d.ics", daily).status == 201
    query = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
             '<C:calendar-data><C:expand start="20260101T000000Z" end="20270101T000000Z"/></C:calendar-data>'
             '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
             'start="20260101T000000Z" end="20270101T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
             "</C:calendar-query>")
    reply = dav.report(cal, query)
    assert reply.status in (207, 403)
    if reply.status == 207:
        assert 360 <= reply.text.count("BEGIN:VEVENT") <= 3000
    assert dav.request("PROPFIND", "/dav/", PROPFIND, Depth="0").status == 207


def test_malformed_vcard_and_huge_photo(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(live_server(store, setup=install, dav={"max_resource_bytes": 50_000}).port, world)
    book = dav.addressbook()
    for body in ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n", "nothing", vcard("a") + vcard("b"),
                 "BEGIN:VCARD\r\nVERSION:3.0\r\nFN x\r\nEND:VCARD\r\n"):
        reply = dav.put(book + "bad.vcf", body)
        assert reply.status == 403 and b"valid-address-data" in reply.body, body
    photo = "PHOTO;ENCODING=b;TYPE=JPEG:" + "A" * 80_000 + "\r\n"
    big = dav.put(book + "big.vcf", vcard("big", extra=photo))
    assert big.status == 403 and b"max-resource-size" in big.body
    assert members(dav, book) == set()


def test_request_body_over_server_limit(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(live_server(store, setup=install, limits={"max_request_body_bytes": 10_000}).port, world)
    reply = dav.put(dav.calendar() + "huge.ics", event("huge", extra="DESCRIPTION:" + "y" * 20_000 + "\r\n"))
    assert reply.status == 413
    assert dav.request("PROPFIND", "/dav/", PROPFIND, Depth="0").status == 207


def test_path_tricks_and_foreign_hrefs(dav: Dav) -> None:
    for path in ("/dav/calendars/alice/../bob/", "/dav/calendars/alice/%2e%2e/", "/dav/nothing/",
                 "/dav/calendars/alice/99999/"):
        assert dav.request("PROPFIND", path, PROPFIND, Depth="0").status in (403, 404), path
    bad_sync = ('<D:sync-collection xmlns:D="DAV:"><D:sync-token>http://oxsync/ns/sync/1.2</D:sync-token>'
                "<D:prop><D:getetag/></D:prop></D:sync-collection>")
    assert dav.report(dav.calendar(), bad_sync, depth="0").status == 403
    unknown = '<X:whatever xmlns:X="urn:x"/>'
    assert dav.report(dav.calendar(), unknown).status == 403
