"""What real CalDAV/CardDAV clients send and we used to refuse (issue 10 §2, "accept what real clients send")."""

from __future__ import annotations

import pytest

from oxsync.dialects import install_all
from oxsync.model import Module, RecurrenceType
from tests.davhelp import Dav, event, vcard
from tests.eas_client import client, items
from tests.oxclient import OxClient

MKCOL_BOOK = ('<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" '
              'xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/>'
              '<CR:addressbook/></D:resourcetype><D:displayname>Bench</D:displayname></D:prop></D:set></D:mkcol>')

OCCURRENCE_ONLY = (  # what Exchange sends an attendee invited to occurrences of a series (she accepted)
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:Microsoft Exchange Server 2010\r\nBEGIN:VEVENT\r\n"
    "UID:0400000082-one-occurrence\r\nRECURRENCE-ID:20260916T080000Z\r\nDTSTAMP:20260901T080000Z\r\n"
    "DTSTART:20260916T090000Z\r\nDTEND:20260916T100000Z\r\nSUMMARY:Steering committee (moved)\r\n"
    "ORGANIZER;CN=Olga Org:mailto:olga@partner.example\r\n"
    "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:alice@example.com\r\n"
    "SEQUENCE:2\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:0400000082-one-occurrence\r\nRECURRENCE-ID:20260930T080000Z\r\n"
    "DTSTAMP:20260901T080000Z\r\nDTSTART:20260930T080000Z\r\nDTEND:20260930T090000Z\r\n"
    "SUMMARY:Steering committee\r\nORGANIZER;CN=Olga Org:mailto:olga@partner.example\r\n"
    "ATTENDEE;CN=Alice Martin;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:alice@example.com\r\n"
    "SEQUENCE:2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all)
    yield running, world, Dav(running.port, world)


def _unfolded(text: str) -> str:
    return text.replace("\r\n ", "")


def test_overrides_without_their_master_are_stored_and_served(env) -> None:  # type: ignore[no-untyped-def]
    running, world, dav = env
    href = dav.calendar() + "invite.ics"
    put = dav.put(href, OCCURRENCE_ONLY)
    assert put.status == 201, put.text
    got = dav.request("GET", href).text
    assert _unfolded(got) == OCCURRENCE_ONLY and put.headers.get("etag")
    folder = world.default_folder(world.alice, Module.CALENDAR)
    titles = sorted(r.text("title") or "" for r in OxClient(running.port, "alice", "alice-pw").sync("calendar", folder))
    assert titles == ["Steering committee", "Steering committee (moved)"]  # each occurrence, in Outlook
    phone = client(running)
    phone.provision()
    phone.folder_sync()
    phone.sync(str(folder), "0")
    subjects = [d.findtext("Calendar:Subject") for d in items(phone.sync(str(folder))).values()]
    assert sorted(subjects) == ["Steering committee", "Steering committee (moved)"]  # and on the phone, each
    listing = dav.propfind(dav.calendar(), "<D:getetag/>", "1")
    assert [h for h in listing.hrefs() if h != dav.calendar()] == [href]  # still one resource


def test_weekly_rule_with_its_start_time_is_not_sub_daily(env) -> None:  # type: ignore[no-untyped-def]
    _, world, dav = env
    body = event("early-1", "Early numbers", "20260406T065500Z", "20260406T073000Z",
                 extra="RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=55;COUNT=4\r\n")
    assert dav.put(dav.calendar() + "early.ics", body).status == 201
    with world.as_user(world.alice) as session:
        [master] = session.list_objects(world.default_folder(world.alice, Module.CALENDAR))
    assert master.recurrence is not None and master.recurrence.type == RecurrenceType.WEEKLY  # a series in OX
    several = body.replace("early-1", "early-2").replace("BYHOUR=6", "BYHOUR=6,18")
    refused = dav.put(dav.calendar() + "twice.ics", several)
    assert refused.status == 403 and b"valid-calendar-object-resource" in refused.body


def test_calendar_and_address_book_may_share_a_name(env) -> None:  # type: ignore[no-untyped-def]
    _, _, dav = env
    assert dav.request("MKCALENDAR", "/dav/calendars/alice/bench/").status == 201
    assert dav.request("MKCOL", "/dav/addressbooks/alice/bench/", MKCOL_BOOK,
                       Content_Type="application/xml").status == 201
    assert dav.put("/dav/calendars/alice/bench/e.ics", event("bench-e")).status == 201
    assert dav.put("/dav/addressbooks/alice/bench/c.vcf", vcard("bench-c")).status == 201
    assert "UID:bench-e" in dav.request("GET", "/dav/calendars/alice/bench/e.ics").text
    assert "UID:bench-c" in dav.request("GET", "/dav/addressbooks/alice/bench/c.vcf").text


@pytest.mark.parametrize("kind", ["calendar", "addressbook"])
def test_overwriting_a_resource_with_another_uid_is_a_conflict(env, kind: str) -> None:  # type: ignore[no-untyped-def]
    _, _, dav = env
    if kind == "calendar":
        href, first, second, ns = dav.calendar() + "a.ics", event("UID-A"), event("UID-B"), b"caldav"
    else:
        href, first, second, ns = dav.addressbook() + "a.vcf", vcard("UID-A"), vcard("UID-B"), b"carddav"
    assert dav.put(href, first).status == 201
    reply = dav.put(href, second)
    assert reply.status == 409 and b"no-uid-conflict" in reply.body and ns in reply.body
    assert "UID:UID-A" in dav.request("GET", href).text  # nothing changed


def test_proppatch_of_a_default_calendar_answers_per_property(env) -> None:  # type: ignore[no-untyped-def]
    _, world, dav = env
    cal = dav.calendar()
    patch = ('<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
             'xmlns:A="http://apple.com/ns/ical/" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
             "<D:displayname>Work (vdirsyncer)</D:displayname><A:calendar-color>#FF8800FF</A:calendar-color>"
             "<C:calendar-description>Synced</C:calendar-description></D:prop></D:set></D:propertyupdate>")
    reply = dav.request("PROPPATCH", cal, patch, Content_Type="application/xml")
    assert reply.status == 207 and b"200 OK" in reply.body and b"403" not in reply.body
    found = dav.propfind(cal, "<D:displayname/><A:calendar-color/><C:calendar-description/>", "0").text
    assert "Work (vdirsyncer)" in found and "#FF8800FF" in found and "Synced" in found
    with world.as_user(world.alice) as session:
        folder = session.get_folder(world.default_folder(world.alice, Module.CALENDAR)).folder
    assert folder.color and folder.title != "Work (vdirsyncer)"  # the colour for everyone; the name is hers
    protected = patch.replace("<D:displayname>Work (vdirsyncer)</D:displayname>", "<D:getetag>x</D:getetag>")
    refused = dav.request("PROPPATCH", cal, protected, Content_Type="application/xml")
    assert refused.status == 207 and b"403" in refused.body and b"424" in refused.body


def test_deleting_occurrences_without_a_series_deletes_them_all(env) -> None:  # type: ignore[no-untyped-def]
    _, world, dav = env
    href = dav.calendar() + "invite.ics"
    assert dav.put(href, OCCURRENCE_ONLY).status == 201
    assert dav.request("DELETE", href).status == 204
    with world.as_user(world.alice) as session:
        assert session.list_objects(world.default_folder(world.alice, Module.CALENDAR)) == []
