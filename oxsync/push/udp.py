"""OX UDP push (reference ox-webdav-xml.md §4): REGISTER on port 44335, `<folder_id>\\x01` notifications.

What must hold:
- a REGISTER (`1337\\x01LEN\\x011\\x01<user>\\x01<context>`) is answered `OK\\x01` (3 bytes, never more
  than received) and counts only if that user authenticated over HTTP from the same IP recently
  (`[ox] push_require_recent_http_auth`, on by default; `RecentLogins` is fed by the OX servlets);
- one entry per (context, user, IP, port): a REGISTER from another socket NEVER displaces an existing
  registration (behind a shared NAT a co-worker could otherwise take over someone's pushes); at most
  `push_max_registrations_per_user` per user (a new one is refused while they are all live) and
  `push_max_registrations` in all; entries expire after `push_registration_ttl_seconds` unless refreshed;
- at most `push_max_packets_per_socket_per_minute` packets are read per source (IP, port), so one
  socket's junk cannot lock out the other clients behind the same address, and as many are sent per
  registered client; `push_max_packets_per_address_per_minute` bounds a whole address (many sockets);
- notifications come from the ChangeBus (local commits and, via pgbus, other nodes'), are coalesced for
  `push_coalesce_seconds` (a fixed window opened by the first change: busy tenants still get each push
  within the delay),
  and go to each registered user who may read the folder (read >= own), checked on the store pool.
  A folder change also names its parent (the store's change set contains it).
Multi-node: registrations live in this process; see docs/ox-push.md for the DB-backed design.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from oxsync.config import Settings
from oxsync.endpoints import udp_bind_interface
from oxsync.metrics import LISTENERS_UP, PUSH_SECONDS, UDP_PACKETS, UDP_REGISTRATIONS
from oxsync.push.bus import Change, ChangeBus
from oxsync.push.host import StorePool
from oxsync.store.api import Store
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.push.udp")

MAGIC = b"1337"
SEP = b"\x01"
REGISTER = b"1"
ACK = b"OK\x01"
FIRST_REAL_FOLDER = 20


class RecentLogins:
    """(tenant, user) -> {address: last HTTP authentication}, bounded (oldest forgotten first)."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max(1, max_entries)
        self.clock = clock
        self._seen: OrderedDict[tuple[int, int, str], float] = OrderedDict()

    def record(self, tenant_id: int, user_id: int, address: str) -> None:
        key = (tenant_id, user_id, address)
        self._seen.pop(key, None)
        self._seen[key] = self.clock()
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def recent(self, tenant_id: int, user_id: int, address: str) -> bool:
        seen = self._seen.get((tenant_id, user_id, address))
        return seen is not None and seen + self.ttl > self.clock()


class SharedLogins(RecentLogins):
    """RecentLogins that every node can consult: logins are also written to the store (at most once per
    `write_every` seconds per key, on the pool) so a REGISTER reaching another node still counts."""

    def __init__(self, ttl: float, max_entries: int, async_store: StorePool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl, max_entries, clock)
        self.async_store = async_store
        self.write_every = max(1.0, ttl / 4)
        self._written: OrderedDict[tuple[int, int, str], float] = OrderedDict()

    def record(self, tenant_id: int, user_id: int, address: str) -> None:
        super().record(tenant_id, user_id, address)
        key = (tenant_id, user_id, address)
        last = self._written.get(key)
        if last is not None and last + self.write_every > self.clock():
            return
        self._written.pop(key, None)
        self._written[key] = self.clock()
        while len(self._written) > self.max_entries:
            self._written.popitem(last=False)
        d = self.async_store.run(self.async_store.store.record_push_login, tenant_id, user_id, address)
        d.addErrback(lambda f: log.error("could not share a push login: %s", f.getErrorMessage(),
                                         extra={"event": "push.udp.error"}))

    def recent_anywhere(self, tenant_id: int, user_id: int, address: str) -> Deferred[bool]:
        """This node's memory first, then the store (a login another node saw)."""
        if self.recent(tenant_id, user_id, address):
            return succeed(True)
        return self.async_store.run(self.async_store.store.recent_push_login, tenant_id, user_id, address, self.ttl)


