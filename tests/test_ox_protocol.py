"""OX WebDAV/XML protocol behaviour over real HTTP: auth and cookies, PROPFIND forms, PROPPATCH
operations, error codes, shared folders, synthetic deletes (reference ox-webdav-xml.md §1-2)."""

from __future__ import annotations

import pytest

from oxsync.model import Module, Protocol
from oxsync.ox import install
from oxsync.store import accounts
from tests.oxclient import OX, OX_SERVER, OxClient, parse_multistatus

T0 = 1_893_456_000_000
HOUR = 3_600_000


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER)
    return running, world


def client(env, login: str = "alice") -> OxClient:  # type: ignore[no-untyped-def]
    return OxClient(env[0].port, login, f"{login}-pw")


def folder(env, user: str, module: Module) -> int:  # type: ignore[no-untyped-def]
    world = env[1]
    return world.default_folder(getattr(world, user), module)


# ---------------------------------------------------------------- transport and auth


def test_version_and_options(env) -> None:  # type: ignore[no-untyped-def]
    c = client(env)
    status, headers, body = c.request("GET", "/servlet/webdav.version")
    assert (status, body) == (200, b"6.20.7-Rev2\n") and headers["content-type"].startswith("text/plain")
    status, headers, _ = c.request("OPTIONS", "/servlet/webdav.contacts")
    assert status == 200 and headers["dav"] == "1" and "PROPPATCH" in headers["allow"]
    # PUT is PROPPATCH (OX's own tests), and a D:multistatus may wrap the D:propertyupdate
    f = folder(env, "alice", Module.TASK)
    body = (f'<D:multistatus xmlns:D="DAV:" xmlns:ox="{OX}"><D:propertyupdate><D:set><D:prop>'
            f"<ox:folder_id>{f}</ox:folder_id><ox:title>Via PUT</ox:title></D:prop></D:set></D:propertyupdate></D:multistatus>")
    status, _, raw = c.request("PUT", "/servlet/webdav.tasks", body)
    [r] = parse_multistatus(raw)
    assert status == 207 and r.description == "[1200] OK" and r.text("recurrence_id") == "0"
    assert [x.text("title") for x in c.sync("tasks", f)] == ["Via PUT"]


def test_basic_then_cookie_and_revocation(env, store) -> None:  # type: ignore[no-untyped-def]
    running, world = env
    c = client(env)
    c.propfind("folders", {"lastsync": 0})
    assert c.cookie and c.cookie.startswith(f"v1.{world.tenant_id}.{world.alice}.")
    c.password = "wrong"  # the cookie alone now authenticates
    assert c.propfind("folders", {"lastsync": 0})
    forged = c.cookie[:-4] + ("AAAA" if not c.cookie.endswith("AAAA") else "BBBB")
    status, headers, _ = OxClient(running.port, "x", "y").request(
        "PROPFIND", "/servlet/webdav.folders", "<x/>", {"Cookie": f"sessionid={forged}"})
    assert status == 401
    with store.transaction(world.tenant_id, write=True) as tx:  # removing the outlook right ends the cookie too
        accounts.update_user(tx, world.alice, protocols=[Protocol.DAV])
    status, headers, _ = c.request("PROPFIND", "/servlet/webdav.folders",
                                   '<D:propfind xmlns:D="DAV:" xmlns:ox="http://www.open-xchange.org"><D:prop>'
                                   "<ox:lastsync>0</ox:lastsync></D:prop></D:propfind>")
    assert status == 403 and "max-age=0" in headers.get("set-cookie", "").lower()


def test_suspended_and_unauthenticated(env, store) -> None:  # type: ignore[no-untyped-def]
    running, world = env
    status, headers, _ = OxClient(running.port, "bob", "wrong").request("PROPFIND", "/servlet/webdav.folders", "<x/>")
    assert status == 401 and "basic" in headers["www-authenticate"].lower()
    with store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.bob, active=False)
    status, _, _ = client(env, "bob").request("PROPFIND", "/servlet/webdav.folders", "<x/>")
    assert status == 403


# ---------------------------------------------------------------- folders


