"""CalDAV/CardDAV resources: PUT/GET/DELETE with ETags and conditions, preconditions, collections,
PROPPATCH, MOVE, format round trips (unknown properties, Windows zones, overrides, vCard 4.0)."""

from __future__ import annotations

import pytest

from oxsync.dav import install
from oxsync.model import Appointment, Module
from tests.davhelp import NS, Dav, event, todo, vcard


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


def test_put_get_delete_with_etags(dav: Dav) -> None:
    cal = dav.calendar()
    created = dav.put(cal + "a.ics", event("uid-a", "First"), If_None_Match="*")
    assert created.status == 201
    etag = created.headers["etag"]
    assert etag.startswith('"') and not etag.startswith('W/')
    got = dav.request("GET", cal + "a.ics")
    assert got.status == 200 and got.headers["etag"] == etag and "SUMMARY:First" in got.text
    assert dav.request("GET", cal + "a.ics", If_None_Match=etag).status == 304
    # create-only PUT on an existing resource, stale If-Match: 412 and nothing changes
    assert dav.put(cal + "a.ics", event("uid-a", "Again"), If_None_Match="*").status == 412
    assert dav.put(cal + "a.ics", event("uid-a", "Stale"), If_Match='"1-1"').status == 412
    assert "SUMMARY:First" in dav.request("GET", cal + "a.ics").text
    updated = dav.put(cal + "a.ics", event("uid-a", "Second"), If_Match=etag)
    assert updated.status == 204 and updated.headers["etag"] != etag
    assert dav.request("DELETE", cal + "a.ics", If_Match=etag).status == 412
    assert dav.request("DELETE", cal + "a.ics", If_Match=updated.headers["etag"]).status == 204
    assert dav.request("GET", cal + "a.ics").status == 404
    assert dav.put(cal + "b.ics", event("uid-b"), If_Match="*").status == 412


def test_preconditions(dav: Dav) -> None:
    cal, tasks = dav.calendar(), dav.tasks()
    assert dav.put(cal + "one.ics", event("dup")).status == 201
    clash = dav.put(cal + "two.ics", event("dup"))
    assert clash.status == 403 and b"no-uid-conflict" in clash.body and b"one.ics" in clash.body
    bad = dav.put(cal + "bad.ics", "BEGIN:VCALENDAR\r\nthis is not icalendar\r\n")
    assert bad.status == 403 and b"valid-calendar-data" in bad.body
    wrong = dav.put(cal + "todo.ics", todo("t-1"))
    assert wrong.status == 403 and b"supported-calendar-component" in wrong.body
    assert dav.put(tasks + "todo.ics", todo("t-1")).status == 201
    journal = event("j").replace("VEVENT", "VJOURNAL")
    assert b"supported-calendar-component" in dav.put(cal + "j.ics", journal).body
    two = event("x1").replace("END:VCALENDAR\r\n", "") + event("x2").split("PRODID:-//test//EN\r\n", 1)[1]
    assert b"valid-calendar-object-resource" in dav.put(cal + "two-uids.ics", two).body
    listing = dav.propfind(cal, "<D:getetag/>", "1")
    assert {h.rsplit("/", 1)[-1] for h in listing.hrefs()} == {"", "one.ics"}


