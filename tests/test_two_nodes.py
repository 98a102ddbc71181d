"""Two oxsync nodes on one PostgreSQL, in one process but sharing nothing except the database: a change
made through node A wakes an ActiveSync Ping held on node B, and a UDP-registered Outlook client of node B
gets a push for it. The Outlook client's HTTP login may even have happened on node A (load balancer)."""

from __future__ import annotations

import threading
import time

import pytest

from oxsync.dialects import install_all
from oxsync.eas.wbxml import E
from oxsync.model import Module
from tests.davhelp import Dav, event
from tests.eas_client import client
from tests.fixtures import make_store
from tests.oxclient import OxClient, UdpClient

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@pytest.fixture
def nodes(live_server, store, store_url, world):  # type: ignore[no-untyped-def]
    other_store = make_store(store_url)  # node B: its own Store, engine, bus and LISTEN connection
    a = live_server(store, setup=install_all, ox={"push_coalesce_seconds": 0.0}, eas={"min_heartbeat_seconds": 1})
    b = live_server(other_store, setup=install_all, ox={"push_coalesce_seconds": 0.0}, eas={"min_heartbeat_seconds": 1})
    wait_listening(a)
    wait_listening(b)
    yield a, b, world
    other_store.dispose()


def wait_listening(node) -> None:  # type: ignore[no-untyped-def]
    """The PostgreSQL bus connects in the background; wait until it LISTENs."""
    deadline = time.monotonic() + 10
    service = node.service.getServiceNamed("pgbus")
    while time.monotonic() < deadline:
        if service.connected:
            return
        time.sleep(0.05)
    raise AssertionError("the PostgreSQL bus never connected")


def test_change_through_node_a_wakes_a_ping_held_on_node_b(nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, world = nodes
    phone = client(b)  # the phone talks to node B only
    phone.provision()
    phone.folder_sync()
    calendar = str(world.default_folder(world.alice, Module.CALENDAR))
    phone.sync(calendar, "0")
    phone.sync(calendar)
    body = E("Ping:Ping", E("Ping:HeartbeatInterval", "600"),
             E("Ping:Folders", E("Ping:Folder", E("Ping:Id", calendar), E("Ping:Class", "Calendar"))))
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("reply", phone.post("Ping", body)))
    thread.start()
    deadline = time.monotonic() + 10
    while not len(b.service.eas.parked) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(b.service.eas.parked) == 1 and len(a.service.eas.parked) == 0
    dav = Dav(a.port, world)  # the change goes through node A, over CalDAV
    assert dav.put(dav.calendar() + "x.ics", event("two-nodes-1", "Across nodes", "20270401T090000Z",
                                                   "20270401T100000Z")).status == 201
    thread.join(30)
    reply = result["reply"]
    assert reply.text("Ping:Status") == "2"
    assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [calendar]


def test_udp_client_of_node_b_is_pushed_a_change_made_through_node_a(nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, world = nodes
    OxClient(a.port, "alice", "alice-pw").propfind("folders", {"lastsync": 0})  # HTTP login lands on node A
    deadline = time.monotonic() + 10  # node A shares the login through the database, asynchronously
    while not a.service.async_store.store.recent_push_login(world.tenant_id, world.alice, "127.0.0.1", 60):
        assert time.monotonic() < deadline, "node A never recorded the login"
        time.sleep(0.02)
    udp = UdpClient(b.service.ox_push.bound_port)  # ... and the UDP REGISTER on node B
    try:
        assert udp.register(world.alice, world.tenant_id) == b"OK\x01"  # B found A's login in the database
        contacts = world.default_folder(world.alice, Module.CONTACT)
        [saved] = OxClient(a.port, "alice", "alice-pw").proppatch("contacts", {"folder_id": contacts, "last_name": "Far"})
        assert saved.status == "200"
        assert udp.recv() == f"{contacts}\x01".encode()
        stranger = UdpClient(b.service.ox_push.bound_port)
        try:  # carol never logged in anywhere: no answer
            assert stranger.register(world.carol, world.tenant_id, timeout=0.5) is None
        finally:
            stranger.close()
    finally:
        udp.close()
