"""Assembly of the HTTP server: Site, root resource, listening endpoint, thread pool, change bus.

`make_service` builds everything as one `MultiService` (pool first, so it starts first and stops last);
`run_server` runs it in the global reactor for `oxsync serve`. Dialect packages attach their resources
with `site.root.register(segment, resource)` and reach shared objects through `site.context`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, FirstError
from twisted.internet.error import ReactorNotRunning
from twisted.python.failure import Failure
from twisted.web.http import Request as HttpRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from oxsync import metrics, processes, systemd
from oxsync.config import Settings, apply_overrides
from oxsync.listeners import (
    AcceptBoard,
    HttpListenerService,
    ServerStartError,
    describe_failure,
    listeners_of,
)
from oxsync.logs import access_log_fields, configure_from_settings
from oxsync.push.bus import ChangeBus
from oxsync.push.procbus import ProcessRelay
from oxsync.runtime import AccountPollService, DeferredStore, DeferredStoreService
from oxsync.skips import add_skip_listener
from oxsync.store.api import Store
from oxsync.web.auth import Authenticator, LoginThrottle, VerifiedLogins
from oxsync.web.context import ServerContext
from oxsync.web.health import HealthResource
from oxsync.web.limits import ConnectionCounts, LimitedHTTPChannel, LimitedRequest
from oxsync.web.metrics_page import AdminRoot
from oxsync.web.password_broker import PasswordChecks, ask_first_process, serve_copies

log = logging.getLogger("oxsync.server")


def _count_skipped(dialect: str) -> None:
    metrics.ITEMS_SKIPPED.labels(dialect if dialect in metrics.DIALECTS else "other").inc()


add_skip_listener(_count_skipped)  # once per process: objects left out of a response, per dialect
access_log = logging.getLogger("oxsync.access")


class RootHook(Protocol):
    """A dialect that answers some requests addressed to `/` itself (e.g. DAV clients PROPFIND it)."""

    def wants(self, request: Request) -> bool: ...

    def render(self, request: Request) -> Any: ...


class RootResource(Resource):
    """`/` answers 200 "oxsync" unless a root hook claims the request; top-level children are registered by name."""

    def __init__(self) -> None:
        super().__init__()
        self._hooks: list[RootHook] = []

    def add_root_hook(self, hook: RootHook) -> None:
        self._hooks.append(hook)

    def render(self, request: Request) -> Any:
        for hook in self._hooks:
            if hook.wants(request):
                return hook.render(request)
        return super().render(request)

    def register(self, path_segment: str, resource: Resource) -> None:
        segment = path_segment.strip("/")
        if not segment or "/" in segment:
            raise ValueError(f"invalid top-level path segment {path_segment!r}")
        if segment.encode() in self.children:
            raise ValueError(f"/{segment} is already registered")
        self.putChild(segment.encode(), resource)

    def getChild(self, path: bytes, request: Request) -> IResource:
        return self if path == b"" else notFound()

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"oxsync\n"

    render_HEAD = render_GET


class OxsyncSite(Site):
    """Site with the body limit, our request class and a structured access log."""

    requestFactory = LimitedRequest

    def __init__(self, root: RootResource, context: ServerContext) -> None:
        super().__init__(root)
        self.root = root
        self.context = context
        self.max_request_body_bytes = context.settings.limits.max_request_body_bytes
        self.displayTracebacks = False
        self.connections = ConnectionCounts()

    def protocol(self) -> LimitedHTTPChannel:  # type: ignore[override]
        """HTTP/1.1 only: the body limit lives in this channel class."""
        channel = LimitedHTTPChannel()
        limits = self.context.settings.limits
        channel.max_request_body_bytes = self.max_request_body_bytes
        channel.drain_seconds = limits.refused_body_drain_seconds
        channel.drain_bytes = limits.refused_body_drain_bytes
        channel.header_timeout = limits.header_read_timeout_seconds
        channel.max_request_line = limits.max_request_line_bytes
        channel.max_header_bytes = limits.max_header_bytes
        channel.connections = self.connections
        channel.max_per_address = limits.max_connections_per_address
        return channel

    def log(self, request: HttpRequest) -> None:
        started = getattr(request, "started_at", None)
        duration = None if started is None else (time.monotonic() - started) * 1000.0
        dialect, command = classify(request)
        metrics.observe_request(dialect, command, int(request.code or 0),
                                None if duration is None else duration / 1000.0)
        if not self.context.settings.log.access_log or not access_log.isEnabledFor(logging.INFO):
            return  # the line would be dropped: its fields (address, URI, agent) are not built for it
        fields = access_log_fields(request, duration)
        access_log.info("%s %s %s", fields["method"], fields["uri"], fields["status"], extra=fields)


_DIALECT_OF_SEGMENT = {
    b"microsoft-server-activesync": "eas", b"autodiscover": "autodiscover", b"servlet": "ox",
    b"dav": "dav", b".well-known": "dav", b"health": "health",
}


def classify(request: HttpRequest) -> tuple[str, str]:
    """(dialect, command) of a request for the metrics: by its first path segment; the command is the
    one a dialect recorded as `request.metrics_command` (EAS `Cmd`), the OX servlet, or the method."""
    segments = (request.path or b"/").lstrip(b"/").split(b"/")
    first = segments[0].lower()
    method = (request.method or b"").decode("latin-1")
    dialect = _DIALECT_OF_SEGMENT.get(first, "dav" if first == b"" and method not in ("GET", "HEAD") else "other")
    command = getattr(request, "metrics_command", None)
    if command is None and dialect == "ox" and len(segments) > 1:
        command = f"{segments[1].decode('latin-1', 'replace')}.{method}"
    return dialect, command or method


def build_site(settings: Settings, store: Store, async_store: DeferredStore, bus: ChangeBus) -> OxsyncSite:
    """The Site with `/` and `/health`; dialects add theirs via `site.root.register`."""
    throttle = LoginThrottle(settings.auth)
    verified = VerifiedLogins(settings.auth.verified_login_cache_seconds, settings.auth.max_verified_logins)
    authenticator = Authenticator(async_store, throttle, verified)
    context = ServerContext(settings, store, async_store, bus, authenticator)
    root = RootResource()
    root.register("health", HealthResource(async_store, password_hashes=lambda: authenticator.checks.hashes))
    return OxsyncSite(root, context)


class OxsyncService(MultiService):
    """The whole server; `site`, `async_store`, `bus`, `http` and `admin_root` are exposed for wiring and
    tests (admin pages register on `admin_root`, served only when `[server] admin_endpoint` is set).
    `primary` is False in the further serving processes of `[server] processes`: the UDP push port,
    outbound mail and pruning stay with the first."""

    def __init__(self, site: OxsyncSite, async_store: DeferredStore, bus: ChangeBus, http: HttpListenerService,
                 admin: HttpListenerService | None = None, primary: bool = True) -> None:
        super().__init__()
        self.primary = primary
        self.site = site
        self.async_store = async_store
        self.bus = bus
        self.process_relay: ProcessRelay | None = None
        """SQLite with `[server] processes` > 1: the change relay between the processes (push/procbus.py)."""
        self.http = http
        self.admin = admin
        self.admin_root: AdminRoot = admin.site.resource if admin is not None else AdminRoot()
        self.texts_ahead: Any = None
        """Served texts rendered ahead of the first read (`oxsync.texts_ahead.TextsAhead`), set by make_service."""
        self.serving_processes: processes.Resolved | None = None
        """In `run_server`'s first process: how many serving processes run and why (None: a copy, or no
        `run_server`)."""
        DeferredStoreService(async_store).setServiceParent(self)
        http.setServiceParent(self)
        if admin is not None:
            admin.setServiceParent(self)

    def when_listening(self) -> Deferred[int]:
        """Fires with the HTTP port once EVERY listener is up; fails with the first that cannot start."""
        listeners = listeners_of(self)

        def failed(failure: Failure) -> Failure:
            first = failure.value.subFailure if isinstance(failure.value, FirstError) else failure
            index = failure.value.index if isinstance(failure.value, FirstError) else 0
            return Failure(ServerStartError(describe_failure(listeners[index], first)))

        def all_up(_: object) -> Deferred[int]:
            return self.http.when_listening()

        every = DeferredList([listener.when_listening() for listener in listeners], fireOnOneErrback=True,
                             consumeErrors=True)
        return every.addErrback(failed).addCallback(all_up)  # failed() sees only the listeners' errors

    def listener_states(self) -> dict[str, dict[str, Any]]:
        """name -> {"up", "port", ...} for /health."""
        return {listener.listener_name: listener.listener_state() for listener in listeners_of(self)}


class AdminSite(Site):
    """The admin listener's Site: no per-request access log (scrapes every few seconds are noise)."""

    def log(self, request: HttpRequest) -> None:
        return None