class RateLimiter:
    """Packets per address in a sliding minute; bounded memory."""

    def __init__(self, per_minute: int, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = max(1, per_minute)
        self.max_keys = max(1, max_keys)
        self.clock = clock
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, address: str) -> bool:
        now = self.clock()
        times = self._times.pop(address, None) or deque(maxlen=self.per_minute)
        self._times[address] = times
        while times and times[0] + 60 <= now:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)
        return True


@dataclass
class Registration:
    tenant_id: int
    user_id: int
    host: str
    port: int
    expires: float


def parse_register(data: bytes) -> tuple[int, int] | None:
    """(user_id, context_id) of a REGISTER packet, None for anything else (dropped silently)."""
    parts = data.split(SEP)
    if len(parts) < 3 or parts[0] != MAGIC:
        return None
    try:
        length = int(parts[1])
    except ValueError:
        return None
    header = len(parts[0]) + len(parts[1]) + 2
    payload = data[header:header + length]
    if length <= 0 or len(payload) < length:
        return None
    fields = payload.split(SEP)
    if len(fields) < 3 or fields[0] != REGISTER:
        return None
    try:
        return int(fields[1]), int(fields[2])
    except ValueError:
        return None


def readers(store: Store, tenant_id: int, user_ids: list[int], folder_ids: frozenset[int]) -> dict[int, list[int]]:
    """On the pool: user -> the changed folders that user must be told about."""
    real = sorted(f for f in folder_ids if f >= FIRST_REAL_FOLDER)
    roots = sorted(f for f in folder_ids if f < FIRST_REAL_FOLDER)
    out: dict[int, list[int]] = {}
    with store.transaction(tenant_id) as tx:
        sessions = {u: UserSession(tx, u) for u in user_ids}
        readable = {u: [f for f in real if s.rights(f).read >= 2] for u, s in sessions.items()}
        seen_by_anyone = any(readable.values()) or any(s.rights(f).can_see_folder for s in sessions.values() for f in real)
        for u, s in sessions.items():
            folders = list(readable[u])
            sees_real = any(s.rights(f).can_see_folder for f in real)
            for r in roots:  # a parent root only for those who see the changed folder (or it is gone)
                if (sees_real or not seen_by_anyone or not real) and s.rights(r).can_see_folder:
                    folders.append(r)
            if folders:
                out[u] = folders
    return out


class PushProtocol(DatagramProtocol):
    def __init__(self, push: UdpPush) -> None:
        self.push = push

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 - Twisted API
        self.push.received(data, addr)


