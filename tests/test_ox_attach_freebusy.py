"""OX attachments (headers, size cap, quota) and the unauthenticated free/busy servlet (reference §2.7, §3)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from oxsync.model import Module
from oxsync.ox import install
from oxsync.store import accounts
from tests.oxclient import OX_SERVER, OxClient, parse_multistatus

T0 = 1_893_456_000_000  # 2030-01-01
HOUR = 3_600_000


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    with store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room1", "room1@example.com")
    running = live_server(store, setup=install, server=OX_SERVER, limits={"max_attachment_bytes": 4096})
    return running, world, room.id


def test_attachment_put_get_delete_and_listing(env, store) -> None:  # type: ignore[no-untyped-def]
    running, world, _ = env
    c = OxClient(running.port, "alice", "alice-pw")
    folder = world.default_folder(world.alice, Module.CONTACT)
    [obj] = c.proppatch("contacts", {"folder_id": folder, "last_name": "WithFile"})
    headers = {"module": "7", "target_id": obj.href, "target_folder_id": str(folder), "filename": quote("Rapport é.txt"),
               "Content-Type": "text/plain", "client_id": "att-1"}
    usage_before = store.usage(world.tenant_id)["users"][0]["usage_bytes"]
    status, _, body = c.request("PUT", "/servlet/webdav.attachments", b"hello attachment", headers)
    assert status == 207
    [r] = parse_multistatus(body)
    assert (r.status, r.description, r.text("client_id")) == ("200", "[1200] OK", "att-1")
    att = r.text("object_id")
    assert store.usage(world.tenant_id)["users"][0]["usage_bytes"] == usage_before + len(b"hello attachment")
    [seen] = c.propfind("contacts", {"object_id": obj.href, "folder_id": folder})
    [listed] = list(seen.props["attachments"])
    assert listed.text == quote("Rapport é.txt") and listed.get("{http://www.open-xchange.org}mimetype") == "text/plain"
    assert int(seen.text("last_modified")) > int(obj.text("last_modified"))  # attaching touches the parent
    get_headers = {k: v for k, v in headers.items() if k in ("module", "target_id", "target_folder_id")} | {"object_id": att}
    status, h, data = c.request("GET", "/servlet/webdav.attachments", None, get_headers)
    assert (status, data, h["content-type"]) == (200, b"hello attachment", "text/plain")
    status, _, _ = c.request("PUT", "/servlet/webdav.attachments", b"x" * 5000, headers)
    assert status == 413  # over limits.max_attachment_bytes
    status, _, _ = c.request("GET", "/servlet/webdav.attachments", None, {**get_headers, "object_id": "abc"})
    assert status == 409
    bob = OxClient(running.port, "bob", "bob-pw")
    status, _, _ = bob.request("GET", "/servlet/webdav.attachments", None, get_headers)
    assert status in (403, 404)
    status, _, _ = c.request("DELETE", "/servlet/webdav.attachments", None, get_headers)
    assert status == 200
    status, _, _ = c.request("GET", "/servlet/webdav.attachments", None, get_headers)
    assert status == 404
    assert store.usage(world.tenant_id)["users"][0]["usage_bytes"] == usage_before


def _freebusy(running, query: str) -> tuple[int, dict[str, str], str]:  # type: ignore[no-untyped-def]
    status, headers, body = OxClient(running.port, "", "").request("GET", f"/servlet/webdav.freebusy?{query}")
    return status, headers, body.decode()


def test_freebusy_user_resource_private_and_mapping(env, live_server, store) -> None:  # type: ignore[no-untyped-def]
    running, world, room = env
    c = OxClient(running.port, "alice", "alice-pw")
    cal = world.default_folder(world.alice, Module.CALENDAR)
    items = [("Secret", 1, True), ("Maybe", 2, False), ("Away", 3, False), ("Free", 4, False)]
    for n, (title, shown_as, private) in enumerate(items):
        start = T0 + n * 2 * HOUR
        parts = f"<ox:user>{world.alice}</ox:user>" + (f"<ox:resource>{room}</ox:resource>" if n == 0 else "")
        [r] = c.proppatch("calendar", {"folder_id": cal, "title": title, "start_date": start, "end_date": start + HOUR,
                                       "shown_as": shown_as, "private_flag": private, "participants": parts})
        assert r.status == "200", r.description
    status, headers, text = _freebusy(running, "username=alice&server=example.com&start=20300101&end=20300102")
    assert status == 200 and headers["content-type"].startswith("text/calendar")
    lines = text.split("\r\n")
    assert "BEGIN:VFREEBUSY" in lines and "METHOD:PUBLISH" in lines and "DTSTART:20300101T000000Z" in lines
    assert "FREEBUSY;FBTYPE=BUSY:20300101T000000Z/20300101T010000Z" in lines
    assert "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20300101T020000Z/20300101T030000Z" in lines
    assert "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20300101T040000Z/20300101T050000Z" in lines
    assert "FREEBUSY;FBTYPE=FREE:20300101T060000Z/20300101T070000Z" in lines
    assert "Secret" not in text and "Maybe" not in text
    status, _, rtext = _freebusy(running, "username=room1&server=example.com&contextid=1&start=20300101&end=20300102")
    assert status == 200 and "FREEBUSY;FBTYPE=BUSY:20300101T000000Z/20300101T010000Z" in rtext.split("\r\n")
    status, _, simple = _freebusy(running, "userName=alice&server=example.com&start=20300101&end=20300102&simple=true")
    assert "FREEBUSY:20300101T000000Z/20300101T010000Z" in simple and "FBTYPE" not in simple
    assert _freebusy(running, "username=nobody&server=example.com")[0] == 404
    assert _freebusy(running, "username=alice&server=other.org")[0] == 404
    assert _freebusy(running, "username=alice&server=example.com&start=2030")[0] == 400
    assert _freebusy(running, "server=example.com")[0] == 400
    compat = live_server(store, setup=install, server=OX_SERVER, ox={"freebusy_fbtype_mapping": "ox-compat"})
    _, _, old = _freebusy(compat, "username=alice&server=example.com&period=1")
    assert "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20300101T000000Z" not in old  # period=1 is around now, not 2030
    _, _, old = _freebusy(compat, "username=alice&server=example.com&start=20300101&end=20300102")
    assert "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20300101T000000Z/20300101T010000Z" in old.split("\r\n")
    assert "FREEBUSY;FBTYPE=BUSY:20300101T040000Z/20300101T050000Z" in old.split("\r\n")
