"""The store pool's two lanes (`runtime.LanedPool`, docs/store.md "The store pool"): a light unit of
store work (device state, Provision, a ctag, a delta) never queues behind heavy ones. Real store, real
threads; the order of execution is counted, threads are held by Events, nothing compares times."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from oxsync.model import Module
from oxsync.runtime import DeferredStore, LanedPool
from oxsync.store.api import Store
from tests.world import World

WAIT = 30  # seconds an Event may take to be set on a loaded machine; never compared


def _pool(store: Store, reactor: Any, heavy: int, light: int) -> DeferredStore:
    """`heavy` threads (`thread_pool_size`) plus `light` ones only light units take."""
    settings = replace(store.settings, store=replace(store.settings.store, light_threads=light))
    pool = DeferredStore(store, reactor, pool_size=heavy, settings=settings)
    pool.start()
    return pool


class Units:
    """Units of real store work that record the order they ran in; `blocker`s hold a thread until released."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.folder = world.default_folder(world.alice, Module.CONTACT)
        self.order: list[str] = []
        """Names in the order their units finished."""
        self.begun: list[str] = []
        """Names in the order their units started."""
        self.started = threading.Semaphore(0)
        self.done = {name: threading.Event() for name in ("light",)}

    def read(self, pool: DeferredStore, name: str, light: bool = False, hold: threading.Event | None = None) -> None:
        finished = self.done.setdefault(name, threading.Event())

        def work(session: Any) -> None:
            self.begun.append(name)
            if hold is not None:
                self.started.release()
                assert hold.wait(WAIT)
            session.get_folder(self.folder)  # a real read in the unit's transaction
            self.order.append(name)
            finished.set()

        pool.read(self.world.tenant_id, self.world.alice, work, light)

    def wait(self, *names: str) -> None:
        for name in names:
            assert self.done[name].wait(WAIT), name


def test_light_unit_runs_on_its_own_thread_while_heavy_ones_queue(store: Store, world: World, reactor) -> None:  # type: ignore[no-untyped-def]
    pool = _pool(store, reactor, heavy=2, light=1)
    units, release = Units(world), threading.Event()
    try:
        for i in range(2):  # the two threads heavy units may use, held
            units.read(pool, f"blocker{i}", hold=release)
        for _ in range(2):
            assert units.started.acquire(timeout=WAIT)
        heavy = [f"heavy{i}" for i in range(5)]
        for name in heavy:  # held too: one that took the light thread would keep the light unit out
            units.read(pool, name, hold=release)
        units.read(pool, "light", light=True)
        units.wait("light")
        assert units.order == ["light"]  # ran while 5 heavy units submitted before it still wait
        assert pool.pool.queued() == (0, 5)
        release.set()
        units.wait("blocker0", "blocker1", *heavy)
        # taken in order, but two heavy threads open their transactions concurrently: no order asserted
        assert sorted(n for n in units.begun if n.startswith("heavy")) == heavy
    finally:
        release.set()
        pool.stop()


def test_a_freed_thread_takes_the_light_unit_before_older_heavy_ones(store: Store, world: World, reactor) -> None:  # type: ignore[no-untyped-def]
    pool = _pool(store, reactor, heavy=2, light=0)  # no added thread: priority alone
    units = Units(world)
    holds = [threading.Event(), threading.Event()]
    try:
        for i, hold in enumerate(holds):
            units.read(pool, f"blocker{i}", hold=hold)
        for _ in holds:
            assert units.started.acquire(timeout=WAIT)
        heavy = [f"heavy{i}" for i in range(4)]
        for name in heavy:
            units.read(pool, name)
        units.read(pool, "light", light=True)
        assert pool.pool.queued() == (1, 4)
        holds[0].set()  # one thread comes free
        units.wait("light", *heavy)
        assert units.order[:2] == ["blocker0", "light"]
        holds[1].set()
    finally:
        for hold in holds:
            hold.set()
        pool.stop()


