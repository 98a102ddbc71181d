"""Writes run back to back by one thread (store/combine.py): a writer that finds another one running
queues its unit, and the running thread runs it after its own, in order, in the queuer's context, and
hands the result or the exception back to the queuer's thread; after `limit` units it hands the role on.
Real threads, ordered by events and the combiner's own queue count (no sleeps). Then through a live
server on SQLite: CalDAV PUTs queued behind a running write are run by that write's thread, each in its
own transaction, answered as before, their changes published; the combiner's counts are on `/metrics`."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bench.peers_data import event as bench_event
from oxsync.dialects import install_all
from oxsync.store.combine import WriteCombiner
from tests.davhelp import Dav
from tests.live import wait_until
from tests.test_metrics import scrape, value

REQUEST = contextvars.ContextVar("REQUEST", default="none")


class Holder:
    """A first writer that runs (holds the combiner) until released."""

    def __init__(self, combiner: WriteCombiner, log: list[tuple[str, int]]) -> None:
        self.started, self.go = threading.Event(), threading.Event()
        self.log = log

        def work() -> str:
            self.started.set()
            assert self.go.wait(30)
            log.append(("a", threading.get_ident()))
            return "a"
        self.results: dict[str, Any] = {}
        self.thread = Caller("a", combiner, work, self.results)
        self.thread.start()
        assert self.started.wait(30)


class Caller(threading.Thread):
    def __init__(self, name: str, combiner: WriteCombiner, work: Callable[[], Any], results: dict[str, Any],
                 enter: Callable[[], Any] | None = None) -> None:
        super().__init__(name=f"caller-{name}", daemon=True)
        self.key, self.combiner, self.work, self.results, self.enter = name, combiner, work, results, enter

    def run(self) -> None:
        REQUEST.set(self.key)
        try:
            if self.enter is None:
                self.results[self.key] = self.combiner.run(self.work)
            else:
                self.results[self.key] = self.combiner.run(self.work, self.enter)
        except Exception as exc:  # noqa: BLE001 - the test reads what reached this thread
            self.results[self.key] = exc


def queued_work(name: str, log: list[tuple[str, int]], fail: bool = False) -> Callable[[], str]:
    def work() -> str:
        log.append((name, threading.get_ident()))
        if fail:
            raise ValueError(f"{name} failed")
        return f"{name}:{REQUEST.get()}"
    return work


def test_queued_writes_run_in_order_on_the_running_thread() -> None:
    combiner = WriteCombiner(limit=8)
    log: list[tuple[str, int]] = []
    holder = Holder(combiner, log)
    entered: list[tuple[str, int]] = []

    def enter_as(name: str) -> Callable[[], Any]:
        @contextmanager
        def entered_cm() -> Iterator[None]:
            entered.append((name, threading.get_ident()))
            yield
        return entered_cm

    results: dict[str, Any] = holder.results
    callers = []
    for k, name in enumerate(("b", "c", "d")):
        caller = Caller(name, combiner, queued_work(name, log, fail=name == "c"), results, enter_as(name))
        caller.start()
        callers.append(caller)
        assert wait_until(lambda k=k: combiner.queued == k + 1)  # queued in this order
    holder.go.set()
    for thread in (holder.thread, *callers):
        thread.join(30)
    runner = holder.thread.ident
    assert [name for name, _ in log] == ["a", "b", "c", "d"]
    assert {ident for _, ident in log} == {runner}  # all on the first writer's thread
    assert results["a"] == "a"
    assert results["b"] == "b:b" and results["d"] == "d:d"  # each in its own caller's context
    assert isinstance(results["c"], ValueError) and str(results["c"]) == "c failed"  # only c's caller sees it
    assert entered == [("b", runner), ("c", runner), ("d", runner)]
    assert combiner.combined == 3 and combiner.handed == 0 and combiner.queued == 0


def test_the_role_is_handed_on_after_the_limit() -> None:
    combiner = WriteCombiner(limit=1)
    log: list[tuple[str, int]] = []
    holder = Holder(combiner, log)
    results: dict[str, Any] = holder.results
    callers = {}
    for k, name in enumerate(("b", "c", "d")):
        callers[name] = Caller(name, combiner, queued_work(name, log), results)
        callers[name].start()
        assert wait_until(lambda k=k: combiner.queued == k + 1)
    holder.go.set()
    for thread in (holder.thread, *callers.values()):
        thread.join(30)
    where = dict(log)
    assert [name for name, _ in log] == ["a", "b", "c", "d"]
    assert where["b"] == holder.thread.ident  # one after its own
    assert where["c"] == where["d"] == callers["c"].ident  # c ran its own, then d
    assert results == {"a": "a", "b": "b:b", "c": "c:c", "d": "d:d"}
    assert combiner.combined == 2 and combiner.handed == 1


def test_alone_a_write_runs_on_its_own_thread() -> None:
    combiner = WriteCombiner()
    seen: list[int] = []
    assert combiner.run(lambda: seen.append(threading.get_ident()) or 7) == 7
    assert seen == [threading.get_ident()] and combiner.combined == 0
    with pytest.raises(KeyError):
        combiner.run(lambda: {}["x"])
    assert combiner.run(lambda: 8) == 8  # a failure left nothing running


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install_all, auth={"account_poll_seconds": 0},
                       dav={"texts_ahead_delay_seconds": 600.0})


def _puts_behind_a_running_write(running, world, combiner: WriteCombiner,  # type: ignore[no-untyped-def]
                                 prefix: str, count: int = 3) -> tuple[dict[int, Any], int | None]:
    """`count` CalDAV PUTs over HTTP (`prefix`0.ics ...) queued, in this order, behind a write held running
    on a thread of the test's, then let go: their replies by number, and the holding thread's id."""
    go, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert go.wait(30)

    holder = threading.Thread(target=lambda: combiner.run(hold), daemon=True)
    holder.start()
    assert started.wait(30)
    replies: dict[int, Any] = {}

    def put(k: int) -> None:
        replies[k] = Dav(running.port, world).put(f"{prefix}{k}.ics", bench_event(k, 100), If_None_Match="*")

    clients = [threading.Thread(target=put, args=(k,), daemon=True) for k in range(count)]
    try:
        for k, client in enumerate(clients):
            client.start()
            assert wait_until(lambda k=k: combiner.queued == k + 1)  # queued in this order
    finally:
        go.set()
        for thread in (holder, *clients):
            if thread.ident is not None:  # started
                thread.join(30)
    return replies, holder.ident


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # writers take turns on SQLite only
def test_puts_queued_behind_a_write_run_on_its_thread(store, running, world) -> None:  # type: ignore[no-untyped-def]
    async_store = running.service.async_store
    combiner = async_store.writes
    assert combiner is not None
    dav = Dav(running.port, world)
    cal = dav.calendar()
    published: list[int] = []
    unsubscribe = async_store.bus.subscribe(lambda change: published.append(change.revision))
    writers: list[int] = []
    real_session = store.session

    def session(*args: Any, **kw: Any) -> Any:
        if kw.get("write"):
            writers.append(threading.get_ident())
        return real_session(*args, **kw)

    store.session = session
    try:
        replies, holder = _puts_behind_a_running_write(running, world, combiner, f"{cal}q")
    finally:
        del store.session
    assert [replies[k].status for k in range(3)] == [201, 201, 201]
    assert all(replies[k].headers.get("etag") for k in range(3))  # as sent: a strong ETag
    assert writers == [holder] * 3  # each its own write transaction, all on the holding thread
    assert combiner.combined == 3
    for k in range(3):
        assert dav.request("GET", f"{cal}q{k}.ics").text == bench_event(k, 100)
    assert wait_until(lambda: len(set(published)) >= 3)  # each one's change was published
    unsubscribe()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the combiner runs on SQLite only
def test_combined_puts_are_counted_on_metrics(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    """Three CalDAV PUTs over HTTP queued behind a running write, the combiner's limit at 1: the running
    thread runs the first and hands the queue to the second, which runs its own and then the third. Read
    off the admin listener's `/metrics`: 2 writes combined, 1 hand-over."""
    running = live_server(store, setup=install_all, auth={"account_poll_seconds": 0},
                          dav={"texts_ahead_delay_seconds": 600.0},
                          server={"admin_endpoint": "tcp:0:interface=127.0.0.1"})
    combiner = running.service.async_store.writes
    assert combiner is not None
    combiner.limit = 1
    before = scrape(running)
    replies, _ = _puts_behind_a_running_write(running, world, combiner, f"{Dav(running.port, world).calendar()}m")
    assert [replies[k].status for k in range(3)] == [201, 201, 201]
    after = scrape(running)
    assert (value(after, "oxsync_store_writes_combined_total") - value(before, "oxsync_store_writes_combined_total"),
            value(after, "oxsync_store_write_handoffs_total") - value(before, "oxsync_store_write_handoffs_total")
            ) == (2.0, 1.0)
    assert (combiner.combined, combiner.handed) == (2, 1)
