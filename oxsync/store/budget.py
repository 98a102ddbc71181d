"""The work budget of one request: how many recurrence instances it may expand and for how long it
may keep a store thread busy (issue 10 §3: a calendar-query expanding 1900..9999 over an endless
series held four store threads for a minute and slowed every other request).

`DeferredStore` opens a budget around each unit of store work (`work_budget`); the code that does work
growing with the input (recurrence expansion in the store and in DAV filters, per-object loops) calls
`charge`/`check_time`, which raise `WorkLimitExceeded` beyond it. Each dialect answers that with its
own limit error. Outside a budget (CLI, import, tests calling the store directly) nothing is charged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from oxsync.config import LimitSettings
from oxsync.store.errors import StoreError


class WorkLimitExceeded(StoreError):
    """The request needs more work than one request may do. `kind` is `series` (one series has more
    instances than `max_recurrence_instances`), `instances` (the request expanded more than
    `max_expanded_instances_per_request`) or `time` (`max_request_work_seconds` passed)."""

    code = "work_limit"
    whole_request = True
    """Per-item isolation (oxsync.render) lets it through: the request as a whole is refused."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class WorkBudget:
    max_instances: int
    max_seconds: float
    clock: Callable[[], float] = time.monotonic
    instances: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def charge(self, instances: int = 1) -> None:
        self.instances += instances
        if self.instances > self.max_instances:
            raise WorkLimitExceeded(f"the request expands more than {self.max_instances} recurrence instances",
                                    "instances")
        self.check_time()

    def check_time(self) -> None:
        if self.clock() - self.started > self.max_seconds:
            raise WorkLimitExceeded(f"the request needs more than {self.max_seconds:g} s of work", "time")


_current: ContextVar[WorkBudget | None] = ContextVar("oxsync_work_budget", default=None)


def charge(instances: int = 1) -> None:
    """Count expanded instances against the current request's budget (no-op outside one)."""
    budget = _current.get()
    if budget is not None:
        budget.charge(instances)


def check_time() -> None:
    budget = _current.get()
    if budget is not None:
        budget.check_time()


@contextmanager
def work_budget(limits: LimitSettings, clock: Callable[[], float] = time.monotonic) -> Iterator[WorkBudget]:
    """The budget of the store work run inside (one thread, one request)."""
    budget = WorkBudget(limits.max_expanded_instances_per_request, limits.max_request_work_seconds, clock)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
