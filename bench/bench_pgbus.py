"""Cross-node bus latency: commit on node A -> publish on node B's ChangeBus, over PostgreSQL NOTIFY.

Two nodes (two Stores, AsyncStores, buses and PgBusServices) in one process, so one clock measures
both ends: t0 is taken by a store listener on A right after COMMIT returns, t1 by a bus subscriber on
B's reactor thread. "serial" waits for each change to arrive before the next commit (pure latency);
"burst" lets 4 writer threads commit as fast as they can (latency under load).

Usage: python bench/bench_pgbus.py [commits] [postgresql-url]
Without a URL it starts a throwaway cluster (needs PostgreSQL server binaries, like the tests).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.threads import blockingCallFromThread  # noqa: E402

from oxsync.config import Settings, StoreSettings  # noqa: E402
from oxsync.model import Contact, Module  # noqa: E402
from oxsync.push.bus import Change, ChangeBus  # noqa: E402
from oxsync.push.pgbus import PgBusService  # noqa: E402
from oxsync.runtime import DeferredStore  # noqa: E402
from oxsync.store import accounts  # noqa: E402
from oxsync.store import folders as folder_ops  # noqa: E402
from oxsync.store.api import Store  # noqa: E402


class Clock:
    """Commit times on A and arrival times on B, keyed by (tenant, revision)."""

    def __init__(self) -> None:
        self.committed: dict[int, float] = {}
        self.arrived: dict[int, float] = {}
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)

    def on_commit(self, tenant_id: int, folders: frozenset[int], revision: int) -> None:
        self.committed[revision] = time.perf_counter()

    def on_change(self, change: Change) -> None:
        if change.origin == "remote":
            now = time.perf_counter()
            with self.cond:
                self.arrived.setdefault(change.revision, now)
                self.cond.notify_all()

    def wait_for(self, revision: int, seconds: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: revision in self.arrived, seconds)


def start_node(url: str, reactor: Any) -> tuple[Store, ChangeBus, DeferredStore, PgBusService]:
    store = Store(Settings(store=StoreSettings(url=url, thread_pool_size=8)))
    store.create_schema()
    bus = ChangeBus()
    async_store = DeferredStore(store, reactor, bus=bus)
    service = PgBusService(store, bus, reactor)

    def go() -> None:
        async_store.start()
        service.startService()

    blockingCallFromThread(reactor, go)
    deadline = time.monotonic() + 10
    while not service.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    return store, bus, async_store, service


def write(store: Store, tenant_id: int, user_id: int, folder: int, n: int) -> None:
    with store.session(tenant_id, user_id, write=True) as session:
        session.create_object(folder, Contact(last_name=f"Bench{n}"))


def report(label: str, clock: Clock, revisions: list[int]) -> None:
    lat = sorted((clock.arrived[r] - clock.committed[r]) * 1000 for r in revisions if r in clock.arrived)
    lost = len(revisions) - len(lat)
    p = statistics.quantiles(lat, n=100)
    print(f"{label:>7} {len(lat):>7} {lost:>5} {statistics.median(lat):>8.2f} {p[98]:>8.2f} {lat[-1]:>8.2f}")


def run(url: str, commits: int) -> None:
    from twisted.internet import reactor

    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    store_a, _, async_a, service_a = start_node(url, reactor)
    store_b, bus_b, async_b, service_b = start_node(url, reactor)
    tenant = store_a.create_tenant("bench.example")
    with store_a.transaction(tenant.id, write=True) as tx:
        users = [accounts.create_user(tx, f"bench{i}", "pw").id for i in range(4)]
    with store_a.transaction(tenant.id) as tx:
        folders = [folder_ops.default_folder_id(tx, u, Module.CONTACT) for u in users]
    clock = Clock()
    store_a.add_listener(clock.on_commit)
    blockingCallFromThread(reactor, bus_b.subscribe, clock.on_change)

    print(f"{'mode':>7} {'commits':>7} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    serial = []
    for n in range(commits):
        write(store_a, tenant.id, users[0], folders[0], n)
        rev = max(clock.committed)
        clock.wait_for(rev)
        serial.append(rev)
    report("serial", clock, serial)

    before = set(clock.committed)

    def writer(i: int) -> None:
        for n in range(commits // 4):
            write(store_a, tenant.id, users[i], folders[i], n)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    burst = sorted(set(clock.committed) - before)
    clock.wait_for(burst[-1])
    report("burst", clock, burst)

    def stop() -> Any:
        async_a.stop()
        async_b.stop()
        service_a.stopService()
        return service_b.stopService()

    blockingCallFromThread(reactor, stop)
    store_a.dispose()
    store_b.dispose()
    reactor.callFromThread(reactor.stop)
    thread.join(5)


def main(argv: list[str]) -> None:
    commits = int(argv[0]) if argv else 500
    if len(argv) > 1:
        run(argv[1], commits)
        return
    from tests.pgcluster import PgCluster, PostgresUnavailable

    try:
        cluster = PgCluster()
        cluster.start()
    except PostgresUnavailable as e:
        print(f"bench_pgbus skipped: {e}")
        return
    try:
        run(cluster.new_database(), commits)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
