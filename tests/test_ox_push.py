"""OX UDP push over real loopback UDP: REGISTER/ack, notifications from the change bus with rights,
unverified registrations refused, rate limiting, cross-node changes (reference ox-webdav-xml.md §4)."""

from __future__ import annotations

import pytest

from oxsync.model import Module
from oxsync.ox import install
from oxsync.push.udp import RateLimiter, RecentLogins, parse_register
from tests.oxclient import OX_SERVER, OxClient, UdpClient

PUSH = {"push_coalesce_seconds": 0.0}


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER, ox=PUSH)
    sockets: list[UdpClient] = []

    def udp() -> UdpClient:
        sock = UdpClient(running.service.ox_push.bound_port)
        sockets.append(sock)
        return sock

    yield running, world, udp
    for sock in sockets:
        sock.close()


def test_register_ack_and_notifications_follow_rights(env) -> None:  # type: ignore[no-untyped-def]
    running, world, udp = env
    alice, bob = OxClient(running.port, "alice", "alice-pw"), OxClient(running.port, "bob", "bob-pw")
    alice.propfind("folders", {"lastsync": 0})  # HTTP authentication from 127.0.0.1 makes REGISTER count
    bob.propfind("folders", {"lastsync": 0})
    a_sock, b_sock = udp(), udp()
    assert a_sock.register(world.alice, world.tenant_id) == b"OK\x01"
    assert b_sock.register(world.bob, world.tenant_id) == b"OK\x01"
    contacts = world.default_folder(world.alice, Module.CONTACT)
    [r] = alice.proppatch("contacts", {"folder_id": contacts, "last_name": "Pushed"})
    assert r.status == "200"
    assert a_sock.recv() == f"{contacts}\x01".encode()  # the writer's own client is told too
    assert b_sock.recv(timeout=0.5) is None  # bob cannot read alice's contacts
    [f] = bob.proppatch("folders", {"folder_id": 1, "title": "New", "module": "task"})
    got = {b_sock.recv(), b_sock.recv()}
    assert got == {f"{f.href}\x01".encode(), b"1\x01"}  # a folder change also names its parent
    assert a_sock.recv(timeout=0.5) is None


def test_unverified_registration_gets_nothing(env) -> None:  # type: ignore[no-untyped-def]
    running, world, udp = env
    sock = udp()
    assert sock.register(world.carol, world.tenant_id, timeout=0.5) is None  # carol never authenticated over HTTP
    garbage = udp()
    garbage.sock.sendto(b"1337\x0199\x011\x01", ("127.0.0.1", garbage.port))
    assert garbage.recv(timeout=0.3) is None


def test_cross_node_change_from_the_bus_is_pushed(env) -> None:  # type: ignore[no-untyped-def]
    running, world, udp = env
    OxClient(running.port, "alice", "alice-pw").propfind("folders", {"lastsync": 0})
    sock = udp()
    assert sock.register(world.alice, world.tenant_id) == b"OK\x01"
    cal = world.default_folder(world.alice, Module.CALENDAR)
    running.call(lambda: running.service.bus.publish(world.tenant_id, [cal], 10_000, origin="notify"))
    assert sock.recv() == f"{cal}\x01".encode()


def test_tenant_wide_event_is_resolved_into_the_changed_folders(env, store) -> None:  # type: ignore[no-untyped-def]
    """After a lost bus connection the re-check names no folders: push must still announce the right ones."""
    from oxsync.model import Contact, Task
    from oxsync.store.api import Store

    running, world, udp = env
    OxClient(running.port, "alice", "alice-pw").propfind("folders", {"lastsync": 0})
    sock = udp()
    assert sock.register(world.alice, world.tenant_id) == b"OK\x01"
    contacts = world.default_folder(world.alice, Module.CONTACT)
    tasks = world.default_folder(world.alice, Module.TASK)
    with store.session(world.tenant_id, world.alice, write=True) as session:  # normal traffic, heard on the bus
        session.create_object(tasks, Task(title="Heard"))
    assert sock.recv() == f"{tasks}\x01".encode()
    other_node = Store(store.settings)  # then a write this node's bus never heard of
    with other_node.session(world.tenant_id, world.alice, write=True) as session:
        session.create_object(contacts, Contact(last_name="Missed"))
    with other_node.session(world.tenant_id, world.alice) as session:
        rev, _ = session.revision()
    other_node.dispose()
    running.call(lambda: running.service.bus.publish(world.tenant_id, frozenset(), rev, origin="recheck"))
    assert sock.recv() == f"{contacts}\x01".encode()
    assert sock.recv(timeout=0.5) is None  # only the folder that changed


