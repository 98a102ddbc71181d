"""The reactor-side face of the synchronous store: a dedicated thread pool and the change bus hop.

The store is synchronous SQLAlchemy; calling it on the reactor thread would stall every connection.
`DeferredStore` runs each unit of work (one function, one transaction) on its own `ThreadPool`, sized
like the engine's connection pool, and hands the result back as a Deferred that fires on the reactor
thread. Store change listeners run on the committing thread, so the listener registered here only
hops to the reactor (`callFromThread`) and publishes there; the bus never sees another thread.

A write answers before the requests it wakes: the changes committed by a unit of work run through
`run` are published only after that unit's Deferred has fired (the writer's response is handed to its
transport) and the reactor has polled its sockets once (the response is on the wire). Publishing at
commit time instead made a CardDAV PUT wait until every parked Ping it woke had been answered.

Two lanes share the pool (`LanedPool`): a cheap unit (device state, Provision, a ctag, a delta, login
bookkeeping; the caller says `light=True`) takes any free thread before every queued heavy unit, and
heavy units never hold the `[store] light_threads` added for them, so a storm of initial sync
windows cannot make a 10 ms unit wait a second in one FIFO queue (docs/store.md, "The store pool").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from oxsync.config import Settings
from oxsync.metrics import STORE_POOL_QUEUED, STORE_POOL_WAIT_SECONDS, count_combined_writes
from oxsync.push.bus import ChangeBus
from oxsync.store.api import LoginRecord, Store
from oxsync.store.budget import work_budget
from oxsync.store.combine import WriteCombiner
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.runtime")

T = TypeVar("T")


def ping_store(store: Store) -> float:
    """Run a trivial query; returns how long it took in milliseconds. Raises if the database is gone."""
    started = time.perf_counter()
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").scalar_one()
    return (time.perf_counter() - started) * 1000.0


SessionOpener = Callable[[bool], AbstractContextManager[UserSession]]
"""`open_session(write)`: a transaction of the unit's user (`DeferredStore.sequence`)."""

Committed = tuple[int, frozenset[int], int]
"""(tenant id, folder ids, revision) of one commit, as the store's change listener reports it."""

_unit = threading.local()
"""On a pool thread running a unit of work: `owner` (the DeferredStore) and `changes` (its commits)."""


def _as_unit(owner: Any, changes: Any) -> Callable[[], AbstractContextManager[None]]:
    """Enters another unit's `_unit` state on the thread that runs its write (store/combine.py), so that
    its commits are collected into its own `changes`, published once its own result is delivered."""
    @contextmanager
    def entered() -> Iterator[None]:
        saved = getattr(_unit, "owner", None), getattr(_unit, "changes", None)
        _unit.owner, _unit.changes = owner, changes
        try:
            yield
        finally:
            _unit.owner, _unit.changes = saved
    return entered