def test_folder_tree_shared_and_permissions(env) -> None:  # type: ignore[no-untyped-def]
    alice, bob = client(env), client(env, "bob")
    world = env[1]
    bob_cal = folder(env, "bob", Module.CALENDAR)
    [r] = bob.proppatch("folders", {"folder_id": 1, "title": "Bob shared", "module": "calendar", "type": "private",
                                    "permissions": f'<ox:user ox:folderpermission="128" ox:objectreadpermission="128" '
                                    f'ox:objectwritepermission="128" ox:objectdeletepermission="128" ox:admin_flag="true">{world.bob}</ox:user>'
                                    f'<ox:user folderpermission="2" objectreadpermission="4" objectwritepermission="0" '
                                    f'objectdeletepermission="0" admin_flag="false">{world.alice}</ox:user>'})
    assert r.status == "200", r.description
    shared_id = int(r.href)
    tree = {x.href: x for x in alice.sync("folders", None)}
    assert str(bob_cal) not in tree
    shared = tree[str(shared_id)]
    assert (shared.text("type"), shared.text("folder_id"), shared.text("owner")) == ("shared", "3", str(world.bob))
    entries = {p.text: p for p in shared.props["permissions"]}
    assert entries[str(world.alice)].get(f"{{{OX}}}objectreadpermission") == "4"  # unqualified input accepted
    assert entries[str(world.bob)].get(f"{{{OX}}}admin_flag") == "true"
    own = tree[str(folder(env, "alice", Module.CONTACT))]
    assert (own.text("type"), own.text("folder_id"), own.text("defaultfolder")) == ("private", "1", "true")
    assert tree["6"].text("folder_id") == "2"
    assert all(x.status == "200" and x.description == "OK" for x in tree.values())
    # revoking alice's access makes the folder a synthetic DELETE in her folder delta
    stamp = max(int(x.text("last_modified")) for x in tree.values())
    [p] = bob.proppatch("folders", {"object_id": shared_id, "last_modified": r.text("last_modified"),
                                    "permissions": f'<ox:user ox:folderpermission="128" ox:objectreadpermission="128" '
                                    f'ox:objectwritepermission="128" ox:objectdeletepermission="128" ox:admin_flag="true">{world.bob}</ox:user>'})
    assert p.status == "200", p.description
    delta = alice.sync("folders", None, stamp)
    assert [(x.href, x.text("object_status")) for x in delta] == [(str(shared_id), "DELETE")]


def test_folder_update_move_delete_and_default_rename_ignored(env) -> None:  # type: ignore[no-untyped-def]
    c = client(env)
    contacts = folder(env, "alice", Module.CONTACT)
    [a] = c.proppatch("folders", {"folder_id": 1, "title": "A", "module": "contact", "type": "private"})
    [b] = c.proppatch("folders", {"folder_id": 1, "title": "B", "module": "contact"})
    [m] = c.proppatch("folders", {"object_id": b.href, "folder_id": 1, "last_modified": b.text("last_modified"),
                                  "folder": a.href, "title": "B2"})
    assert m.status == "200", m.description
    tree = {x.href: x for x in c.sync("folders", None)}
    assert (tree[b.href].text("title"), tree[b.href].text("folder_id")) == ("B2", a.href)
    default = tree[str(contacts)]
    [d] = c.proppatch("folders", {"object_id": contacts, "last_modified": default.text("last_modified"), "title": "X"})
    assert d.status == "200"
    assert {x.href: x for x in c.sync("folders", None)}[str(contacts)].text("title") == "Contacts"
    [gone] = c.proppatch("folders", {"object_id": b.href, "method": "DELETE", "last_modified": m.text("last_modified")})
    assert gone.status == "200", gone.description
    assert b.href not in {x.href for x in c.sync("folders", None)}
    [bad] = c.proppatch("folders", {"folder_id": 1, "title": "C", "module": "unbound"})
    assert bad.code == 1100


# ---------------------------------------------------------------- PROPFIND forms


