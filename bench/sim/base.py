"""What every simulated client shares: the run context, the commit log for push latencies, lag
measurement, timed requests, and a stoppable HTTP helper (every socket has a timeout and can be
aborted from another thread so that long polls end at the stop event).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import logging
import random
import socket
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.sim.seed import SimUser
from bench.sim.stats import Recorder

T = TypeVar("T")
log = logging.getLogger("bench.sim")


class RequestFailed(Exception):
    """A request got a transport error or an unexpected answer (recorded as a failed request)."""


class Stopped(Exception):
    """The stop event was set; the client loop unwinds."""


class CommitLog:
    """folder id -> recent commit times (perf_counter), written by the client that committed."""

    def __init__(self, keep: int = 64) -> None:
        self._lock = threading.Lock()
        self._times: dict[int, deque[float]] = defaultdict(lambda: deque(maxlen=keep))

    def committed(self, folders: list[int], at: float) -> None:
        with self._lock:
            for folder in folders:
                self._times[folder].append(at)

    def all(self, folder: int) -> list[float]:
        with self._lock:
            return list(self._times.get(folder, ()))

    def first_since(self, folder: int, since: float) -> float | None:
        """Earliest commit in `folder` after `since` (what a push for that folder is answering)."""
        with self._lock:
            later = [t for t in self._times.get(folder, ()) if t > since]
        return min(later) if later else None


class LagMeter:
    """How late scheduled client actions ran (a saturated simulator shows up here, not as server latency)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: list[float] = []

    def add(self, seconds: float) -> None:
        with self._lock:
            self.values.append(max(0.0, seconds))

    def summary(self) -> dict[str, float | int]:
        with self._lock:
            values = sorted(self.values)
        if not values:
            return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        def pct(p: float) -> float:
            return 1000 * values[min(len(values) - 1, max(0, int(round(p / 100 * len(values))) - 1))]
        return {"count": len(values), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": 1000 * values[-1]}


@dataclass
class Endpoint:
    host: str
    http_port: int
    udp_port: int


@dataclass
class Options:
    """Client behaviour knobs (seconds); defaults model real devices, the smoke test shortens them."""

    heartbeat: tuple[int, int] = (60, 300)
    android_heartbeat: int = 60
    eas_edit_every: float = 300.0
    ox_poll_every: float = 30.0
    ox_edit_every: float = 120.0
    ox_freebusy_every: float = 180.0
    dav_poll_every: float = 60.0
    dav_put_every: float = 300.0
    request_timeout: float = 30.0
    domain: str = "sim.example"


@dataclass
class Context:
    recorder: Recorder
    endpoints: list[Endpoint]
    users: list[SimUser]
    tenant_id: int
    options: Options = field(default_factory=Options)
    stop: threading.Event = field(default_factory=threading.Event)
    commits: CommitLog = field(default_factory=CommitLog)
    lag: LagMeter = field(default_factory=LagMeter)
    sim_errors: list[str] = field(default_factory=list)
    slow_pushes: list[dict[str, Any]] = field(default_factory=list)  # diagnostics: pushes later than 3 s
    t0: float = field(default_factory=time.perf_counter)
    _rr: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]

    def next_endpoint(self) -> Endpoint:
        """Round robin over the nodes, per request (a load balancer without stickiness)."""
        return self.endpoints[next(self._rr) % len(self.endpoints)]

    def team_of(self, user: SimUser) -> list[SimUser]:
        index = self.users.index(user)
        return self.users[(index // 10) * 10:(index // 10) * 10 + 10]

    def calendar_of(self, user_id: int) -> int | None:
        return next((u.calendar for u in self.users if u.user_id == user_id), None)


class SimClient(threading.Thread):
    """One simulated user's device: `setup()` once, then `step()` until the stop event."""

    kind = "client"

    def __init__(self, ctx: Context, user: SimUser, index: int) -> None:
        super().__init__(name=f"{self.kind}-{user.login}", daemon=True)
        self.ctx = ctx
        self.user = user
        self.index = index
        self.rng = random.Random(index * 7919 + 1)
        self._conn: http.client.HTTPConnection | None = None
        self._conn_lock = threading.Lock()

    # --------------------------------------------------------------- lifecycle

    def run(self) -> None:
        ready = False
        while not self.ctx.stop.is_set():
            try:
                if not ready:
                    self.setup()
                    ready = True
                self.step()
            except Stopped:
                return
            except RequestFailed as exc:  # already recorded as a failed request; back off like a device
                log.debug("%s: %s", self.name, exc)
                self.ctx.stop.wait(2 + self.rng.random() * 3)
            except Exception:  # noqa: BLE001 - a simulator bug: keep it visible, stop this client
                if not self.ctx.stop.is_set():
                    self.ctx.sim_errors.append(f"{self.name}: {traceback.format_exc()}")
                return

    def setup(self) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Unblock a request in flight (called after the stop event is set)."""
        with self._conn_lock:
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    # --------------------------------------------------------------- helpers

    def sleep_until(self, due: float) -> None:
        """Wait for a scheduled action; records how late the wake-up came (simulator lag).

        Time the client spent busy in earlier requests past `due` is not lag (the device was busy);
        lag is the overshoot of the wait itself, which grows when the simulator is CPU-bound."""
        entered = time.perf_counter()
        delay = due - entered
        if delay > 0 and self.ctx.stop.wait(delay):
            raise Stopped
        if self.ctx.stop.is_set():
            raise Stopped
        self.ctx.lag.add(time.perf_counter() - max(due, entered))

    def jitter(self, mean: float) -> float:
        return mean * (0.5 + self.rng.random())

    def timed(self, name: str, fn: Callable[[], T]) -> T:
        """Run one request, record its latency under `name`; failures raise RequestFailed."""
        started = time.perf_counter()
        try:
            result = fn()
        except Stopped:
            raise
        except Exception as exc:  # noqa: BLE001 - transport or protocol failure of this request
            if self.ctx.stop.is_set():
                raise Stopped from exc
            self.ctx.recorder.record(name, started, time.perf_counter() - started, False)
            raise RequestFailed(f"{name}: {exc!r}") from exc
        self.ctx.recorder.record(name, started, time.perf_counter() - started, True)
        return result

    def http(self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None,
             *, timeout: float | None = None, basic: bool = True,
             endpoint: Endpoint | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request to the next node (round robin), abortable from another thread."""
        if self.ctx.stop.is_set():
            raise Stopped
        ep = endpoint or self.ctx.next_endpoint()
        conn = http.client.HTTPConnection(ep.host, ep.http_port, timeout=timeout or self.ctx.options.request_timeout)
        all_headers = dict(headers or {})
        if basic:
            token = base64.b64encode(f"{self.user.login}:{self.user.password}".encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        if isinstance(body, str):
            body = body.encode("utf-8")
        with self._conn_lock:
            self._conn = conn
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            with self._conn_lock:
                self._conn = None
            conn.close()


def expect(condition: Any, what: str) -> None:
    """Protocol check inside a timed request (a failed check is a failed request)."""
    if not condition:
        raise RequestFailed(what)