class LanedPool:
    """A thread pool with three FIFO queues. A free thread takes the oldest light unit first, else the
    oldest heavy one, but at most `size - reserved_light` threads run heavy units at once (at least
    one), so a light unit waits only for other light units or for a thread to finish its unit, never
    for the heavy queue. A background unit (work no request waits for: served texts rendered ahead) is
    taken only when no heavy unit is queued, one at a time, and counts as heavy while it runs. The
    threads are a Twisted `ThreadPool`'s (`threads`); each one runs units until nothing it may take is
    queued."""

    def __init__(self, size: int, reserved_light: int, name: str) -> None:
        self.size = max(1, size)
        self.heavy_limit = max(1, self.size - max(0, reserved_light))
        self.threads = ThreadPool(minthreads=0, maxthreads=self.size, name=name)
        self._lock = threading.Lock()
        self._light: deque[Callable[[], None]] = deque()
        self._heavy: deque[Callable[[], None]] = deque()
        self._background: deque[Callable[[], None]] = deque()
        self._workers = 0
        self._heavy_running = 0
        self._background_running = False

    def start(self) -> None:
        self.threads.start()

    def stop(self) -> None:
        self.threads.stop()

    def submit(self, work: Callable[[], None], light: bool = False, background: bool = False) -> None:
        """Queue `work` (it must not raise) in its lane; start a worker if one may take it."""
        with self._lock:
            (self._light if light else self._background if background else self._heavy).append(work)
            if self._workers >= self.size or not self._may_take():
                return
            self._workers += 1
        self.threads.callInThread(self._work)

    def queued(self) -> tuple[int, int]:
        """(light, heavy) units waiting for a thread (background units count as heavy)."""
        with self._lock:
            return len(self._light), len(self._heavy) + len(self._background)

    def _may_take(self) -> bool:
        heavy_free = self._heavy_running < self.heavy_limit
        return bool(self._light) or (bool(self._heavy) and heavy_free) or (
            bool(self._background) and not self._heavy and heavy_free and not self._background_running)

    def _work(self) -> None:
        kind = ""
        while True:
            with self._lock:
                if kind:
                    self._heavy_running -= 1
                if kind == "background":
                    self._background_running = False
                if self._light:
                    work, kind = self._light.popleft(), ""
                elif self._heavy and self._heavy_running < self.heavy_limit:
                    work, kind = self._heavy.popleft(), "heavy"
                    self._heavy_running += 1
                elif self._may_take() and self._background:
                    work, kind = self._background.popleft(), "background"
                    self._heavy_running += 1
                    self._background_running = True
                else:
                    self._workers -= 1
                    return
            work()


def _timed(owner: DeferredStore, changes: list[Committed], submitted: float, lane: str, fn: Callable[..., T],
           *args: Any, **kw: Any) -> T:
    """Runs on a pool thread: records how long the work waited for it, then does it, collecting the
    changes it commits into `changes` (published by `DeferredStore.run` once the result is delivered)."""
    STORE_POOL_WAIT_SECONDS.labels(lane).observe(time.perf_counter() - submitted)
    STORE_POOL_QUEUED.dec()
    _unit.owner, _unit.changes = owner, changes
    try:
        return fn(*args, **kw)
    finally:
        _unit.owner = _unit.changes = None