def test_full_delta_list_single_and_lenient_forms(env) -> None:  # type: ignore[no-untyped-def]
    c, bob = client(env), client(env, "bob")
    f = folder(env, "alice", Module.CONTACT)
    made = [c.proppatch("contacts", {"folder_id": f, "last_name": f"N{i}"})[0] for i in range(3)]
    full = c.sync("contacts", f)
    assert {x.href for x in full} == {m.href for m in made}
    assert all(x.text("object_status") == "CREATE" for x in full)
    stamp = max(int(x.text("last_modified")) for x in full)
    [u] = c.proppatch("contacts", {"object_id": made[0].href, "folder_id": f, "last_modified": made[0].text("last_modified"),
                                   "first_name": "Z"})
    [d] = c.proppatch("contacts", {"object_id": made[1].href, "folder_id": f, "method": "delete",
                                   "last_modified": made[1].text("last_modified")})
    assert u.status == d.status == "200"
    delta = c.sync("contacts", f, stamp)
    assert [(x.href, x.text("object_status")) for x in delta] == [(made[1].href, "DELETE"), (made[0].href, "CREATE")]
    assert delta[0].text("last_modified") is not None and "first_name" not in delta[0].props
    # KDE: separate MODIFIED and DELETED requests, D:multistatus root, Depth 0, objectmode twice
    mod = c.propfind("contacts", {"folder_id": f, "lastsync": stamp, "objectmode": "MODIFIED"}, root="multistatus", depth0=True)
    dele = c.propfind("contacts", {"folder_id": f, "lastsync": stamp, "objectmode": "DELETED"}, root="multistatus", depth0=True)
    assert [x.href for x in mod] == [made[0].href] and [x.href for x in dele] == [made[1].href]
    body = (f'<D:multistatus xmlns:D="DAV:"><D:prop><ox:folder_id xmlns:ox="{OX}">{f}</ox:folder_id>'
            f'<ox:lastsync xmlns:ox="{OX}">{stamp}</ox:lastsync>'
            f'<ox:objectmode xmlns:ox="{OX}">NEW_AND_MODIFIED</ox:objectmode>'
            f'<ox:objectmode xmlns:ox="{OX}">DELETED</ox:objectmode></D:prop></D:multistatus>')
    status, _, raw = c.request("PROPFIND", "/servlet/webdav.contacts", body)
    assert status == 207 and len(parse_multistatus(raw)) == 2
    # no objectmode -> modified+deleted; no lastsync -> 0
    assert len(c.propfind("contacts", {"folder_id": f, "lastsync": stamp})) == 2
    assert len(c.propfind("contacts", {"folder_id": f, "objectmode": "MODIFIED"})) == 2
    [lst] = c.propfind("contacts", {"folder_id": f, "objectmode": "LIST"})
    assert lst.href == "0" and lst.text("object_status") == "LIST"
    assert sorted(i.text for i in lst.props["object_list"]) == sorted([made[0].href, made[2].href])
    [one] = c.propfind("contacts", {"object_id": made[2].href, "folder_id": f})
    assert one.text("last_name") == "N2"
    [kde] = c.propfind("contacts", {"object_id": made[2].href}, root="multistatus")  # KDE: no folder_id
    assert kde.text("folder_id") == str(f)
    [missing] = c.propfind("contacts", {"object_id": made[1].href, "folder_id": f})
    assert (missing.href, missing.status, missing.description) == ("0", "404", "[1001] Object not found")
    # bob cannot read alice's folder
    [denied] = bob.sync("contacts", f)
    assert denied.status in ("404", "403")
    status, _, _ = c.request("PROPFIND", "/servlet/webdav.contacts",
                             '<D:propfind xmlns:D="DAV:" xmlns:ox="http://www.open-xchange.org"><D:prop>'
                             f"<ox:folder_id>{f}</ox:folder_id></D:prop></D:propfind>")
    assert status == 400  # neither objectmode/lastsync nor object_id


def test_private_appointment_becomes_synthetic_delete(env) -> None:  # type: ignore[no-untyped-def]
    world = env[1]
    alice, bob = client(env), client(env, "bob")
    cal = folder(env, "alice", Module.CALENDAR)
    [perm] = [x for x in alice.sync("folders", None) if x.href == str(cal)]
    [p] = alice.proppatch("folders", {"object_id": cal, "last_modified": perm.text("last_modified"),
                                      "permissions": f'<ox:user ox:folderpermission="128" ox:objectreadpermission="128" '
                                      f'ox:objectwritepermission="128" ox:objectdeletepermission="128" ox:admin_flag="true">{world.alice}</ox:user>'
                                      f'<ox:user ox:folderpermission="2" ox:objectreadpermission="4" ox:objectwritepermission="0" '
                                      f'ox:objectdeletepermission="0" ox:admin_flag="false">{world.bob}</ox:user>'})
    assert p.status == "200", p.description
    [a] = alice.proppatch("calendar", {"folder_id": cal, "title": "Dentist", "start_date": T0, "end_date": T0 + HOUR})
    seen = bob.sync("calendar", cal)
    assert [x.href for x in seen] == [a.href]
    [u] = alice.proppatch("calendar", {"object_id": a.href, "folder_id": cal, "last_modified": a.text("last_modified"),
                                       "private_flag": True})
    assert u.status == "200", u.description
    delta = bob.sync("calendar", cal, int(seen[0].text("last_modified")))
    assert [(x.href, x.text("object_status")) for x in delta] == [(a.href, "DELETE")]
    assert bob.sync("calendar", cal) == []