def make_service(settings: Settings, store: Store, reactor: Any = None, *, shared_fd: int | None = None,
                 primary: bool = True, board: AcceptBoard | None = None) -> OxsyncService:
    """The server; `shared_fd`: serve HTTP on this already listening socket (`[server] processes`, the
    processes' open connections on `board`); `primary` False: a further serving process (no admin
    listener, outbound mail, pruning nor UDP push)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    bus = ChangeBus()
    async_store = DeferredStore(store, reactor, settings.store.thread_pool_size, bus=bus, settings=settings)
    site = build_site(settings, store, async_store, bus)
    http = HttpListenerService(reactor, settings.server.http_endpoint, site, shared_fd=shared_fd, board=board)
    admin = None
    if settings.server.admin_endpoint and primary:
        admin = HttpListenerService(reactor, settings.server.admin_endpoint, AdminSite(AdminRoot()), name="admin")
    service = OxsyncService(site, async_store, bus, http, admin, primary)
    from oxsync.texts_ahead import TextsAhead

    service.texts_ahead = TextsAhead(store, async_store, reactor, settings)
    service.texts_ahead.setServiceParent(service)
    health = site.root.children[b"health"]
    health.listener_states = service.listener_states
    if settings.auth.account_poll_seconds > 0 and store.engine.dialect.name == "sqlite":
        verified = site.context.authenticator.verified
        AccountPollService(async_store, settings.auth.account_poll_seconds, lambda: len(verified) > 0
                           ).setServiceParent(service)
    if not primary:
        return service
    from oxsync.mail.service import outbound_service

    outbound_service(store, reactor, settings).setServiceParent(service)
    if settings.store.prune_interval_seconds > 0:
        from oxsync.maintenance import prune_service

        prune_service(async_store, settings.store.prune_interval_seconds).setServiceParent(service)
    return service


def _ask_first_process(reactor: Any, service: OxsyncService, settings: Settings, fd: int,
                       relay: ProcessRelay | None) -> None:
    """A further serving process checks passwords through the first one (one Argon2 check per distinct
    credential on the node; oxsync/web/password_broker.py), and on SQLite relays changes on the same
    channel (`relay`, oxsync/push/procbus.py)."""
    authenticator = service.site.context.authenticator
    assert isinstance(authenticator.checks, PasswordChecks)
    server = settings.server
    authenticator.checks = ask_first_process(
        reactor, authenticator.checks, fd, timeout_seconds=server.password_broker_timeout_seconds,
        max_in_flight=server.password_broker_max_in_flight, max_bytes=server.password_broker_max_bytes,
        relay=relay)


def _relay(reactor: Any, service: OxsyncService, store: Store, *, hub: bool,
           on_lost: Callable[[], object] | None = None) -> ProcessRelay | None:
    """SQLite's change relay between the serving processes (PostgreSQL: None, its nodes LISTEN); at a
    normal shutdown its channels close on purpose, not lost (`ProcessRelay.closing`)."""
    if store.engine.dialect.name != "sqlite":
        return None
    relay = service.process_relay = ProcessRelay(service.bus, hub=hub, on_lost=on_lost)
    reactor.addSystemEventTrigger("before", "shutdown", relay.closing)
    return relay


def _stop(reactor: Any) -> None:
    """A copy that lost its channel stops: the first process starts it again (oxsync.processes). Lost
    before the reactor runs (an unusable inherited descriptor): it stops as soon as it runs."""
    if not reactor.running:
        reactor.callWhenRunning(_stop, reactor)
        return
    with contextlib.suppress(ReactorNotRunning):
        reactor.stop()


def tune_collector(young_objects: int) -> None:
    """Python's garbage collector for a long-running server (`[server] gc_young_objects`): what exists
    once the server has started (modules, settings, compiled statements, the dialects' tables) is frozen
    out of every collection, and the youngest generation is collected after `young_objects` new
    container objects instead of 700, so that a request's short-lived objects mostly die by reference
    counting before any collection sees them (0: Python's default threshold)."""
    gc.freeze()
    if young_objects > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_objects, middle, old)


def run_server(settings: Settings, store: Store, on_ready: Callable[[int], object] | None = None,
               *, configure_logs: bool = True,
               setup: Callable[[OxsyncService], object] | None = None) -> None:
    """Run until SIGINT/SIGTERM. `setup(service)` may register dialect resources before listening;
    `on_ready(port)` is called once EVERY listener is bound (with the HTTP port), then systemd is told
    READY=1. `[server] processes = "auto"` is resolved here, once (`processes.resolve`, logged with its
    reason; `service.serving_processes`). Raises `ServerStartError` (one line, nothing logged: the caller reports it) at once if any
    endpoint is invalid or cannot be bound; whatever had started is stopped again."""
    from twisted.internet import reactor

    worker = os.environ.get(processes.LISTEN_FD_ENV)
    resolved = None
    if worker is not None:
        processes.die_with_parent()
        settings = processes.inherited_settings(settings)
    else:
        resolved = processes.resolve(settings, store)
        settings = processes.resolved_settings(settings, resolved)
    if configure_logs:
        configure_from_settings(settings.log)
    if resolved is not None:
        log.info("serving processes: %s (%s)", resolved.count, resolved.why, extra={
            "event": "server.processes", "processes": resolved.count, "reason": resolved.why})
        if resolved.count > 1 and settings.server.admin_endpoint:
            log.warning("[server] processes = %s with an admin listener: %s", resolved.count,
                        processes.METRICS_OF_THE_FIRST, extra={"event": "server.processes_metrics"})
    if worker is not None or settings.server.processes != 1:
        store.share_writer_turns()  # SQLite: the processes' writers take turns across processes
    if worker is not None:  # a further serving process started by the first (`[server] processes`)
        settings = apply_overrides(settings, {"server": {"admin_endpoint": ""}, "console": {"endpoint": ""}})
        service = make_service(settings, store, reactor, shared_fd=int(worker), primary=False,
                               board=processes.inherited_board())
        processes.stop_with_parent(reactor, service)
        channel = os.environ.get(processes.CHANNEL_FD_ENV)
        if channel is not None:
            relay = _relay(reactor, service, store, hub=False, on_lost=lambda: _stop(reactor))
            _ask_first_process(reactor, service, settings, int(channel), relay)
    elif settings.server.processes != 1:
        shared = processes.shared_listener(settings, store)
        board = AcceptBoard.create(settings.server.processes)
        service = make_service(settings, store, reactor, shared_fd=shared.fileno(), board=board)
        authenticator = service.site.context.authenticator
        assert isinstance(authenticator.checks, PasswordChecks)
        broker = serve_copies(reactor, authenticator.checks, settings.server.password_broker_max_in_flight,
                              settings.server.password_broker_max_bytes, _relay(reactor, service, store, hub=True))
        processes.ServingProcesses(reactor, shared, settings.server.processes - 1, broker, board, settings
                                   ).setServiceParent(service)
    else:
        service = make_service(settings, store, reactor)
    service.serving_processes = resolved
    if setup is not None:
        setup(service)

    def listening(port: int) -> None:
        if worker is not None:  # a further serving process: the first one tells the operator and systemd
            with contextlib.suppress(OSError):
                os.close(int(worker))  # its listener holds its own duplicate: none left open when it stops
            return
        if on_ready is not None:
            on_ready(port)
        systemd.notify("READY=1", f"STATUS=serving on {settings.server.http_endpoint.split(':')[0]} port {port}")

    failures: list[Any] = []

    def cannot_listen(failure: Any) -> None:
        failures.append(failure)
        reactor.stop()

    def start() -> None:
        try:
            service.startService()
        except Exception as exc:  # e.g. a UDP port taken: raised synchronously by listenUDP
            cannot_listen(Failure(ServerStartError(str(exc) or type(exc).__name__)))
            return
        tune_collector(settings.server.gc_young_objects)
        service.when_listening().addCallbacks(listening, cannot_listen)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: systemd.notify("STOPPING=1"))
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if failures:
        raise ServerStartError(failures[0].getErrorMessage())