def test_max_resource_size(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(live_server(store, setup=install, dav={"max_resource_bytes": 2000}).port, world)
    cal = dav.calendar()
    big = event("big", extra="DESCRIPTION:" + "x" * 3000 + "\r\n")
    reply = dav.put(cal + "big.ics", big)
    assert reply.status == 403 and b"max-resource-size" in reply.body
    size = dav.propfind(cal, "<C:max-resource-size/>")
    assert size.prop(cal, "C:max-resource-size").text == "2000"
    assert dav.request("GET", cal + "big.ics").status == 404


def test_mkcalendar_proppatch_delete(dav: Dav) -> None:
    body = ('<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">'
            "<D:set><D:prop><D:displayname>Work</D:displayname><A:calendar-color>#FF0000</A:calendar-color>"
            "</D:prop></D:set></C:mkcalendar>")
    assert dav.request("MKCALENDAR", "/dav/calendars/alice/work/", body).status == 201
    assert dav.request("MKCALENDAR", "/dav/calendars/alice/work/", body).status == 405
    props = dav.propfind("/dav/calendars/alice/work/", "<D:displayname/><A:calendar-color/><D:resourcetype/>")
    assert props.prop("/dav/calendars/alice/work/", "D:displayname").text == "Work"
    assert props.prop("/dav/calendars/alice/work/", "A:calendar-color").text == "#FF0000"
    patch = ('<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>'
             "<D:displayname>Job</D:displayname><A:calendar-order>3</A:calendar-order></D:prop></D:set></D:propertyupdate>")
    assert b"200 OK" in dav.request("PROPPATCH", "/dav/calendars/alice/work/", patch).body
    props = dav.propfind("/dav/calendars/alice/work/", "<D:displayname/><A:calendar-order/>")
    assert props.prop("/dav/calendars/alice/work/", "D:displayname").text == "Job"
    assert props.prop("/dav/calendars/alice/work/", "A:calendar-order").text == "3"
    protected = patch.replace("<A:calendar-order>3</A:calendar-order>", "<D:getetag>x</D:getetag>")
    refused = dav.request("PROPPATCH", "/dav/calendars/alice/work/", protected)
    assert b"403 Forbidden" in refused.body and b"424" in refused.body
    assert dav.put("/dav/calendars/alice/work/e.ics", event("w1")).status == 201
    assert dav.request("DELETE", "/dav/calendars/alice/work/").status == 204
    assert dav.propfind("/dav/calendars/alice/work/", "<D:displayname/>").status == 404
    # default folders cannot be deleted; a task list is made with a VTODO component set
    assert dav.request("DELETE", dav.calendar()).status == 403
    todo_body = ('<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
                 '<C:supported-calendar-component-set><C:comp name="VTODO"/></C:supported-calendar-component-set>'
                 "</D:prop></D:set></C:mkcalendar>")
    assert dav.request("MKCALENDAR", "/dav/calendars/alice/chores/", todo_body).status == 201
    assert dav.put("/dav/calendars/alice/chores/t.ics", todo("chore")).status == 201


def test_extended_mkcol_addressbook_and_rights(dav: Dav) -> None:
    body = ('<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>'
            "<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>Friends</D:displayname>"
            "</D:prop></D:set></D:mkcol>")
    assert dav.request("MKCOL", "/dav/addressbooks/alice/friends/", body).status == 201
    props = dav.propfind("/dav/addressbooks/alice/friends/", "<D:resourcetype/><D:displayname/>")
    assert props.prop("/dav/addressbooks/alice/friends/", "D:resourcetype/CR:addressbook") is not None
    calendar_here = body.replace("<CR:addressbook/>", '<C:calendar xmlns:C="urn:ietf:params:xml:ns:caldav"/>')
    assert dav.request("MKCOL", "/dav/addressbooks/alice/x/", calendar_here).status == 403
    assert dav.request("MKCOL", "/dav/addressbooks/bob/y/", body).status == 403


def test_move_between_collections(dav: Dav) -> None:
    cal = dav.calendar()
    mk = '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"/>'
    assert dav.request("MKCALENDAR", "/dav/calendars/alice/other/", mk).status == 201
    assert dav.put(cal + "m.ics", event("move-me")).status == 201
    moved = dav.request("MOVE", cal + "m.ics", Destination="/dav/calendars/alice/other/moved.ics")
    assert moved.status == 201
    assert dav.request("GET", cal + "m.ics").status == 404
    assert "UID:move-me" in dav.request("GET", "/dav/calendars/alice/other/moved.ics").text
    assert dav.request("MOVE", "/dav/calendars/alice/other/moved.ics",
                       Destination=dav.tasks() + "x.ics").status == 403


def test_unknown_properties_and_windows_zone_round_trip(dav: Dav) -> None:
    cal = dav.calendar()
    body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft//EN\r\nBEGIN:VTIMEZONE\r\n"
            "TZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\n"
            "TZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
            "DTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
            "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\n"
            "UID:win-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=W. Europe Standard Time:20260615T100000\r\n"
            "DTEND;TZID=W. Europe Standard Time:20260615T110000\r\nSUMMARY:Zones\r\n"
            "X-CUSTOM-THING;X-P=1:keep me\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    put = dav.put(cal + "win.ics", body)
    assert put.status == 201 and put.headers.get("etag")
    text = dav.request("GET", cal + "win.ics").text
    assert text == body  # the client's own zone and spelling, as sent


def test_series_with_overrides(dav: Dav, world) -> None:  # type: ignore[no-untyped-def]
    cal = dav.calendar()
    series = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
              "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\n"
              "DTEND:20260302T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n"
              "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260309T090000Z\r\n"
              "DTSTART:20260309T140000Z\r\nDTEND:20260309T150000Z\r\nSUMMARY:Moved standup\r\nEND:VEVENT\r\n"
              "END:VCALENDAR\r\n")
    assert dav.put(cal + "weekly.ics", series).status == 201
    with world.as_user(world.alice) as s:
        objects = s.list_objects(world.default_folder(world.alice, Module.CALENDAR))
    appointments = [o for o in objects if isinstance(o, Appointment)]
    assert len(appointments) == 2 and any(o.is_exception for o in appointments)
    text = dav.request("GET", cal + "weekly.ics").text
    assert text.count("BEGIN:VEVENT") == 2 and "Moved standup" in text and "RECURRENCE-ID" in text
    listing = dav.propfind(cal, "<D:getetag/>", "1")
    assert [h for h in listing.hrefs() if h != cal] == [cal + "weekly.ics"]
    # dropping the override in a new PUT removes the exception
    master_only = series.split("BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID")[0] + \
        "END:VCALENDAR\r\n"
    assert dav.put(cal + "weekly.ics", master_only).status == 204
    assert dav.request("GET", cal + "weekly.ics").text.count("BEGIN:VEVENT") == 1