# ---------------------------------------------------------------- PROPPATCH


def test_several_sets_in_order_and_stale_or_missing_last_modified(env) -> None:  # type: ignore[no-untyped-def]
    c = client(env)
    f = folder(env, "alice", Module.CONTACT)
    results = c.proppatch("contacts", {"folder_id": f, "last_name": "One", "client_id": "c1"},
                          {"folder_id": f, "client_id": "c2"},  # no data is fine: an empty contact
                          {"object_id": 999999, "folder_id": f, "last_modified": 1, "last_name": "x", "client_id": "c3"},
                          {"folder_id": f, "last_name": "Three", "client_id": "c4"})
    assert [r.text("client_id") for r in results] == ["c1", "c2", "c3", "c4"]
    assert [r.code for r in results] == [1200, 1200, 1001, 1200]
    one = results[0]
    stale = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "last_modified": int(one.text("last_modified")) - 1,
                                     "last_name": "Stale"})[0]
    assert (stale.status, stale.code, stale.href) == ("409", 1000, one.href)
    missing = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "last_name": "NoStamp"})[0]
    assert (missing.status, missing.code) == ("409", 1004)
    empty = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "last_modified": None, "last_name": "E"})[0]
    assert empty.code == 1004
    gone = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "method": "DELETE"})[0]
    assert gone.code == 1004
    [still] = c.propfind("contacts", {"object_id": one.href, "folder_id": f})
    assert still.text("last_name") == "One"
    # two saves of one object in one request are chained
    lm = one.text("last_modified")
    first, second = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "last_modified": lm, "nickname": "a"},
                                {"object_id": one.href, "folder_id": f, "last_modified": lm, "suffix": "b"})
    assert first.code == 1200 and second.code == 1200, second.description


def test_stale_requests_that_write_nothing_are_refused(env) -> None:  # type: ignore[no-untyped-def]
    """A save without changes and a CLEAR carry a version too: a stale one is [1000] and changes nothing."""
    c = client(env)
    f = folder(env, "alice", Module.CONTACT)
    [one] = c.proppatch("contacts", {"folder_id": f, "last_name": "One"})
    lm = int(one.text("last_modified"))
    [noop] = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "last_modified": lm})
    assert noop.status == "200", noop.description
    [stale] = c.proppatch("contacts", {"object_id": one.href, "folder_id": f, "last_modified": lm - 1})
    assert (stale.status, stale.code) == ("409", 1000)
    [sub] = c.proppatch("folders", {"folder_id": f, "title": "Sub", "module": "contact"})
    c.proppatch("contacts", {"folder_id": int(sub.href), "last_name": "Kept"})
    sub_ms = int([x for x in c.sync("folders", None) if x.href == sub.href][0].text("last_modified"))
    [refused] = c.proppatch("folders", {"object_id": sub.href, "method": "CLEAR", "last_modified": sub_ms - 1})
    assert (refused.status, refused.code) == ("409", 1000)
    [same] = c.proppatch("folders", {"object_id": sub.href, "last_modified": sub_ms - 1})  # a save without changes
    assert (same.status, same.code) == ("409", 1000)
    assert [x.text("last_name") for x in c.sync("contacts", int(sub.href))] == ["Kept"]


def test_move_confirm_and_clear(env) -> None:  # type: ignore[no-untyped-def]
    world = env[1]
    alice, bob = client(env), client(env, "bob")
    f = folder(env, "alice", Module.CONTACT)
    [sub] = alice.proppatch("folders", {"folder_id": f, "title": "Sub", "module": "contact"})
    [c1] = alice.proppatch("contacts", {"folder_id": f, "last_name": "Mover"})
    [mv] = alice.proppatch("contacts", {"object_id": c1.href, "folder_id": f, "last_modified": c1.text("last_modified"),
                                        "folder": sub.href})
    assert mv.status == "200", mv.description
    assert [x.href for x in alice.sync("contacts", int(sub.href))] == [c1.href]
    [cl] = alice.proppatch("folders", {"object_id": sub.href, "method": "CLEAR",
                                       "last_modified": [x for x in alice.sync("folders", None) if x.href == sub.href][0].text("last_modified")})
    assert cl.status == "200", cl.description
    assert alice.sync("contacts", int(sub.href)) == []
    cal = folder(env, "alice", Module.CALENDAR)
    [m] = alice.proppatch("calendar", {"folder_id": cal, "title": "Meet", "start_date": T0, "end_date": T0 + HOUR,
                                       "participants": f"<ox:user>{world.alice}</ox:user><ox:user>{world.bob}</ox:user>"})
    bob_cal = folder(env, "bob", Module.CALENDAR)
    [ok] = bob.proppatch("calendar", {"method": "CONFIRM", "object_id": m.href, "folder": bob_cal, "confirm": "tentative",
                                      "confirm_message": "maybe"})
    assert ok.status == "200", ok.description
    [seen] = alice.propfind("calendar", {"object_id": m.href, "folder_id": cal})
    confirms = {p.text: p.get(f"{{{OX}}}confirm") for p in seen.props["participants"]}
    assert confirms == {str(world.alice): "accept", str(world.bob): "tentative"}


