"""RFC 6638 on the store's meeting semantics: one object in every attendee's calendar, attendee
replies through PARTSTAT (store.confirm), inbox view, Schedule-Tag, outbox free/busy POST."""

from __future__ import annotations

import re

import pytest

from oxsync.dav import install
from tests.davhelp import NS, Dav, event


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


MEETING = ("ORGANIZER:mailto:alice@example.com\r\n"
           "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\r\n"
           "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\n"
           "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:someone@elsewhere.org\r\n")


def _bob_copy(dav: Dav) -> str:
    cal = dav.calendar("bob")
    listing = dav.propfind(cal, "<D:getetag/>", "1", user="bob")
    hrefs = [h for h in listing.hrefs() if h != cal]
    assert len(hrefs) == 1
    return hrefs[0]


def test_meeting_reaches_attendee_and_reply_updates_organizer(dav: Dav) -> None:
    cal = dav.calendar()
    put = dav.put(cal + "meet.ics", event("meet-1", "Planning", extra=MEETING))
    assert put.status == 201 and put.headers.get("schedule-tag")
    tag = put.headers["schedule-tag"]
    bob_href = _bob_copy(dav)
    bob_text = dav.request("GET", bob_href, user="bob").text.replace("\r\n ", "")
    assert "SUMMARY:Planning" in bob_text and "bob@example.com" in bob_text
    # bob's inbox shows the invitation as an iTIP REQUEST
    inbox = dav.propfind("/dav/calendars/bob/inbox/", "<D:getetag/>", "1", user="bob")
    items = [h for h in inbox.hrefs() if h != "/dav/calendars/bob/inbox/"]
    assert len(items) == 1
    assert "METHOD:REQUEST" in dav.request("GET", items[0], user="bob").text
    # bob accepts by saving his copy with PARTSTAT=ACCEPTED
    accepted = re.sub(r"^(ATTENDEE;.*)PARTSTAT=NEEDS-ACTION(.*:mailto:bob@)", r"\1PARTSTAT=ACCEPTED\2", bob_text,
                      flags=re.M)
    assert re.search(r"^ATTENDEE;.*PARTSTAT=ACCEPTED.*:mailto:bob@", accepted, re.M)
    bob_tag = dav.request("GET", bob_href, user="bob").headers["schedule-tag"]
    assert dav.put(bob_href, accepted, user="bob", If_Schedule_Tag_Match='"stale"').status == 412
    assert dav.put(bob_href, accepted.replace("SUMMARY:Planning", "SUMMARY:Hijacked"), user="bob",
                   If_Schedule_Tag_Match=bob_tag).status == 204
    organizer_view = dav.request("GET", cal + "meet.ics")
    assert "PARTSTAT=ACCEPTED" in organizer_view.text.split("mailto:bob")[0].rsplit("ATTENDEE", 1)[1]
    assert "SUMMARY:Planning" in organizer_view.text  # an attendee changes only their own status
    assert organizer_view.headers["schedule-tag"] == tag
    inbox = dav.propfind("/dav/calendars/bob/inbox/", "<D:getetag/>", "1", user="bob")
    assert [h for h in inbox.hrefs() if h != "/dav/calendars/bob/inbox/"] == []
    # the organizer's change is visible to the attendee at once and moves the Schedule-Tag
    changed = dav.put(cal + "meet.ics", event("meet-1", "Planning v2", extra=MEETING))
    assert changed.status == 204 and changed.headers["schedule-tag"] != tag
    assert "SUMMARY:Planning v2" in dav.request("GET", bob_href, user="bob").text


def test_attendee_delete_declines(dav: Dav) -> None:
    cal = dav.calendar()
    dav.put(cal + "meet.ics", event("meet-2", "Sync", extra=MEETING))
    bob_href = _bob_copy(dav)
    assert dav.request("DELETE", bob_href, user="bob").status == 204
    assert dav.request("GET", bob_href, user="bob").status == 404
    text = dav.request("GET", cal + "meet.ics").text
    assert "PARTSTAT=DECLINED" in text.split("mailto:bob")[0].rsplit("ATTENDEE", 1)[1]


def test_outbox_free_busy(dav: Dav) -> None:
    dav.put(dav.calendar("bob") + "busy.ics", event("bob-busy", "Dentist", "20260310T140000Z", "20260310T150000Z"),
            user="bob")
    request = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
               "UID:fb-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T000000Z\r\nDTEND:20260311T000000Z\r\n"
               "ORGANIZER:mailto:alice@example.com\r\nATTENDEE:mailto:bob@example.com\r\n"
               "ATTENDEE:mailto:nobody@nowhere.invalid\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n")
    reply = dav.request("POST", "/dav/calendars/alice/outbox/", request, Content_Type="text/calendar")
    assert reply.status == 200
    responses = reply.xml.findall("C:response", NS)
    by_recipient = {r.find("C:recipient/D:href", NS).text: r for r in responses}
    bob = by_recipient["mailto:bob@example.com"]
    assert bob.find("C:request-status", NS).text.startswith("2.0")
    data = bob.find("C:calendar-data", NS).text
    assert "METHOD:REPLY" in data and "20260310T140000Z/20260310T150000Z" in data and "Dentist" not in data
    assert by_recipient["mailto:nobody@nowhere.invalid"].find("C:request-status", NS).text.startswith("3.7")
    invite = request.replace("VFREEBUSY", "VEVENT")
    assert dav.request("POST", "/dav/calendars/alice/outbox/", invite).status == 403
    assert dav.request("POST", dav.calendar(), request).status == 405
