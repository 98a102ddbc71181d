"""A private appointment shows as busy time and nothing else, on the WIRE of every dialect (issue 10 §4).

The title, location and note are distinct strings, so each assertion can fail: the OX conflict items
of a clashing appointment, an OX listing of the shared calendar, ActiveSync ResolveRecipients
availability, the CalDAV free-busy-query and scheduling outbox, and the free/busy servlet. Each
check also requires the busy time itself, so that an empty answer cannot pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oxsync.dialects import install_all
from oxsync.eas.wbxml import E
from oxsync.model import Appointment, Module, Permission
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.permissions import rights_for_level
from oxsync.model.timeutil import to_ms
from tests.davhelp import Dav
from tests.eas_client import client
from tests.live import http_request
from tests.oxclient import OX_SERVER, OxClient, proppatch_body

SECRETS = (b"Title-Q7xw", b"Loc-K2pz", b"Note-M9rv")
START = datetime(2030, 3, 10, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def assert_nothing_leaks(raw: bytes, where: str) -> None:
    leaked = [s.decode() for s in SECRETS if s in raw]
    assert not leaked, f"{where} shows {leaked}"


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    calendar = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        owner = session.get_folder(calendar).folder.permissions  # bob may read all of alice's calendar ...
        session.set_permissions(calendar, owner + [Permission(world.bob, False, rights_for_level(2))])
        session.create_object(calendar, Appointment(  # ... but not her private appointment
            title=SECRETS[0].decode(), location=SECRETS[1].decode(), note=SECRETS[2].decode(), private_flag=True,
            start_date=START, end_date=END, participants=[Participant(ParticipantKind.USER, world.alice)]))
    running = live_server(store, setup=install_all, server=OX_SERVER)
    return running, world, calendar


def test_ox_conflict_items_and_shared_listing(env) -> None:  # type: ignore[no-untyped-def]
    running, world, calendar = env
    bob = OxClient(running.port, "bob", "bob-pw")
    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    clash = {"folder_id": bob_cal, "title": "Clash", "start_date": to_ms(START), "end_date": to_ms(END),
             "participants": f"<ox:user>{world.bob}</ox:user><ox:user>{world.alice}</ox:user>"}
    status, _, raw = bob.request("PROPPATCH", "/servlet/webdav.calendar", proppatch_body([clash]))
    assert status == 207 and b"[1006]" in raw and f"{to_ms(START)},{to_ms(END)}".encode() in raw
    assert_nothing_leaks(raw, "OX conflict items")
    status, _, raw = bob.request("PROPFIND", "/servlet/webdav.calendar",
                                 '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:ox="http://www.open-xchange.org">'
                                 f"<D:prop><ox:folder_id>{calendar}</ox:folder_id><ox:lastsync>0</ox:lastsync>"
                                 "</D:prop></D:propfind>")
    assert status == 207
    assert_nothing_leaks(raw, "OX listing of the shared calendar")


def test_eas_resolve_recipients_availability(env) -> None:  # type: ignore[no-untyped-def]
    running, world, _ = env
    phone = client(running, "bob", "bob-pw")
    phone.provision()
    reply = phone.post("ResolveRecipients", E(
        "ResolveRecipients:ResolveRecipients", E("ResolveRecipients:To", "alice@example.com"),
        E("ResolveRecipients:Options", E("ResolveRecipients:Availability",
                                         E("ResolveRecipients:StartTime", "2030-03-10T08:00:00.000Z"),
                                         E("ResolveRecipients:EndTime", "2030-03-10T11:00:00.000Z")))))
    merged = reply.body.find("ResolveRecipients:Response").find("ResolveRecipients:Recipient") \
        .find("ResolveRecipients:Availability").findtext("ResolveRecipients:MergedFreeBusy")
    assert merged == "002200"  # busy 09:00-10:00 in half hours
    assert_nothing_leaks(reply.raw, "ActiveSync availability")


def test_dav_free_busy_query_and_outbox(env) -> None:  # type: ignore[no-untyped-def]
    running, world, calendar = env
    dav = Dav(running.port, world)
    query = ('<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20300310T000000Z" '
             'end="20300311T000000Z"/></C:free-busy-query>')
    reply = dav.report(f"/dav/calendars/bob/{calendar}/", query, user="bob")  # alice's, shared with bob
    assert reply.status == 200 and b"20300310T090000Z/20300310T100000Z" in reply.body
    assert_nothing_leaks(reply.body, "CalDAV free-busy-query")
    request = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
               "UID:fb-private\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300310T000000Z\r\nDTEND:20300311T000000Z\r\n"
               "ORGANIZER:mailto:bob@example.com\r\nATTENDEE:mailto:alice@example.com\r\n"
               "END:VFREEBUSY\r\nEND:VCALENDAR\r\n")
    reply = dav.request("POST", "/dav/calendars/bob/outbox/", request, user="bob", Content_Type="text/calendar")
    assert reply.status == 200 and b"20300310T090000Z/20300310T100000Z" in reply.body
    assert_nothing_leaks(reply.body, "CalDAV scheduling outbox")


def test_free_busy_servlet(env) -> None:  # type: ignore[no-untyped-def]
    running, _, _ = env
    status, _, raw = http_request(running.port, "GET", "/servlet/webdav.freebusy?username=alice&server=example.com"
                                  "&start=20300310&end=20300311")
    assert status == 200 and b"20300310T090000Z/20300310T100000Z" in raw
    assert_nothing_leaks(raw, "the free/busy servlet")
