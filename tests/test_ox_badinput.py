"""Bad input to the OX dialect (anchors §3.3): each case gets its documented error, writes nothing,
and the server keeps serving."""

from __future__ import annotations

import pytest

from oxsync.config import LimitSettings
from oxsync.model import Module
from oxsync.ox import install
from oxsync.web.xmlsafe import XmlRejected, parse
from tests.oxclient import NS, OX_SERVER, OxClient, parse_multistatus

PATCH = "/servlet/webdav.contacts"


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER, limits={"max_xml_depth": 20, "max_xml_elements": 500})
    alice = OxClient(running.port, "alice", "alice-pw")
    folder = world.default_folder(world.alice, Module.CONTACT)
    return running, world, alice, folder


def _patch(c: OxClient, body: str) -> list:  # type: ignore[type-arg]
    status, _, raw = c.request("PROPPATCH", PATCH, body)
    assert status == 207, (status, raw[:200])
    return parse_multistatus(raw)


def _nothing_written_and_alive(c: OxClient, folder: int) -> None:
    assert c.sync("contacts", folder) == []
    [r] = c.proppatch("contacts", {"folder_id": folder, "last_name": "Alive"})
    assert r.status == "200"
    [gone] = c.proppatch("contacts", {"object_id": r.href, "folder_id": folder, "method": "DELETE",
                                      "last_modified": r.text("last_modified")})
    assert gone.status == "200"


BAD_BODIES = {
    "doctype": f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><D:propertyupdate {NS}><D:set><D:prop>'
               "<ox:folder_id>{folder}</ox:folder_id><ox:last_name>&e;</ox:last_name></D:prop></D:set></D:propertyupdate>",
    "external_entity": f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><D:propertyupdate {NS}>'
                       "<D:set><D:prop><ox:folder_id>{folder}</ox:folder_id><ox:last_name>&e;</ox:last_name></D:prop></D:set>"
                       "</D:propertyupdate>",
    "malformed": f"<D:propertyupdate {NS}><D:set><D:prop><ox:folder_id>{{folder}}</ox:folder_id>",
    "too_deep": f"<D:propertyupdate {NS}><D:set><D:prop><ox:folder_id>{{folder}}</ox:folder_id>"
                + "<ox:note>" + "<a>" * 30 + "</a>" * 30 + "</ox:note></D:prop></D:set></D:propertyupdate>",
    "too_many": f"<D:propertyupdate {NS}><D:set><D:prop><ox:folder_id>{{folder}}</ox:folder_id>"
                + "<ox:x/>" * 600 + "</D:prop></D:set></D:propertyupdate>",
    "wrong_root": f"<D:propfind {NS}><D:set><D:prop><ox:folder_id>{{folder}}</ox:folder_id><ox:last_name>x</ox:last_name>"
                  "</D:prop></D:set></D:propfind>",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_xml_is_1400_and_nothing_written(env, case: str) -> None:  # type: ignore[no-untyped-def]
    _, _, c, folder = env
    [r] = _patch(c, BAD_BODIES[case].replace("{folder}", str(folder)))
    assert (r.href, r.status, r.code) == ("0", "400", 1400)
    _nothing_written_and_alive(c, folder)


def test_propfind_bad_forms(env) -> None:  # type: ignore[no-untyped-def]
    _, _, c, folder = env
    cases = [
        (f'<D:propfind {NS}><D:prop><ox:folder_id>{folder}</ox:folder_id><ox:objectmode>EVERYTHING</ox:objectmode>'
         "</D:prop></D:propfind>", 409),
        (f"<D:propfind {NS}><D:prop><ox:folder_id>abc</ox:folder_id><ox:lastsync>0</ox:lastsync></D:prop></D:propfind>", 409),
        (f"<D:propfind {NS}><D:prop><ox:object_id>1x</ox:object_id></D:prop></D:propfind>", 409),
        (f'<!DOCTYPE a [<!ENTITY b "c">]><D:propfind {NS}><D:prop><ox:lastsync>0</ox:lastsync></D:prop></D:propfind>', 400),
        (f"<D:foo {NS}><D:prop><ox:lastsync>0</ox:lastsync></D:prop></D:foo>", 400),
        ("", 400),
    ]
    for body, expected in cases:
        status, _, raw = c.request("PROPFIND", "/servlet/webdav.contacts", body)
        assert status == expected, (body, status, raw)
    assert c.sync("contacts", folder) == []


def test_bad_values_in_proppatch(env) -> None:  # type: ignore[no-untyped-def]
    _, world, c, folder = env
    bob_folder = world.default_folder(world.bob, Module.CONTACT)
    [foreign] = c.proppatch("contacts", {"folder_id": bob_folder, "last_name": "Intruder"})
    assert (foreign.status, foreign.code) == ("404", 1001)  # a folder the caller cannot see does not exist for them
    [cal] = c.proppatch("contacts", {"folder_id": world.default_folder(world.alice, Module.CALENDAR), "last_name": "x"})
    assert cal.code == 1003  # a contact into a calendar folder
    [nonnum] = c.proppatch("contacts", {"object_id": "12ab", "folder_id": folder, "last_modified": 1, "last_name": "x"})
    assert (nonnum.status, nonnum.code) == ("409", 1003)
    [badfolder] = c.proppatch("contacts", {"folder_id": "x1", "last_name": "x"})
    assert badfolder.code == 1003
    [method] = c.proppatch("contacts", {"object_id": 1, "folder_id": folder, "method": "EXPLODE", "last_modified": 1})
    assert method.code in (1003, 1001)
    [date] = c.proppatch("contacts", {"folder_id": folder, "last_name": "x", "birthday": "yesterday"})
    assert date.code == 1100
    [part] = c.proppatch("calendar", {"folder_id": world.default_folder(world.alice, Module.CALENDAR), "title": "x",
                                      "start_date": 0, "end_date": 3_600_000, "participants": "<ox:robot>1</ox:robot>"})
    assert part.code == 1100
    _nothing_written_and_alive(c, folder)
    assert c.sync("calendar", world.default_folder(world.alice, Module.CALENDAR)) == []


def test_xmlsafe_api() -> None:
    limits = LimitSettings(max_xml_depth=3, max_xml_elements=5)
    assert parse(b"<a><b/></a>", limits).tag == "a"
    for body in (b"", b"<a>", b"<!DOCTYPE a><a/>", b"<a><b><c><d/></c></b></a>", b"<a>" + b"<b/>" * 5 + b"</a>",
                 '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>'.encode("utf-16")):
        with pytest.raises(XmlRejected):
            parse(body, limits)