def test_appointment_conflict_1006_and_ignore(env, store) -> None:  # type: ignore[no-untyped-def]
    world = env[1]
    with store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "beamer", "beamer@example.com")
    alice, bob = client(env), client(env, "bob")
    cal, bob_cal = folder(env, "alice", Module.CALENDAR), folder(env, "bob", Module.CALENDAR)
    [a] = alice.proppatch("calendar", {"folder_id": cal, "title": "Busy", "start_date": T0, "end_date": T0 + HOUR,
                                       "participants": f"<ox:user>{world.alice}</ox:user><ox:resource>{room.id}</ox:resource>"})
    assert a.status == "200"
    [c] = bob.proppatch("calendar", {"folder_id": bob_cal, "title": "Clash", "start_date": T0, "end_date": T0 + HOUR,
                                     "participants": f"<ox:user>{world.bob}</ox:user><ox:user>{world.alice}</ox:user>"})
    assert (c.status, c.code) == ("409", 1006)
    items = c.element.find(".//{DAV:}conflictitems")
    assert items is not None and items[0].text == f"{T0},{T0 + HOUR},false"
    assert bob.sync("calendar", bob_cal) == []  # nothing written
    [ok] = bob.proppatch("calendar", {"folder_id": bob_cal, "title": "Clash", "start_date": T0, "end_date": T0 + HOUR,
                                      "ignore_conflicts": True,
                                      "participants": f"<ox:user>{world.bob}</ox:user><ox:user>{world.alice}</ox:user>"})
    assert ok.status == "200"
    [hard] = bob.proppatch("calendar", {"folder_id": bob_cal, "title": "Room", "start_date": T0, "end_date": T0 + HOUR,
                                        "ignore_conflicts": True, "participants": f"<ox:resource>{room.id}</ox:resource>"})
    assert hard.code == 1006


def test_series_exception_and_occurrence_delete(env) -> None:  # type: ignore[no-untyped-def]
    c = client(env)
    cal = folder(env, "alice", Module.CALENDAR)
    start = T0 + 6 * 86_400_000 + 9 * HOUR  # Monday 2030-01-07 09:00
    [s] = c.proppatch("calendar", {"folder_id": cal, "title": "Standup", "start_date": start, "end_date": start + HOUR,
                                   "recurrence_type": "daily", "interval": 1, "occurrences": 5})
    assert s.text("recurrence_id") == s.href
    day2 = T0 + 7 * 86_400_000
    [x] = c.proppatch("calendar", {"object_id": s.href, "folder_id": cal, "last_modified": s.text("last_modified"),
                                   "recurrence_date_position": day2, "title": "Moved standup",
                                   "start_date": day2 + 14 * HOUR, "end_date": day2 + 15 * HOUR})
    assert x.status == "200", x.description
    assert x.href != s.href and x.text("recurrence_id") == s.href
    [master] = c.propfind("calendar", {"object_id": s.href, "folder_id": cal})
    assert master.text("changeexceptions") == str(day2)
    [exc] = c.propfind("calendar", {"object_id": x.href, "folder_id": cal})
    assert (exc.text("title"), exc.text("recurrence_date_position")) == ("Moved standup", str(day2))
    [d] = c.proppatch("calendar", {"object_id": s.href, "folder_id": cal, "method": "DELETE",
                                   "last_modified": master.text("last_modified"), "recurrence_position": 3})
    assert d.status == "200", d.description
    [master] = c.propfind("calendar", {"object_id": s.href, "folder_id": cal})
    assert master.text("deleteexceptions") == str(T0 + 8 * 86_400_000)