class DeferredStore:
    """Store calls from the reactor thread: every method returns a Deferred and never blocks."""

    def __init__(self, store: Store, reactor: Any, pool_size: int | None = None,
                 bus: ChangeBus | None = None, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings if settings is not None else store.settings
        """The server's settings (limits of each request's work budget, hash pool size)."""
        self.reactor = reactor
        self.bus = bus if bus is not None else ChangeBus()
        size = pool_size if pool_size is not None else store.settings.store.thread_pool_size
        light = max(0, self.settings.store.light_threads)
        self.pool = LanedPool(max(1, size) + light, light, "oxsync-store")
        """`size` threads for heavy units plus `light_threads` that only light units take."""
        self.hash_pool = ThreadPool(minthreads=0, maxthreads=self.settings.auth.hash_pool_size(),
                                    name="oxsync-hash")
        """Argon2 checks only: slow and memory-hungry by design, they must never occupy a store thread."""
        self._running = False
        store.add_listener(self._on_commit)
        store.add_account_listener(self._on_account_change)
        self.writes = WriteCombiner(counted=count_combined_writes) if store.serialises_writers else None
        """SQLite: prepared writes (a CalDAV PUT) run back to back by one thread (store/combine.py)."""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if not self._running:
            self._running = True
            self.pool.start()
            self.hash_pool.start()

    def stop(self) -> None:
        """Stop accepting work and join the threads (running transactions finish first)."""
        if self._running:
            self._running = False
            self.pool.stop()
            self.hash_pool.stop()

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------ work

    def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> Deferred[T]:
        """Call `fn(*args, **kw)` on the store pool; the Deferred fires on the reactor thread. What `fn`
        commits reaches the bus after the Deferred's callbacks ran and one reactor turn later (see above)."""
        return self._submit(False, fn, *args, **kw)

    def run_light(self, fn: Callable[..., T], *args: Any, **kw: Any) -> Deferred[T]:
        """`run` in the light lane: only for units known to be cheap (a few indexed statements, no
        rendering of many objects), which must not queue behind heavy ones."""
        return self._submit(True, fn, *args, **kw)

    def run_background(self, fn: Callable[..., T], *args: Any, **kw: Any) -> Deferred[T]:
        """`run` in the background lane: work no request waits for, taken only while no heavy unit is
        queued, one unit at a time (see `LanedPool`)."""
        return self._submit(False, fn, *args, background=True, **kw)

    def _submit(self, light: bool, fn: Callable[..., T], *args: Any, background: bool = False,
                **kw: Any) -> Deferred[T]:
        STORE_POOL_QUEUED.inc()
        changes: list[Committed] = []
        done: Deferred[T] = Deferred()
        submitted, lane = time.perf_counter(), "light" if light else "background" if background else "heavy"

        def work() -> None:
            try:
                value: Any = _timed(self, changes, submitted, lane, fn, *args, **kw)
            except BaseException:
                self.reactor.callFromThread(done.errback, Failure())
            else:
                self.reactor.callFromThread(done.callback, value)

        self.pool.submit(work, light, background)
        result: Deferred[T] = Deferred()
        done.chainDeferred(result)  # the caller's callbacks (the writer's response) run first...
        done.addBoth(lambda _: self._publish_after_flush(changes))
        return result

    def _publish_after_flush(self, changes: list[Committed]) -> None:
        """...then the bus, after the reactor's next socket poll: a `callLater(0)` made while the reactor
        runs its thread calls would still run before it polls, one made from a timed call runs after."""
        if changes:
            self.reactor.callLater(0, self.reactor.callLater, 0, self._publish, changes)

    def _publish(self, changes: list[Committed]) -> None:
        for tenant_id, folder_ids, revision in changes:
            self.bus.publish(tenant_id, folder_ids, revision)

    def read(self, tenant_id: int, user_id: int, fn: Callable[[UserSession], T], light: bool = False) -> Deferred[T]:
        """`fn(session)` inside one read transaction on behalf of the user (`light`: see `run_light`)."""
        return self._submit(light, self._in_session, tenant_id, user_id, False, fn)

    def write(self, tenant_id: int, user_id: int, fn: Callable[[UserSession], T], light: bool = False,
              prepare: Callable[[], None] | None = None) -> Deferred[T]:
        """`fn(session)` inside one write transaction; committed when `fn` returns, rolled back if it raises.
        `prepare()`: work `fn` can use but need not (no store access), run first on the same thread where
        the store serialises writers (SQLite: outside the writer's turn, so that it overlaps another
        unit's write); skipped elsewhere, and on any error (`fn` then does it all)."""
        if prepare is not None and self.store.serialises_writers:
            return self._submit(light, self._prepared_write, tenant_id, user_id, prepare, fn)
        return self._submit(light, self._in_session, tenant_id, user_id, True, fn)

    def sequence(self, tenant_id: int, user_id: int, fn: Callable[[SessionOpener], T], light: bool = False) -> Deferred[T]:
        """`fn(open_session)` as one unit on one pool thread: `fn` opens its transactions one after the
        other (`with open_session(write) as session:`), e.g. a read then a short write that depends on it,
        without a hop back to the reactor and a second queueing between them (`light`: see `run_light`)."""
        def unit() -> T:
            with work_budget(self.settings.limits):
                return fn(lambda write: self.store.session(tenant_id, user_id, write=write))
        return self._submit(light, unit)

    def login_record(self, login: str) -> Deferred[LoginRecord | None]:
        """The account a login names, with its hash (a quick read on the store pool, no hashing)."""
        return self.run_light(self.store.login_record, login)

    def verify_password(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        """The Argon2 check on the hash pool: never on the reactor, never on a store thread."""
        return deferToThreadPool(self.reactor, self.hash_pool, self.store.verify_password, stored_hash, password)

    def account_stamps(self) -> Deferred[dict[int, tuple[int, int]]]:
        return self.run_light(self.store.account_stamps)

    def ping(self) -> Deferred[float]:
        """Milliseconds a trivial query took on the pool (used by /health)."""
        return self.run_light(ping_store, self.store)

    def _in_session(self, tenant_id: int, user_id: int, write: bool, fn: Callable[[UserSession], T]) -> T:
        with work_budget(self.settings.limits), self.store.session(tenant_id, user_id, write=write) as session:
            return fn(session)

    def _prepared_write(self, tenant_id: int, user_id: int, prepare: Callable[[], None],
                        fn: Callable[[UserSession], T]) -> T:
        with work_budget(self.settings.limits):
            try:
                prepare()
            except Exception as exc:  # noqa: BLE001 - only a head start: the write does it all
                log.debug("prepare skipped: %r", exc)

            def write() -> T:
                with self.store.session(tenant_id, user_id, write=True) as session:
                    return fn(session)
            if self.writes is None:
                return write()
            return self.writes.run(write, _as_unit(getattr(_unit, "owner", None), getattr(_unit, "changes", None)))

    # ------------------------------------------------------------ change notification

    def _on_commit(self, tenant_id: int, folder_ids: frozenset[int], revision: int) -> None:
        """Store listener: runs on the committing thread (pool, CLI or reactor) and only schedules; a
        commit of a unit run by `run` waits for that unit's result to be delivered."""
        if not self._running:
            return
        if getattr(_unit, "owner", None) is self:
            _unit.changes.append((tenant_id, folder_ids, revision))
            return
        self.reactor.callFromThread(self.bus.publish, tenant_id, folder_ids, revision)

    def _on_account_change(self, tenant_id: int, user_ids: frozenset[int]) -> None:
        """Store account listener: same hop as `_on_commit` (verified-login caches forget them)."""
        if self._running:
            self.reactor.callFromThread(self.bus.publish_accounts, tenant_id, user_ids)


class DeferredStoreService(Service):
    """Starts the pool with the application and stops it after the listeners (MultiService order)."""

    name = "store-pool"

    def __init__(self, async_store: DeferredStore) -> None:
        self.async_store = async_store

    def startService(self) -> None:
        super().startService()
        self.async_store.start()

    def stopService(self) -> None:
        self.async_store.stop()
        return super().stopService()


class AccountPollService(Service):
    """SQLite only: notices account changes committed by another process (the `oxsync` command) and
    publishes them on the bus, since SQLite has no cross-process notification. One cheap aggregate
    query per interval, skipped while `wanted()` is false (nothing remembered that could go stale)."""

    name = "account-poll"

    def __init__(self, async_store: DeferredStore, interval: float, wanted: Callable[[], bool]) -> None:
        self.async_store = async_store
        self.interval = interval
        self.wanted = wanted
        self.known: dict[int, tuple[int, int]] | None = None
        self._loop: Any = None
        self._busy = False

    def startService(self) -> None:
        super().startService()
        from twisted.internet.task import LoopingCall

        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.async_store.reactor
        self._loop.start(self.interval, now=True)

    def stopService(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()

    def poll(self) -> Deferred[None] | None:
        if self._busy or not self.async_store.running or (self.known is not None and not self.wanted()):
            return None
        self._busy = True
        d = self.async_store.account_stamps()
        d.addCallback(self._compare)
        d.addErrback(lambda f: log.warning("account poll failed: %s", f.getErrorMessage(),
                                           extra={"event": "auth.account_poll_failed"}))

        def done(_: object) -> None:
            self._busy = False

        return d.addBoth(done)

    def _compare(self, stamps: dict[int, tuple[int, int]]) -> None:
        known, self.known = self.known, stamps
        if known is None:
            return
        for tenant_id in set(known) | set(stamps):
            if known.get(tenant_id) != stamps.get(tenant_id):
                self.async_store.bus.publish_accounts(tenant_id, (), origin="poll")
