"""A scripted OXtender-like session (reference ox-webdav-xml.md §5) over real HTTP + UDP on loopback,
then the KDE OX resource's request shapes (ox-kde-client.md §2, §6).

The OXtender client here: identity via groupuser, UDP REGISTER from the socket it listens on, folder
list, full and delta sync driven by max(last_modified), create, update with an edit conflict resolved
by re-reading, delete, a recurring meeting with participants confirmed by the invitee, an exception and
a deleted occurrence, a move, attachments, and the Internet free/busy URL Outlook is configured with.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from oxsync.model import Module
from oxsync.ox import install
from oxsync.store import accounts
from tests.oxclient import OX, OX_SERVER, OxClient, UdpClient, parse_multistatus

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_893_456_000_000  # 2030-01-01 00:00 UTC, a Tuesday


@pytest.fixture
def session_env(live_server, store, world):  # type: ignore[no-untyped-def]
    with store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room1", "room1@example.com", display_name="Room 1")
    running = live_server(store, setup=install, server=OX_SERVER, ox={"push_coalesce_seconds": 0.0})
    udp = UdpClient(running.service.ox_push.bound_port)
    yield running, world, room.id, udp
    udp.close()


def _max_lm(responses) -> int:  # type: ignore[no-untyped-def]
    return max((int(r.text("last_modified")) for r in responses if r.text("last_modified")), default=0)


def test_oxtender_session(session_env) -> None:  # type: ignore[no-untyped-def]
    running, world, room, udp = session_env
    ol = OxClient(running.port, "alice", "alice-pw")  # Basic once, then the sessionid cookie
    bob = OxClient(running.port, "bob", "bob-pw")

    # (a) identity, then UDP registration
    [gu] = ol.propfind("groupuser", {"user": "*", "group": "*", "resource": "*", "lastsync": 0})
    me = next(u for u in gu.props["users"] if u.findtext(f"{{{OX}}}myidentity") == "true")
    my_id, context = int(me.findtext(f"{{{OX}}}uid")), int(me.findtext(f"{{{OX}}}context_id"))
    assert (my_id, context) == (world.alice, world.tenant_id) and ol.cookie
    assert udp.register(my_id, context) == b"OK\x01"

    # (b) folder list: own default folders under 1, the global address book under 2
    tree = {r.href: r for r in ol.sync("folders", None)}
    own = {r.text("module"): int(r.href) for r in tree.values()
           if r.text("folder_id") == "1" and r.text("defaultfolder") == "true"}
    assert set(own) == {"contact", "calendar", "task"}
    assert tree["6"].text("folder_id") == "2"
    contacts, calendar = own["contact"], own["calendar"]

    # (c) full content, then (d) create
    assert ol.sync("contacts", contacts) == []
    [created] = ol.proppatch("contacts", {"folder_id": contacts, "client_id": "OL-4711", "last_name": "Smith",
                                          "first_name": "Anna", "displayname": "Smith, Anna",
                                          "email1": "anna@example.org", "birthday": 315532800000})
    assert (created.status, created.description, created.text("client_id")) == ("200", "[1200] OK", "OL-4711")
    assert udp.recv() == f"{contacts}\x01".encode()
    full = ol.sync("contacts", contacts)
    lastsync = _max_lm(full)

    # (e) update with conflict: someone else (the web UI, another PC) changed it meanwhile
    other_pc = OxClient(running.port, "alice", "alice-pw", always_basic=True)
    [other] = other_pc.proppatch("contacts", {"object_id": created.href, "folder_id": contacts,
                                              "last_modified": created.text("last_modified"), "company": "ACME"})
    assert other.status == "200"
    assert udp.recv() == f"{contacts}\x01".encode()
    [conflict] = ol.proppatch("contacts", {"object_id": created.href, "folder_id": contacts,
                                           "last_modified": created.text("last_modified"), "phone_business": "+49 30 1234"})
    assert (conflict.status, conflict.code, conflict.href) == ("409", 1000, created.href)
    [fresh] = ol.propfind("contacts", {"object_id": created.href, "folder_id": contacts})
    assert fresh.text("company") == "ACME"
    [resolved] = ol.proppatch("contacts", {"object_id": created.href, "folder_id": contacts,
                                           "last_modified": fresh.text("last_modified"), "phone_business": "+49 30 1234"})
    assert resolved.status == "200" and int(resolved.text("last_modified")) > int(fresh.text("last_modified"))
    udp.recv()

    # (g) delta sync sees the change; (f) delete, then the delta has the DELETE
    delta = ol.sync("contacts", contacts, lastsync)
    assert [(r.href, r.text("object_status"), r.text("phone_business")) for r in delta] == [
        (created.href, "CREATE", "+49 30 1234")]
    lastsync = _max_lm(delta)
    [deleted] = ol.proppatch("contacts", {"method": "DELETE", "object_id": created.href, "folder_id": contacts,
                                          "last_modified": resolved.text("last_modified")})
    assert deleted.description == "[1200] OK"
    udp.recv()
    delta = ol.sync("contacts", contacts, lastsync)
    assert [(r.href, r.text("object_status")) for r in delta] == [(created.href, "DELETE")]

    # (h) a weekly Mon+Wed meeting with bob and a room; bob confirms from his own calendar
    monday = T0 + 6 * DAY  # 2030-01-07
    [series] = ol.proppatch("calendar", {
        "folder_id": calendar, "title": "Standup", "start_date": monday + 9 * HOUR, "end_date": monday + 10 * HOUR,
        "full_time": False, "shown_as": 1, "alarm_flag": True, "alarm": 15, "recurrence_type": "weekly",
        "interval": 1, "days": 10, "occurrences": 10,
        "participants": f'<ox:user ox:confirm="accept">{my_id}</ox:user><ox:user>{world.bob}</ox:user>'
                        f"<ox:resource>{room}</ox:resource>"})
    assert series.status == "200" and series.text("recurrence_id") == series.href
    assert udp.recv() == f"{calendar}\x01".encode()
    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    [in_bob] = bob.sync("calendar", bob_cal)
    assert in_bob.href == series.href and in_bob.text("folder_id") == str(bob_cal)
    [confirmed] = bob.proppatch("calendar", {"method": "CONFIRM", "object_id": series.href, "folder_id": bob_cal,
                                             "confirm": "accept", "confirm_message": "OK for me"})
    assert confirmed.status == "200"
    assert udp.recv() == f"{calendar}\x01".encode()  # alice's copy changed too
    [master] = ol.propfind("calendar", {"object_id": series.href, "folder_id": calendar})
    assert {p.text: p.get(f"{{{OX}}}confirm") for p in master.props["participants"] if p.tag.endswith("user")} == {
        str(my_id): "accept", str(world.bob): "accept"}

    # an exception (second occurrence moved) and a deleted occurrence
    wednesday = monday + 2 * DAY
    [exc] = ol.proppatch("calendar", {"object_id": series.href, "folder_id": calendar,
                                      "last_modified": master.text("last_modified"), "recurrence_date_position": wednesday,
                                      "start_date": wednesday + 15 * HOUR, "end_date": wednesday + 16 * HOUR,
                                      "title": "Standup (afternoon)"})
    assert exc.status == "200" and exc.text("recurrence_id") == series.href and exc.href != series.href
    udp.recv()
    [master] = ol.propfind("calendar", {"object_id": series.href, "folder_id": calendar})
    [gone] = ol.proppatch("calendar", {"object_id": series.href, "folder_id": calendar, "method": "DELETE",
                                       "last_modified": master.text("last_modified"), "recurrence_position": 3})
    assert gone.status == "200", gone.description
    udp.recv()
    [master] = ol.propfind("calendar", {"object_id": series.href, "folder_id": calendar})
    assert master.text("changeexceptions") == str(wednesday)
    assert master.text("deleteexceptions") == str(monday + 7 * DAY)

    # move an appointment into a new calendar subfolder
    [sub] = ol.proppatch("folders", {"folder_id": calendar, "title": "Projects", "module": "calendar", "type": "private"})
    assert sub.status == "200"
    udp.recv()
    [single] = ol.proppatch("calendar", {"folder_id": calendar, "title": "Review", "start_date": T0 + 40 * DAY,
                                         "end_date": T0 + 40 * DAY + HOUR})
    [moved] = ol.proppatch("calendar", {"object_id": single.href, "folder_id": calendar,
                                        "last_modified": single.text("last_modified"), "folder": sub.href})
    assert moved.status == "200"
    assert [r.href for r in ol.sync("calendar", int(sub.href))] == [single.href]

    # attachments on the series
    headers = {"module": "1", "target_id": series.href, "target_folder_id": str(calendar),
               "filename": quote("agenda.pdf"), "Content-Type": "application/pdf"}
    status, _, body = ol.request("PUT", "/servlet/webdav.attachments", b"%PDF-1.4 agenda", headers)
    [att] = parse_multistatus(body)
    assert status == 207 and att.status == "200"
    status, _, data = ol.request("GET", "/servlet/webdav.attachments", None, {**headers, "object_id": att.href})
    assert (status, data) == (200, b"%PDF-1.4 agenda")

    # free/busy as Outlook fetches it (no credentials): alice and the room are busy Monday 09:00
    fb = OxClient(running.port, "", "")
    status, _, text = fb.request("GET", "/servlet/webdav.freebusy?username=alice&server=example.com&start=20300107&end=20300108")
    assert status == 200 and "FREEBUSY;FBTYPE=BUSY:20300107T090000Z/20300107T100000Z" in text.decode()
    status, _, text = fb.request("GET", "/servlet/webdav.freebusy?username=room1&server=example.com&start=20300107&end=20300108")
    assert status == 200 and "20300107T090000Z/20300107T100000Z" in text.decode()


def test_kde_request_shapes(session_env) -> None:  # type: ignore[no-untyped-def]
    running, world, _, _ = session_env
    kde = OxClient(running.port, "alice", "alice-pw", always_basic=True)  # KDE never uses the cookie
    # §6.1: folders, D:multistatus root, Depth 0, MODIFIED only; the user id is the owner of the first folder under 1
    folders = kde.propfind("folders", {"lastsync": 0, "objectmode": "MODIFIED"}, root="multistatus", depth0=True)
    first_private = next(r for r in folders if r.text("folder_id") == "1")
    assert first_private.text("owner") == str(world.alice)
    assert all(r.text("folder_id") in {"1", "2", "3"} | {x.href for x in folders} for r in folders)  # parent-complete
    contacts = world.default_folder(world.alice, Module.CONTACT)
    # §6.5 create with many empty elements (empty = clear, harmless on create)
    [c] = kde.proppatch("contacts", {"folder_id": contacts, "title": None, "first_name": "Herbert", "second_name": None,
                                     "last_name": "Meier", "displayname": "Herbert Meier", "birthday": 327369600000,
                                     "anniversary": None, "image1": None, "email1": "herbert@example.com",
                                     "business_city": "Olpe", "categories": None})
    assert c.status == "200" and int(c.href) > 0 and c.text("last_modified")
    t = int(c.text("last_modified")) - 1  # KDE: max(last_modified) - 1
    # §6.6 modify: object_id, folder_id, last_modified then fields, no method
    [m] = kde.proppatch("contacts", {"object_id": c.href, "folder_id": contacts, "last_modified": c.text("last_modified"),
                                     "first_name": "Herbert", "last_name": "Meier-Olpe"})
    assert m.status == "200"
    # §6.4: two separate requests, MODIFIED and DELETED
    mod = kde.propfind("contacts", {"folder_id": contacts, "lastsync": t, "objectmode": "MODIFIED"}, root="multistatus",
                       depth0=True)
    assert [(r.href, r.text("last_name")) for r in mod] == [(c.href, "Meier-Olpe")]
    # §6.7 delete with method after folder_id
    [d] = kde.proppatch("contacts", {"object_id": c.href, "folder_id": contacts, "method": "DELETE",
                                     "last_modified": m.text("last_modified")})
    assert d.status == "200"
    dele = kde.propfind("contacts", {"folder_id": contacts, "lastsync": t, "objectmode": "DELETED"}, root="multistatus",
                        depth0=True)
    assert [(r.href, r.text("object_status")) for r in dele] == [(c.href, "DELETE")]
    # §2.3 user directory
    [users] = kde.propfind("groupuser", {"user": "*"}, root="multistatus")
    assert {u.findtext(f"{{{OX}}}uid") for u in users.props["users"]} >= {str(world.alice), str(world.bob)}
    # KDE PROPPATCHes to a path below the servlet
    status, _, body = kde.request("PROPPATCH", "/servlet/webdav.calendar/file.xml",
                                  f'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
                                  f'<ox:folder_id xmlns:ox="{OX}">{world.default_folder(world.alice, Module.CALENDAR)}</ox:folder_id>'
                                  f'<ox:title xmlns:ox="{OX}">KDE</ox:title><ox:start_date xmlns:ox="{OX}">{T0}</ox:start_date>'
                                  f'<ox:end_date xmlns:ox="{OX}">{T0 + HOUR}</ox:end_date>'
                                  f'<ox:participants xmlns:ox="{OX}"><ox:user xmlns:ox="{OX}" ox:confirm="none">{world.bob}</ox:user>'
                                  "</ox:participants></D:prop></D:set></D:propertyupdate>")
    [r] = parse_multistatus(body)
    assert status == 207 and r.status == "200", r.description
