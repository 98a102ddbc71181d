"""CalDAV/CardDAV discovery over real HTTP: well-known, current-user-principal (also at / through the
root hook), principals, homes, collection properties, rights, principal search."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.web.resource import Resource

from oxsync.dav import install
from oxsync.model import Module
from oxsync.model.permissions import Permission, Rights
from tests.davhelp import NS, Dav, event


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install)
    return Dav(running.port, world)


class RootWrapper(Resource):
    """Stands in for the hook server.RootResource should call (see RootHook)."""

    def __init__(self, root: Any, hook: Any) -> None:
        super().__init__()
        self.root, self.hook = root, hook

    def getChildWithDefault(self, path: bytes, request: Any) -> Any:  # noqa: N802
        if path == b"" and self.hook.wants(request):
            return self
        return self.root.getChildWithDefault(path, request)

    def render(self, request: Any) -> Any:
        return self.hook.render(request) if self.hook.wants(request) else self.root.render(request)


def test_well_known_redirects(dav: Dav) -> None:
    for name in ("caldav", "carddav"):
        reply = dav.request("GET", f"/.well-known/{name}", user="")
        assert reply.status == 301 and reply.headers["location"] == "/dav/"
    assert dav.request("GET", "/.well-known/other", user="").status == 404


def test_unauthenticated_is_challenged(dav: Dav) -> None:
    reply = dav.request("PROPFIND", "/dav/", user="")
    assert reply.status == 401 and "basic" in reply.headers["www-authenticate"].lower()
    options = dav.request("OPTIONS", "/dav/", user="")
    assert "calendar-access" in options.headers["dav"] and "addressbook" in options.headers["dav"]
    assert "calendar-auto-schedule" in options.headers["dav"]


def test_current_user_principal_and_homes(dav: Dav) -> None:
    reply = dav.propfind("/dav/", "<D:current-user-principal/><D:principal-collection-set/>")
    assert reply.status == 207
    assert reply.prop("/dav/", "D:current-user-principal/D:href").text == "/dav/principals/users/alice/"
    principal = dav.propfind("/dav/principals/users/alice/",
                             "<C:calendar-home-set/><CR:addressbook-home-set/><C:calendar-user-address-set/>"
                             "<C:schedule-inbox-URL/><C:schedule-outbox-URL/><D:displayname/>")
    href = "/dav/principals/users/alice/"
    assert principal.prop(href, "C:calendar-home-set/D:href").text == "/dav/calendars/alice/"
    assert principal.prop(href, "CR:addressbook-home-set/D:href").text == "/dav/addressbooks/alice/"
    addresses = [h.text for h in principal.prop(href, "C:calendar-user-address-set").findall("D:href", NS)]
    assert "mailto:alice@example.com" in addresses
    assert principal.prop(href, "C:schedule-outbox-URL/D:href").text == "/dav/calendars/alice/outbox/"
    assert principal.prop(href, "D:displayname").text == "Alice Martin"


def test_root_hook_answers_current_user_principal(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    def setup(service: Any) -> None:
        install(service)
        service.site.resource = RootWrapper(service.site.root, service.site.dav_root_hook)

    dav = Dav(live_server(store, setup=setup).port, world)
    reply = dav.propfind("/", "<D:current-user-principal/>")
    assert reply.status == 207
    assert reply.prop("/dav/", "D:current-user-principal/D:href").text == "/dav/principals/users/alice/"
    assert dav.request("GET", "/", user="").body == b"oxsync\n"


def test_group_and_resource_principals(dav: Dav, store, world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.store import accounts

    with store.transaction(world.tenant_id, write=True) as tx:
        accounts.create_resource(tx, "room1", "room1@example.com", display_name="Room One")
    group = dav.propfind("/dav/principals/groups/team/", "<D:group-member-set/><D:displayname/>")
    members = {h.text for h in group.prop("/dav/principals/groups/team/", "D:group-member-set").findall("D:href", NS)}
    assert members == {"/dav/principals/users/alice/", "/dav/principals/users/bob/"}
    room = dav.propfind("/dav/principals/resources/room1/", "<C:calendar-user-type/><C:calendar-user-address-set/>")
    assert room.prop("/dav/principals/resources/room1/", "C:calendar-user-type").text == "ROOM"
    assert dav.propfind("/dav/principals/users/nobody/", "<D:displayname/>").status == 404


def test_calendar_home_lists_own_and_shared_folders(dav: Dav, store, world) -> None:  # type: ignore[no-untyped-def]
    bob_calendar = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as s:
        folder = s.get_folder(bob_calendar).folder
        s.set_permissions(bob_calendar, [*folder.permissions, Permission(world.alice, False, Rights(2, 4, 0, 0))])
    reply = dav.propfind("/dav/calendars/alice/", "<D:displayname/><D:resourcetype/><CS:getctag/><D:sync-token/>"
                         "<C:supported-calendar-component-set/><D:current-user-privilege-set/><A:calendar-color/>", "1")
    assert reply.status == 207
    shared = f"/dav/calendars/alice/{bob_calendar}/"
    assert shared in reply.hrefs()
    assert reply.prop(shared, "D:resourcetype/CS:shared") is not None
    privileges = {p[0].tag for p in reply.prop(shared, "D:current-user-privilege-set")}
    assert f"{{{NS['D']}}}read" in privileges and f"{{{NS['D']}}}write-content" not in privileges
    assert f"{{{NS['C']}}}read-free-busy" in privileges
    own = dav.calendar()
    own_privs = {p[0].tag for p in reply.prop(own, "D:current-user-privilege-set")}
    assert f"{{{NS['D']}}}write" in own_privs
    assert reply.prop(own, "CS:getctag").text.startswith("http://oxsync/ns/sync/")
    assert dav.tasks() in reply.hrefs()
    assert "/dav/calendars/alice/inbox/" in reply.hrefs()
    # carol sees nothing of bob's
    carol = dav.propfind("/dav/calendars/carol/", "<D:displayname/>", "1", user="carol")
    assert shared.replace("alice", "carol") not in carol.hrefs()
    # someone else's home is refused
    assert dav.propfind("/dav/calendars/bob/", "<D:displayname/>", "1").status == 403


def test_shared_folder_acl_is_readonly_view(dav: Dav, world) -> None:  # type: ignore[no-untyped-def]
    calendar = dav.calendar()
    reply = dav.propfind(calendar, "<D:acl/><D:owner/>")
    assert reply.prop(calendar, "D:owner/D:href").text == "/dav/principals/users/alice/"
    assert reply.prop(calendar, "D:acl/D:ace/D:protected") is not None
    refused = dav.request("ACL", calendar, "<D:acl xmlns:D='DAV:'/>")
    assert refused.status == 405


def test_private_items_of_others_never_appear(dav: Dav, world) -> None:  # type: ignore[no-untyped-def]
    bob_calendar = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as s:
        folder = s.get_folder(bob_calendar).folder
        s.set_permissions(bob_calendar, [*folder.permissions, Permission(world.alice, False, Rights(2, 4, 0, 0))])
    assert dav.put(f"/dav/calendars/bob/{bob_calendar}/pub.ics", event("pub"), user="bob").status == 201
    secret = event("secret", "Doctor", extra="CLASS:PRIVATE\r\n")
    assert dav.put(f"/dav/calendars/bob/{bob_calendar}/secret.ics", secret, user="bob").status == 201
    listing = dav.propfind(f"/dav/calendars/alice/{bob_calendar}/", "<D:getetag/>", "1")
    names = {h.rsplit("/", 1)[-1] for h in listing.hrefs()}
    assert "pub.ics" in names and "secret.ics" not in names
    assert dav.request("GET", f"/dav/calendars/alice/{bob_calendar}/secret.ics").status == 404


def test_principal_property_search(dav: Dav) -> None:
    body = ('<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            "<D:property-search><D:prop><D:displayname/></D:prop><D:match>durand</D:match></D:property-search>"
            "<D:prop><D:displayname/><C:calendar-home-set/></D:prop></D:principal-property-search>")
    reply = dav.report("/dav/principals/", body, depth="0")
    assert reply.status == 207 and reply.hrefs() == ["/dav/principals/users/bob/"]
    by_mail = body.replace("<D:displayname/></D:prop><D:match>durand",
                           "<C:calendar-user-address-set/></D:prop><D:match>carol@example")
    assert dav.report("/dav/principals/", by_mail, depth="0").hrefs() == ["/dav/principals/users/carol/"]
    props = dav.report("/dav/principals/", '<D:principal-search-property-set xmlns:D="DAV:"/>', depth="0")
    assert props.status == 200 and b"displayname" in props.body
