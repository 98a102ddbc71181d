"""Cross-node change bus: two nodes (two Stores, buses and LISTEN threads) on one real PostgreSQL.

Node B connects as its own role, so the reconnect test can keep B out (NOLOGIN) while node A writes,
which makes "B missed a notice" deterministic instead of a race against B's backoff.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import blockingCallFromThread

from oxsync.model import Contact, Module
from oxsync.push.bus import Change, ChangeBus
from oxsync.push.pgbus import PgBusService, install_pgbus
from oxsync.runtime import DeferredStore
from oxsync.store import notify
from oxsync.store.api import Store
from tests.fixtures import make_store
from tests.live import wait_until
from tests.pgcluster import PgCluster
from tests.world import World, build_world


@dataclass
class Node:
    store: Store
    bus: ChangeBus
    async_store: DeferredStore
    service: PgBusService
    events: list[Change] = field(default_factory=list)
    """Everything published on this node's bus, appended on the reactor thread."""

    def heard(self, origin: str) -> list[Change]:
        return [e for e in list(self.events) if e.origin == origin]


def admin(cluster: PgCluster, sql: str) -> None:
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def two_nodes(pg_cluster: PgCluster, reactor) -> Iterator[tuple[Node, Node, World, str]]:  # type: ignore[no-untyped-def]
    url_a = pg_cluster.new_database()
    role_b = f"node_b_{uuid.uuid4().hex[:8]}"
    admin(pg_cluster, f"CREATE ROLE {role_b} SUPERUSER LOGIN")
    url_b = url_a.replace("postgres@", f"{role_b}@", 1)
    store_a = make_store(url_a)
    store_b = make_store(url_b)
    world = build_world(store_a)
    nodes = []
    for st in (store_a, store_b):
        bus = ChangeBus()
        node = Node(st, bus, DeferredStore(st, reactor, bus=bus), PgBusService(st, bus, reactor))
        blockingCallFromThread(reactor, _start, node)
        nodes.append(node)
    a, b = nodes
    assert wait_until(lambda: a.service.connected and b.service.connected)
    yield a, b, world, role_b
    blockingCallFromThread(reactor, _stop, nodes)
    for node in nodes:
        node.store.dispose()


def _start(node: Node) -> None:
    node.bus.subscribe(node.events.append)
    node.async_store.start()
    node.service.startService()


def _stop(nodes: list[Node]) -> Deferred[list[None]]:
    for node in nodes:
        node.async_store.stop()
    return gatherResults([node.service.stopService() for node in nodes])


def write_contact(world: World, store: Store, user: int, name: str) -> None:
    folder = world.default_folder(user, Module.CONTACT)
    with store.session(world.tenant_id, user, write=True) as session:
        session.create_object(folder, Contact(last_name=name))


def local_commit(node: Node, index: int = -1) -> Change:
    assert wait_until(lambda: len(node.heard("local")) > (index if index >= 0 else 0))
    return node.heard("local")[index]


def remote_at(node: Node, revision: int) -> list[Change]:
    return [e for e in node.heard("remote") if e.revision == revision]


