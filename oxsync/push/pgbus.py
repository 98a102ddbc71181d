"""Cross-node change bus: PostgreSQL LISTEN/NOTIFY feeding the local `ChangeBus`.

Every node NOTIFYs inside its write transactions (`oxsync.store.notify`), and one thread per node
holds a LISTEN connection and republishes foreign notices on the reactor thread with
`origin="remote"`; the node's own notices are skipped (its `DeferredStore` already published them).

What must hold: no waiter on any node misses a committed change. While connected, PostgreSQL delivers
every committed notice in commit order. When the connection drops, notices sent meanwhile are lost, so
after reconnecting the node reads every tenant's revision and publishes a tenant-wide event
(`folder_ids` empty, `origin="recheck"`) for each tenant whose revision moved past the last notice
seen. Extra events are harmless: subscribers compare revisions and are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed

from oxsync.push.bus import ChangeBus
from oxsync.store.api import Store
from oxsync.store.notify import (
    AccountNotice,
    ListenError,
    Notice,
    NotificationStream,
    install_notifier,
    is_postgresql,
)

if TYPE_CHECKING:
    from oxsync.push.host import PushHost

log = logging.getLogger("oxsync.push.pgbus")


class PgBusService(Service):
    """The node's LISTEN thread, started and stopped with the server. Never touches the reactor thread
    except through `callFromThread`."""

    name = "pgbus"

    STABLE_SECONDS = 60.0
    """A connection that lived this long resets the backoff; a flapping one keeps doubling it."""

    def __init__(self, store: Store, bus: ChangeBus, reactor: Any, *, node_id: str | None = None,
                 poll_seconds: float = 0.5, ping_seconds: float = 30.0,
                 backoff_seconds: tuple[float, float] = (0.1, 10.0)) -> None:
        self.store = store
        self.bus = bus
        self.reactor = reactor
        self.node_id = install_notifier(store, node_id)
        """Carried by this node's notices (so it can skip them) and shared with the store's notifier."""
        self.poll_seconds = poll_seconds
        self.ping_seconds = ping_seconds
        self.backoff_seconds = backoff_seconds
        self.stream = NotificationStream(store.engine, f"oxsync-bus-{self.node_id}")
        self.connections = 0
        """Successful (re)connections so far; read by health checks and tests."""
        self.failed_connections = 0
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped: list[Deferred[None]] = []

    # ------------------------------------------------------------ lifecycle (reactor thread)

    def startService(self) -> None:
        super().startService()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"oxsync-pgbus-{self.node_id}", daemon=True)
        self._thread.start()

    def stopService(self) -> Deferred[None]:
        """Fires once the thread has closed its connection (within about `poll_seconds`)."""
        super().stopService()
        self._stop.set()
        if self._thread is None or not self._thread.is_alive():
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stopped.append(d)
        return d

    def _thread_done(self) -> None:
        waiting, self._stopped = self._stopped, []
        for d in waiting:
            d.callback(None)

    # ------------------------------------------------------------ the LISTEN thread

    def _run(self) -> None:
        known: dict[int, int] | None = None
        """Last revision seen per tenant; None until the first connection (nothing can be missed yet)."""
        delay = self.backoff_seconds[0]
        try:
            while not self._stop.is_set():
                try:
                    current = self.stream.open()
                except ListenError as e:
                    self.failed_connections += 1
                    log.warning("bus: cannot LISTEN (retry in %.1fs): %s", delay, e,
                                extra={"event": "pgbus.connect_failed"})
                    if known is None:
                        known = {}  # never connected: treat every tenant's revision as possibly missed
                    delay = self._backoff(delay)
                    continue
                self.connections += 1
                self.connected = True
                since = time.monotonic()
                try:
                    if known is not None:
                        self._recheck(known, current)
                    known = {t: max(r, (known or {}).get(t, 0)) for t, r in current.items()}
                    log.info("bus: listening", extra={"event": "pgbus.listening", "node": self.node_id})
                    self._listen(known)
                except ListenError as e:
                    log.warning("bus: connection lost: %s", e, extra={"event": "pgbus.connection_lost"})
                except Exception:  # a bug here must not silence the bus for good: reconnect and re-check
                    log.exception("bus: listener failed", extra={"event": "pgbus.failed"})
                finally:
                    self.connected = False
                    self.stream.close()
                if known is None:
                    known = {}
                if time.monotonic() - since >= self.STABLE_SECONDS:
                    delay = self.backoff_seconds[0]
                if not self._stop.is_set():
                    delay = self._backoff(delay)
        finally:
            self.stream.close()
            self.reactor.callFromThread(self._thread_done)

    def _backoff(self, delay: float) -> float:
        self._stop.wait(delay)
        return min(delay * 2, self.backoff_seconds[1])

    def _listen(self, known: dict[int, int]) -> None:
        idle = 0.0
        while not self._stop.is_set():
            notices = self.stream.receive(self.poll_seconds)
            for notice in notices:
                self._deliver(notice, known)
            idle = 0.0 if notices else idle + self.poll_seconds
            if idle >= self.ping_seconds:
                self.stream.ping()
                idle = 0.0

    def _deliver(self, notice: Notice | AccountNotice, known: dict[int, int]) -> None:
        """Own notices only advance `known` (they arrive in commit order with the foreign ones)."""
        if isinstance(notice, AccountNotice):
            if notice.node != self.node_id:
                self.reactor.callFromThread(self.bus.publish_accounts, notice.tenant_id or None, notice.user_ids,
                                            origin="remote")  # tenant 0: every tenant
            return
        if notice.revision > known.get(notice.tenant_id, 0):
            known[notice.tenant_id] = notice.revision
        if notice.node != self.node_id:
            self.reactor.callFromThread(self.bus.publish, notice.tenant_id, notice.folder_ids, notice.revision,
                                        origin="remote")

    def _recheck(self, known: dict[int, int], current: dict[int, int]) -> None:
        """After a reconnect: one tenant-wide event per tenant that advanced while we were deaf."""
        # account notices may have been lost too: every verified login must be checked again
        self.reactor.callFromThread(self.bus.publish_accounts, None, frozenset(), origin="recheck")
        advanced = {t: r for t, r in current.items() if r > known.get(t, 0)}
        log.info("bus: reconnected, %d tenant(s) changed meanwhile", len(advanced),
                 extra={"event": "pgbus.recheck", "tenants": len(advanced)})
        for tenant_id, revision in sorted(advanced.items()):
            self.reactor.callFromThread(self.bus.publish, tenant_id, frozenset(), revision, origin="recheck")


def install_pgbus(service: PushHost) -> None:
    """Add a `PgBusService` to the server's service when the store is PostgreSQL (no-op on SQLite)."""
    store: Store = service.async_store.store
    if not is_postgresql(store):
        return
    PgBusService(store, service.bus, service.async_store.reactor).setServiceParent(service)