def test_uid_conflict_found_whatever_the_body_scan_read(dav: Dav) -> None:
    """A PUT reads the objects holding its UID with its addresses, by a scan of the body before the parse
    (objects._parse_calendar_body): a UID the scan reads otherwise (a VTIMEZONE's UID line first, a folded
    and escaped one) still finds the resource that holds it, and a free UID is still free."""
    cal = dav.calendar()
    zone = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nUID:zone-uid\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
            "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
    first = event("scan\\,one", "First").replace("\r\nUID:scan\\,one", "\r\nUID:sc\r\n an\\,one")
    assert dav.put(cal + "first.ics", first).status == 201
    assert dav.put(cal + "zone.ics", event("zone-uid", "Zone")).status == 201
    for body in (event("scan\\,one", "Again"), event("scan\\,one", "Again").replace("BEGIN:VEVENT", zone + "BEGIN:VEVENT")):
        clash = dav.put(cal + "second.ics", body)
        assert clash.status == 403 and b"no-uid-conflict" in clash.body and b"first.ics" in clash.body, clash.body
    free = event("scan-free", "Free", extra="ATTENDEE:mailto:alice@example.com\r\n").replace("BEGIN:VEVENT", zone + "BEGIN:VEVENT")
    assert dav.put(cal + "free.ics", free).status == 201  # the scan read the zone's UID, held by zone.ics


def test_vcard_put_get_and_version_negotiation(dav: Dav) -> None:
    book = dav.addressbook()
    card = vcard("card-1", "Jane Doe", extra="X-FAVOURITE-COLOUR:green\r\n")
    assert dav.put(book + "jane.vcf", card).status == 201
    v3 = dav.request("GET", book + "jane.vcf")
    assert "VERSION:3.0" in v3.text and "X-FAVOURITE-COLOUR:green" in v3.text
    v4 = dav.request("GET", book + "jane.vcf", Accept="text/vcard; version=4.0")
    assert "VERSION:4.0" in v4.text and "version=4.0" in v4.headers["content-type"]
    assert b"valid-address-data" in dav.put(book + "bad.vcf", "BEGIN:VCARD\r\nFN:x\r\n").body
    clash = dav.put(book + "jane2.vcf", vcard("card-1", "Jane Again"))
    assert clash.status == 403 and b"no-uid-conflict" in clash.body
    data = dav.propfind(book, "<CR:supported-address-data/>")
    versions = {e.get("version") for e in data.prop(book, "CR:supported-address-data")}
    assert versions == {"3.0", "4.0"}
    assert NS["CR"]