def test_parse_and_limits() -> None:
    assert parse_register(b"1337\x017\x011\x0117\x0142") == (17, 42)
    assert parse_register(b"1337\x0150\x011\x0117\x0142") is None  # LEN beyond the packet
    assert parse_register(b"1338\x017\x011\x0117\x0142") is None
    assert parse_register(b"1337\x017\x013\x0117\x0142") is None  # not a REGISTER
    clock = [0.0]
    limiter = RateLimiter(3, 2, clock=lambda: clock[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    clock[0] = 61.0
    assert limiter.allow("a")
    logins = RecentLogins(10, 2, clock=lambda: clock[0])
    logins.record(1, 1, "x")
    logins.record(1, 2, "x")
    logins.record(1, 3, "x")  # bounded: the oldest is forgotten
    assert not logins.recent(1, 1, "x") and logins.recent(1, 3, "x") and not logins.recent(1, 3, "y")


def test_rate_limit_drops_excess_packets(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER,
                          ox={**PUSH, "push_max_packets_per_socket_per_minute": 3})
    OxClient(running.port, "alice", "alice-pw").propfind("folders", {"lastsync": 0})
    sock = UdpClient(running.service.ox_push.bound_port)
    try:
        acks = [sock.register(world.alice, world.tenant_id, timeout=0.5) for _ in range(5)]
    finally:
        sock.close()
    assert acks == [b"OK\x01"] * 3 + [None, None]


def test_coalescing_window_is_not_extended_by_later_changes() -> None:
    """A busy tenant must not postpone pushes: the window opens with the first change and stays put."""
    from twisted.internet.task import Clock

    from oxsync.config import Settings, apply_overrides
    from oxsync.push.bus import Change, ChangeBus
    from oxsync.push.udp import Registration, UdpPush

    clock = Clock()
    settings = apply_overrides(Settings(), {"ox": {"push_coalesce_seconds": 0.5}})
    push = UdpPush(settings, None, ChangeBus(), clock, RecentLogins(60, 10))  # type: ignore[arg-type]
    push.registrations[(1, 7, "127.0.0.1", 9)] = Registration(1, 7, "127.0.0.1", 9, 10**9)
    for n in range(5):  # a change every 0.1 s, at t = 0 ... 0.4
        if n:
            clock.advance(0.1)
        push.on_change(Change(1, frozenset({20 + n}), 100 + n))
    [window] = clock.getDelayedCalls()
    assert window.getTime() == 0.5  # opened by the first change, at t=0
    assert push._pending[1] == {20, 21, 22, 23, 24}  # everything joins the same packet batch


def test_a_register_from_another_socket_never_displaces_the_client(env) -> None:  # type: ignore[no-untyped-def]
    """Behind a shared NAT a co-worker's socket (same address, no credentials) registers as alice:
    alice's own client keeps its pushes (docs/ox-push.md says what the protocol cannot protect)."""
    running, world, udp = env
    alice = OxClient(running.port, "alice", "alice-pw")
    alice.propfind("folders", {"lastsync": 0})
    victim, intruder = udp(), udp()
    assert victim.register(world.alice, world.tenant_id) == b"OK\x01"
    intruder.register(world.alice, world.tenant_id)
    contacts = world.default_folder(world.alice, Module.CONTACT)
    [r] = alice.proppatch("contacts", {"folder_id": contacts, "last_name": "Still mine"})
    assert r.status == "200"
    assert victim.recv() == f"{contacts}\x01".encode()


def test_registrations_per_user_are_capped_without_displacing(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER, ox={**PUSH, "push_max_registrations_per_user": 2})
    OxClient(running.port, "alice", "alice-pw").propfind("folders", {"lastsync": 0})
    socks = [UdpClient(running.service.ox_push.bound_port) for _ in range(3)]
    try:
        acks = [s.register(world.alice, world.tenant_id, timeout=0.5) for s in socks]
        assert acks == [b"OK\x01", b"OK\x01", None]  # the third is refused, the first two stay
        assert socks[0].register(world.alice, world.tenant_id) == b"OK\x01"  # a refresh still works
        push = running.service.ox_push
        assert sorted(k[3] for k in push.registrations) == sorted(s.sock.getsockname()[1] for s in socks[:2])
    finally:
        for s in socks:
            s.close()


def test_junk_from_one_socket_does_not_block_another_on_the_same_address(env) -> None:  # type: ignore[no-untyped-def]
    running, world, udp = env
    OxClient(running.port, "alice", "alice-pw").propfind("folders", {"lastsync": 0})
    junk, victim = udp(), udp()
    for n in range(300):
        junk.sock.sendto(b"junk %d" % n, ("127.0.0.1", junk.port))
    assert junk.register(world.alice, world.tenant_id, timeout=0.5) is None  # the junk socket is limited ...
    assert victim.register(world.alice, world.tenant_id) == b"OK\x01"  # ... its neighbour is not