def test_heavy_units_keep_one_thread_and_the_pool_never_exceeds_its_size() -> None:
    """Bounds of the settings: heavy units keep at least one thread; no more threads than `size` run
    units at once (counted with a barrier of held units)."""
    assert LanedPool(1, 1, "t").heavy_limit == 1
    assert LanedPool(10, 2, "t").heavy_limit == 8
    assert LanedPool(4, 0, "t").heavy_limit == 4
    lanes = LanedPool(3, 1, "t")
    lanes.start()
    running, peak, lock, release = [0], [0], threading.Lock(), threading.Event()
    finished = threading.Semaphore(0)

    def unit() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(WAIT)
        with lock:
            running[0] -= 1
        finished.release()

    try:
        for i in range(10):
            lanes.submit(unit, light=i % 2 == 0)
        release.set()
        for _ in range(10):
            assert finished.acquire(timeout=WAIT)
        assert 1 <= peak[0] <= 3 and lanes.queued() == (0, 0)
    finally:
        release.set()
        lanes.stop()


def test_a_background_unit_waits_for_every_queued_heavy_one_and_runs_alone() -> None:
    """Two heavy threads (one held busy): a background unit queued before two heavy ones runs after
    both, and of two background units one runs at a time (both threads are free by then)."""
    lanes = LanedPool(3, 1, "t")
    lanes.start()
    order: list[str] = []
    lock, hold, finished = threading.Lock(), threading.Event(), threading.Semaphore(0)
    both_background = [0, 0]

    def unit(name: str, wait: threading.Event | None = None) -> Any:
        def run() -> None:
            if wait is not None:
                wait.wait(WAIT)
            with lock:
                order.append(name)
                if name.startswith("background"):
                    both_background[0] += 1
                    both_background[1] = max(both_background[1], both_background[0])
            if name.startswith("background"):
                hold_background.wait(0.2)  # long enough for a second one to start if it could
                with lock:
                    both_background[0] -= 1
            finished.release()
        return run

    hold_background = threading.Event()
    try:
        lanes.submit(unit("blocker", hold))
        lanes.submit(unit("blocker2", hold))
        lanes.submit(unit("background1"), background=True)
        lanes.submit(unit("background2"), background=True)
        lanes.submit(unit("heavy1"))
        lanes.submit(unit("light"), light=True)
        assert finished.acquire(timeout=WAIT)  # the light unit, on the light thread
        assert order == ["light"]
        hold.set()
        for _ in range(5):
            assert finished.acquire(timeout=WAIT)
        assert order.index("heavy1") < order.index("background1") < order.index("background2")
        assert both_background[1] == 1 and lanes.queued() == (0, 0)
    finally:
        hold.set()
        hold_background.set()
        lanes.stop()


@pytest.mark.parametrize("method,depth,light", [
    ("PROPFIND", "0", True), ("PROPFIND", "1", False), ("PROPFIND", "", False), ("GET", "", True),
    ("REPORT", "0", False), ("PUT", "", False),
])
def test_dav_requests_classified(method: str, depth: str, light: bool) -> None:
    from oxsync.dav.resource import is_light

    assert is_light(method, {"depth": depth} if depth else {}) is light


def test_light_threads_are_added_to_the_heavy_ones_and_to_the_connection_pool(store: Store, reactor) -> None:  # type: ignore[no-untyped-def]
    """`thread_pool_size` heavy threads as before the lanes, `light_threads` more; the engine holds a
    connection for each thread."""
    pool = _pool(store, reactor, heavy=8, light=2)
    assert (pool.pool.size, pool.pool.heavy_limit) == (10, 8)
    from oxsync.store.engine import make_engine

    engine = make_engine(replace(store.settings.store, thread_pool_size=8, light_threads=2))
    try:
        assert engine.pool.size() == 10  # type: ignore[attr-defined]
    finally:
        engine.dispose()
