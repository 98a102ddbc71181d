"""Prometheus metrics: one registry and the metric objects every part of the server counts into.

Any package may import this module (it imports nothing of ours) and count into the objects below;
the assembly serves `REGISTRY` on the admin listener (`[server] admin_endpoint`, off unless set), in
the Prometheus text format, through the well-kept `prometheus_client` library.

What must hold:
- label values are bounded: dialects and outcomes come from small fixed sets, commands are cut to a
  known shape and capped (`bounded_label`), so a client cannot grow the registry;
- gauges of live things (parked Pings, UDP registrations) move with inc/dec at the place the thing is
  added and removed, so several servers in one process (tests) add up instead of overwriting;
- counting never raises and never blocks: every call here is an in-memory increment.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
"""The server's own registry (not prometheus_client's global one: nothing else leaks into /metrics)."""

CONTENT_TYPE = CONTENT_TYPE_LATEST

DIALECTS = ("eas", "ox", "dav", "autodiscover", "onboarding", "health", "other")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

REQUESTS = Counter(
    "oxsync_http_requests", "HTTP requests answered, per dialect, command and status class.",
    ("dialect", "command", "status"), registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "oxsync_http_request_seconds", "Time from request received to response finished (parked Pings included).",
    ("dialect", "command"), buckets=_LATENCY_BUCKETS, registry=REGISTRY)
ERRORS = Counter(
    "oxsync_http_errors", "Responses with a 5xx status (the server's fault), per dialect and command.",
    ("dialect", "command"), registry=REGISTRY)
PARKED_PINGS = Gauge(
    "oxsync_eas_parked_requests", "ActiveSync Pings and hanging Syncs parked now (no thread held).",
    registry=REGISTRY)
UDP_REGISTRATIONS = Gauge(
    "oxsync_ox_push_registrations", "OXtender UDP push registrations held now.", registry=REGISTRY)
UDP_PACKETS = Counter(
    "oxsync_ox_push_packets", "UDP push datagrams, by kind (ack, notify, refused, dropped).", ("kind",),
    registry=REGISTRY)
PUSH_SECONDS = Histogram(
    "oxsync_push_latency_seconds",
    "From a change on the bus to the push it caused (a parked EAS request woken, a UDP notice sent; "
    "UDP includes the coalescing window).", ("channel",),
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0), registry=REGISTRY)
STORE_POOL_WAIT_SECONDS = Histogram(
    "oxsync_store_pool_wait_seconds", "How long a unit of store work waited for a pool thread, by lane "
    "(light: cheap units served first, heavy: the rest, background: work no request waits for; docs/store.md).",
    ("lane",),
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=REGISTRY)
STORE_POOL_QUEUED = Gauge(
    "oxsync_store_pool_queued", "Units of store work submitted and not yet started.", registry=REGISTRY)
STORE_WRITES_COMBINED = Counter(
    "oxsync_store_writes_combined", "SQLite: queued writes (CalDAV PUTs) run back to back by another writer's "
    "thread instead of their own (docs/store.md, store/combine.py).", registry=REGISTRY)
STORE_WRITE_HANDOFFS = Counter(
    "oxsync_store_write_handoffs", "SQLite: times a thread running queued writes handed the queue on after its "
    "limit (COMBINE_LIMIT) to the next writer.", registry=REGISTRY)


def count_combined_writes(combined: int, handed: int) -> None:
    """The write combiner's work counts (`WriteCombiner(counted=...)`): 1, 0 or 0, 1 per call."""
    if combined:
        STORE_WRITES_COMBINED.inc(combined)
    if handed:
        STORE_WRITE_HANDOFFS.inc(handed)


LOGIN_CHECKS = Counter(
    "oxsync_login_checks", "Password checks by outcome (ok, cached, failed, refused, error).", ("result",),
    registry=REGISTRY)
PASSWORD_HASHES = Counter(
    "oxsync_password_hashes", "Argon2 password checks this process ran (not those answered from memory or "
    "shared with a check in flight).", registry=REGISTRY)
PASSWORD_BROKER = Counter(
    "oxsync_password_broker", "A further serving process's password questions: answered by the first "
    "process's broker, or checked locally because it could not answer.", ("result",), registry=REGISTRY)
LOGIN_THROTTLED = Counter(
    "oxsync_login_throttled", "Requests refused with 429 by the failed-login throttle.", registry=REGISTRY)
ITEMS_SKIPPED = Counter(
    "oxsync_items_skipped", "Objects left out of a response because they could not be rendered.", ("dialect",),
    registry=REGISTRY)
OUTBOUND_ATTEMPTS = Counter(
    "oxsync_outbound_mail_attempts", "Attempts to send queued server mail, by kind and outcome (sent, queued, failed).",
    ("kind", "outcome"), registry=REGISTRY)
DAV_QUERY_OBJECTS = Counter(
    "oxsync_dav_query_objects", "calendar-query candidates by how their match was decided: by the exact "
    "time-range index (index) or by parsing their text (parsed).", ("decided",), registry=REGISTRY)
LISTENERS_UP = Gauge(
    "oxsync_listener_up", "1 when the listener is bound, 0 when it is not.", ("listener",), registry=REGISTRY)

_COMMAND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")
_MAX_COMMANDS = 200
_known_commands: set[str] = set()
_lock = threading.Lock()


def bounded_label(value: str | None) -> str:
    """A command label from client input: its own shape or `other`, and at most `_MAX_COMMANDS` values."""
    if not value or not _COMMAND_RE.match(value):
        return "other"
    with _lock:
        if value in _known_commands:
            return value
        if len(_known_commands) >= _MAX_COMMANDS:
            return "other"
        _known_commands.add(value)
    return value


_request_children: dict[tuple[str, str | None, int], tuple[Counter, Counter, Histogram]] = {}
"""(dialect, command, status class) -> its counter, error counter and histogram children: `labels()`
looks them up under a lock each time; the set is bounded like the labels themselves."""


def _children(dialect: str, command: str | None, status_class: int) -> tuple[Counter, Counter, Histogram]:
    key = (dialect, command, status_class)
    found = _request_children.get(key)
    if found is None:
        dialect = dialect if dialect in DIALECTS else "other"
        label = bounded_label(command)
        found = (REQUESTS.labels(dialect, label, f"{status_class}xx"), ERRORS.labels(dialect, label),
                 REQUEST_SECONDS.labels(dialect, label))
        if len(_request_children) < 4 * _MAX_COMMANDS * len(DIALECTS):
            _request_children[key] = found
    return found


def observe_request(dialect: str, command: str | None, status: int, seconds: float | None) -> None:
    """Count one answered HTTP request (called by the assembly's access log)."""
    requests, errors, latency = _children(dialect, command, status // 100)
    requests.inc()
    if status >= 500:
        errors.inc()
    if seconds is not None:
        latency.observe(max(0.0, seconds))


def scrape() -> bytes:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)