class UdpPush(Service):
    """The UDP listener plus the bus subscriber; a child service of the OxsyncService."""

    name = "ox-udp-push"

    def __init__(self, settings: Settings, async_store: StorePool, bus: ChangeBus, reactor: Any,
                 logins: RecentLogins) -> None:
        self.settings = settings
        self.ox = settings.ox
        self.async_store = async_store
        self.bus = bus
        self.reactor = reactor
        self.logins = logins
        self.registrations: dict[tuple[int, int, str, int], Registration] = {}
        """(tenant, user, host, port) -> registration: several clients of one user are all kept."""
        self.limiter = RateLimiter(self.ox.push_max_packets_per_socket_per_minute, 100_000)
        """Packets read per source (IP, port)."""
        self.address_limiter = RateLimiter(self.ox.push_max_packets_per_address_per_minute, 100_000)
        self.send_limiter = RateLimiter(self.ox.push_max_packets_per_socket_per_minute, 100_000)
        """Packets sent per registered client (IP, port)."""
        self.protocol = PushProtocol(self)
        self.interface = udp_bind_interface(settings.server)
        self.port: Any = None
        self.failure: Failure | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._pending: dict[int, set[int]] = {}
        self._unresolved: dict[int, tuple[int, int]] = {}
        """Tenant-wide events not yet resolved into folders: tenant -> (since_rev, until_rev)."""
        self._last_rev: dict[int, int] = {}
        """Newest revision seen per tenant on the bus (where a tenant-wide event starts from)."""
        self._timers: dict[int, Any] = {}
        self._pending_since: dict[int, float] = {}
        """Tenant -> when the oldest change of its pending window reached the bus (push latency)."""
        self._seen: deque[tuple[int, int, frozenset[int]]] = deque(maxlen=1024)
        self.sent = 0

    # -------------------------------------------------------------- lifecycle

    listener_name = "udp-push"

    @property
    def description(self) -> str:
        return f"udp:{self.settings.server.udp_port}:interface={self.interface or '0.0.0.0'}"

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self.failure = None
        try:
            self.port = self.reactor.listenUDP(self.settings.server.udp_port, self.protocol, interface=self.interface)
        except Exception:  # CannotListenError (port taken), bad interface ...: the server must not start
            self.failure = Failure()
            LISTENERS_UP.labels(self.listener_name).set(0)  # reported by the assembly (when_listening)
            return
        LISTENERS_UP.labels(self.listener_name).set(1)
        self._unsubscribe = self.bus.subscribe(self.on_change)
        log.info("udp push listening", extra={"event": "push.udp.listening", "port": self.port.getHost().port})

    def when_listening(self) -> Deferred[int]:
        """The bound port, or the reason the UDP port could not be bound (checked by the assembly)."""
        if self.failure is not None:
            return fail(self.failure)
        if self.port is None:
            return fail(Failure(RuntimeError("UDP push not started")))
        return succeed(self.bound_port)

    def listener_state(self) -> dict[str, object]:
        return {"up": self.port is not None, "port": self.bound_port if self.port is not None else None,
                "endpoint": "udp"}

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        UDP_REGISTRATIONS.dec(len(self.registrations))
        self.registrations.clear()
        port, self.port = self.port, None
        if port is None:
            return None
        LISTENERS_UP.labels(self.listener_name).set(0)
        return port.stopListening()

    @property
    def bound_port(self) -> int:
        return int(self.port.getHost().port)

    # -------------------------------------------------------------- registration

    def received(self, data: bytes, addr: tuple[str, int]) -> None:
        host, port = addr[0], addr[1]
        if not self.limiter.allow(f"{host}:{port}") or not self.address_limiter.allow(host):
            UDP_PACKETS.labels("dropped").inc()
            return
        parsed = parse_register(data[:2048])
        if parsed is None:
            return
        user_id, tenant_id = parsed
        if not self.ox.push_require_recent_http_auth or self.logins.recent(tenant_id, user_id, host):
            self._register(tenant_id, user_id, host, port, len(data))
            return
        shared = getattr(self.logins, "recent_anywhere", None)
        if shared is None:
            self._refuse(host)
            return
        def decide(ok: bool, retry: bool) -> None:
            if ok:
                self._register(tenant_id, user_id, host, port, len(data))
            elif retry:  # the login may have just happened on another node, its record not yet committed
                self.reactor.callLater(self.ox.push_login_recheck_seconds, check, False)
            else:
                self._refuse(host)

        def check(retry: bool) -> None:
            d = shared(tenant_id, user_id, host)
            d.addCallback(decide, retry)
            d.addErrback(lambda f: log.error("push login check failed: %s", f.getErrorMessage(),
                                             extra={"event": "push.udp.error"}))

        check(self.ox.push_login_recheck_seconds > 0)

    def _refuse(self, host: str) -> None:
        UDP_PACKETS.labels("refused").inc()
        log.info("push registration refused", extra={"event": "push.udp.unverified", "address": host})
        # silent: an unverified address gets nothing back

    def _register(self, tenant_id: int, user_id: int, host: str, port: int, received: int) -> None:
        key = (tenant_id, user_id, host, port)
        if key not in self.registrations:
            full = len(self.registrations) >= self.ox.push_max_registrations
            if full or self._count_of(tenant_id, user_id) >= self.ox.push_max_registrations_per_user:
                self._expire()
            if len(self.registrations) >= self.ox.push_max_registrations or \
                    self._count_of(tenant_id, user_id) >= self.ox.push_max_registrations_per_user:
                UDP_PACKETS.labels("refused").inc()  # existing registrations are never displaced
                log.info("push registration refused: too many", extra={
                    "event": "push.udp.full", "address": host, "user": user_id, "tenant": tenant_id})
                return
        if key not in self.registrations:
            UDP_REGISTRATIONS.inc()
        self.registrations[key] = Registration(tenant_id, user_id, host, port,
                                               time.monotonic() + self.ox.push_registration_ttl_seconds)
        if len(ACK) <= received:  # never answer with more bytes than were sent (no amplification)
            self._send(ACK, host, port, "ack")

    def _count_of(self, tenant_id: int, user_id: int) -> int:
        return sum(1 for r in self.registrations.values() if r.tenant_id == tenant_id and r.user_id == user_id)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, r in self.registrations.items() if r.expires <= now]:
            del self.registrations[key]
            UDP_REGISTRATIONS.dec()

    def _send(self, payload: bytes, host: str, port: int, kind: str = "notify") -> None:
        if self.port is None:
            return
        try:
            self.port.write(payload, (host, port))
            self.sent += 1
            UDP_PACKETS.labels(kind).inc()
        except OSError as exc:
            UDP_PACKETS.labels("dropped").inc()
            log.warning("udp send failed: %s", exc, extra={"event": "push.udp.send_failed"})

    # -------------------------------------------------------------- notifications

    def on_change(self, change: Change) -> None:
        fingerprint = (change.tenant_id, change.revision, change.folder_ids)
        if fingerprint in self._seen:
            return  # the same commit seen twice (local + cross-node echo)
        self._seen.append(fingerprint)
        since = self._last_rev.get(change.tenant_id, 0)
        self._last_rev[change.tenant_id] = max(since, change.revision)
        if not any(r.tenant_id == change.tenant_id for r in self.registrations.values()):
            return
        if not change.folder_ids:  # tenant-wide event: resolve the folders from the store when flushing
            low, _ = self._unresolved.get(change.tenant_id, (since, change.revision))
            self._unresolved[change.tenant_id] = (min(low, since), change.revision)
        self._pending.setdefault(change.tenant_id, set()).update(change.folder_ids)
        self._pending_since.setdefault(change.tenant_id, change.published_at)
        timer = self._timers.get(change.tenant_id)
        if timer is not None and timer.active():
            return  # joins the pending window: a push never waits more than the delay after its change
        delay = max(0.0, float(self.ox.push_coalesce_seconds))
        self._timers[change.tenant_id] = self.reactor.callLater(delay, self._flush, change.tenant_id)

    def _flush(self, tenant_id: int) -> None:
        self._timers.pop(tenant_id, None)
        folders = frozenset(self._pending.pop(tenant_id, set()))
        since = self._pending_since.pop(tenant_id, time.monotonic())
        unresolved = self._unresolved.pop(tenant_id, None)
        self._expire()
        regs = {r.user_id for r in self.registrations.values() if r.tenant_id == tenant_id}
        if not regs or (not folders and unresolved is None):
            return
        store = self.async_store.store

        def resolve_and_check() -> dict[int, list[int]]:
            wanted = folders | (store.changed_folders(tenant_id, *unresolved) if unresolved else frozenset())
            return readers(store, tenant_id, sorted(regs), wanted) if wanted else {}

        d = self.async_store.run(resolve_and_check)
        d.addCallback(self._deliver, tenant_id, since)
        d.addErrback(lambda f: log.error("push rights check failed: %s", f.getErrorMessage(),
                                         extra={"event": "push.udp.error"}))

    def _deliver(self, targets: dict[int, list[int]], tenant_id: int, since: float) -> None:
        if targets:
            PUSH_SECONDS.labels("udp").observe(max(0.0, time.monotonic() - since))
        for reg in list(self.registrations.values()):  # every client of each user (still registered)
            if reg.tenant_id != tenant_id or reg.user_id not in targets:
                continue
            for folder_id in sorted(targets[reg.user_id]):
                if not self.send_limiter.allow(f"{reg.host}:{reg.port}"):  # per client: many share a NAT address
                    break
                self._send(b"%d\x01" % folder_id, reg.host, reg.port)