def test_write_on_a_reaches_b(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, world, _ = two_nodes
    write_contact(world, a.store, world.alice, "Across")
    committed = local_commit(a)
    assert committed.folder_ids == frozenset({world.default_folder(world.alice, Module.CONTACT)})
    assert wait_until(lambda: remote_at(b, committed.revision))
    assert remote_at(b, committed.revision) == [
        Change(world.tenant_id, committed.folder_ids, committed.revision, origin="remote")
    ]
    assert b.heard("local") == []


def test_a_node_does_not_hear_its_own_change_again(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, world, _ = two_nodes
    write_contact(world, a.store, world.alice, "Mine")
    mine = local_commit(a)
    write_contact(world, b.store, world.bob, "Theirs")
    theirs = local_commit(b)
    assert theirs.revision > mine.revision
    # A's LISTEN connection receives both notices in commit order: once B's has arrived, A's own was
    # already read (and must have been skipped).
    assert wait_until(lambda: remote_at(a, theirs.revision))
    assert [e for e in a.events if e.revision == mine.revision] == [mine]
    assert len(remote_at(a, theirs.revision)) == 1


def test_reconnect_rechecks_what_was_missed(two_nodes, pg_cluster) -> None:  # type: ignore[no-untyped-def]
    a, b, world, role_b = two_nodes
    failed_before = b.service.failed_connections
    admin(pg_cluster, f"ALTER ROLE {role_b} NOLOGIN")
    admin(pg_cluster, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE application_name = 'oxsync-bus-{b.service.node_id}'")
    assert wait_until(lambda: b.service.failed_connections > failed_before), "B should be locked out"
    write_contact(world, a.store, world.alice, "While B was away")
    missed = local_commit(a)
    admin(pg_cluster, f"ALTER ROLE {role_b} LOGIN")

    def rechecked() -> list[Change]:
        return [e for e in b.heard("recheck") if e.tenant_id == world.tenant_id]

    assert wait_until(rechecked)
    assert rechecked() == [Change(world.tenant_id, frozenset(), missed.revision, origin="recheck")]
    assert remote_at(b, missed.revision) == []
    assert b.service.connections == 2 and b.service.connected
    write_contact(world, a.store, world.alice, "After B is back")
    after = local_commit(a, 1)
    assert wait_until(lambda: remote_at(b, after.revision))


def test_rolled_back_write_sends_nothing(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, world, _ = two_nodes
    bobs = world.default_folder(world.bob, Module.CONTACT)
    with pytest.raises(RuntimeError), a.store.session(world.tenant_id, world.bob, write=True) as session:
        session.create_object(bobs, Contact(last_name="never"))
        raise RuntimeError("abort")
    write_contact(world, a.store, world.alice, "kept")
    kept = local_commit(a)
    assert wait_until(lambda: remote_at(b, kept.revision))
    assert b.heard("remote") == [Change(world.tenant_id, kept.folder_ids, kept.revision, origin="remote")]
    assert bobs not in kept.folder_ids and a.heard("local") == [kept]


def test_oversized_folder_set_degrades_to_tenant_wide(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, world, _ = two_nodes
    many = range(1_000_000, 1_001_200)  # 1200 eight-byte ids: more than a NOTIFY payload may carry
    with a.store.transaction(world.tenant_id, write=True) as tx:
        for folder in many:
            tx.record_object_change(folder, 1, gone=True, kind="delete")
    committed = local_commit(a)
    assert committed.folder_ids == frozenset(many)
    assert wait_until(lambda: remote_at(b, committed.revision))
    assert remote_at(b, committed.revision) == [Change(world.tenant_id, frozenset(), committed.revision, "remote")]


def test_payload_round_trip_and_garbage() -> None:
    payload = notify.encode("abc123", 7, 42, frozenset({3, 1, 2}))
    assert payload == "1 abc123 7 42 1,2,3"
    assert notify.decode(payload) == notify.Notice("abc123", 7, 42, frozenset({1, 2, 3}))
    big = notify.encode("abc123", 7, 43, frozenset(range(10_000)))
    assert big.endswith(" *") and notify.decode(big) == notify.Notice("abc123", 7, 43, frozenset())
    for garbage in ("", "hello", "2 abc 1 2 3", "1 ABC! 1 2 3", "1 abc x 2 3", "1 abc 1 2 3,,4"):
        assert notify.decode(garbage) is None


def test_install_pgbus_only_on_postgresql(tmp_path, pg_cluster) -> None:  # type: ignore[no-untyped-def]
    from oxsync.server import make_service

    lite = make_store(f"sqlite:///{tmp_path}/lite.db")
    pg = make_store(pg_cluster.new_database())
    try:
        services = {}
        for name, st in (("sqlite", lite), ("postgresql", pg)):
            service = make_service(st.settings, st, reactor=object())
            install_pgbus(service)
            services[name] = {s.name: s for s in service}
        assert "pgbus" not in services["sqlite"]
        bus_service = services["postgresql"]["pgbus"]
        # idempotent per store (a CLI process calls it on its own Store); one node id per store
        assert notify.install_notifier(pg) == bus_service.node_id
        with pytest.raises(ValueError):
            notify.install_notifier(pg, "someotherid")
    finally:
        lite.dispose()
        pg.dispose()
