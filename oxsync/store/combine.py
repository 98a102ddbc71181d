"""Writes of one process run back to back by one thread (SQLite's writer's turn, `engine.WriterTurn`).

With 8 clients PUTting on SQLite the writer's turn was held only 73-86 % of the time although 7 writers
were always waiting for it (bench/README y-sqliteturn): every turn went to another thread, which had to
be woken by the kernel and then to get the GIL, held meanwhile by the thread that just left the turn (its
response, its commit's notices) or by the other requests' early work, while nobody wrote. Here a writer
that finds another writer running queues its unit instead of waiting for the turn, and the running one,
once its own unit is done, runs the queued units in their order on its own thread, each exactly as its
own thread would have: its own transaction (taking and leaving the turn as before), its own context
(`contextvars`: the request's work budget; `enter`: the caller's per-unit state), its result or
exception handed back to the thread that queued it, which only wakes to deliver it. So the next write
starts the moment the last one committed, on a thread that already runs.

What must hold: every unit runs exactly once, in its own transaction, in the order queued; a unit's
exception reaches its own caller only; a thread runs at most `limit` queued units after its own, then
hands the role to the first one still queued (which runs its own unit, then the next ones), so that no
caller's own answer waits for more than `limit` other writes.

Its two work counts (`combined`, `handed`) are also told to `counted(combined, handed)`, given by its
owner (the runtime exports them on `/metrics`; the store imports no metrics)."""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

COMBINE_LIMIT = 8
"""Queued units one thread runs after its own before it hands the role on (a bound on how long its own
caller waits: at most this many other writes)."""


class _Unit(Generic[T]):
    """One queued write: run on whichever thread runs the queue, delivered to the thread that queued it."""

    __slots__ = ("work", "context", "enter", "done", "lead", "value", "error")

    def __init__(self, work: Callable[[], T], enter: Callable[[], AbstractContextManager[Any]]) -> None:
        self.work = work
        self.context = contextvars.copy_context()
        self.enter = enter
        self.done = threading.Lock()
        """Held until the unit ran (or its thread is handed the role): released by the running thread, a
        bare lock being the cheapest wake (an `Event` takes a condition and a lock of its own, on the
        running thread's path from one write to the next)."""
        self.done.acquire()
        self.lead = False
        """Handed the role of running the queue: its own thread runs it (and the next ones)."""
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.enter():
                self.value = self.context.run(self.work)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            self.error = exc

    def result(self) -> T:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return cast(T, self.value)


def _not_counted(combined: int, handed: int) -> None:
    return None


class WriteCombiner:
    """See the module's docstring. `run(work)` returns what `work()` returned (or raises what it raised),
    whichever thread ran it. `counted(combined, handed)`: called with each increment of the work counts
    below (1, 0 or 0, 1), on the running thread, before the unit's own thread wakes."""

    def __init__(self, limit: int = COMBINE_LIMIT, counted: Callable[[int, int], None] = _not_counted) -> None:
        self.limit = max(0, limit)
        self.counted = counted
        self._lock = threading.Lock()
        self._queue: deque[_Unit[Any]] = deque()
        self._running = False
        self.combined = 0
        """Units run by another thread than the one that queued them (a work count)."""
        self.handed = 0
        """Times a thread handed the queue on after `limit` units (a work count)."""

    @property
    def queued(self) -> int:
        """Units waiting for the running thread."""
        return len(self._queue)

    def run(self, work: Callable[[], T], enter: Callable[[], AbstractContextManager[Any]] = nullcontext) -> T:
        """`work()` in this process's line of writes. `enter()`: entered around `work` on the thread that
        runs it when that is another thread (the caller's per-thread state, e.g. where its commits are
        collected); on the caller's own thread `work` runs as is."""
        unit: _Unit[T] | None = None
        with self._lock:
            if self._running:
                unit = _Unit(work, enter)
                self._queue.append(unit)
            else:
                self._running = True
        if unit is not None:
            unit.done.acquire()  # no timeout: the running thread delivers every unit it took, or hands the lead
            if not unit.lead:
                return unit.result()
        try:
            return work()
        finally:
            self._drain()

    def _drain(self) -> None:
        """Run the queued units (at most `limit`), then hand the role on or end it."""
        ran = 0
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                unit = self._queue.popleft()
                if ran >= self.limit:
                    self.handed += 1
                    self.counted(0, 1)
                    unit.lead = True
                    unit.done.release()
                    return
            unit.run()
            ran += 1
            self.combined += 1
            self.counted(1, 0)  # before its caller wakes: counted by the time it answers
            unit.done.release()
