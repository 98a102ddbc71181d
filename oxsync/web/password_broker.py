"""Password checks shared by the serving processes of one node (`[server] processes` > 1).

Each process reads the account itself (its own store pool) and decides suspension and protocol rights
from that fresh row; only the slow part, "does this password match this stored hash", is shared. The
first process owns the node's `PasswordChecks`: a memory of verified (stored hash, password) pairs in
front of one single-flighted Argon2 check on its hash pool. It answers its copies over the socketpair it
hands down when it starts each of them (as it hands down the listening socket), with AMP; a copy whose
own memory misses asks it (`BrokeredChecks`) and remembers the outcome under the same rules as a single
process. So N connections of one new credential cost one Argon2 check on the node, whichever process
they land on, and 8 devices with the same new credentials cost one hash's memory.

What must hold:
- an answer cannot resurrect an invalidated login: it is a fact about the stored hash the asking
  process read itself (a password change writes a new hash with a new salt, so an old answer is never
  looked up again), and suspension and rights are never part of it;
- nothing password-derived leaves memory: the channel is an anonymous socketpair (no path, no file), the
  memories hold salted SHA-256 digests whose salt lives only in the process;
- only successes are remembered; a wrong password is checked again every time (and throttled);
- every question is bounded (`[server] password_broker_*`: in flight, size, time); when the broker is
  gone, busy, slow or the question too large, the copy checks locally on its own hash pool, logged once
  per outage, never with the password or the hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols import amp
from twisted.python.failure import Failure

from oxsync.metrics import PASSWORD_BROKER, PASSWORD_HASHES

log = logging.getLogger("oxsync.auth")

Verify = Callable[[str | None, str], "Deferred[bool]"]


class SingleFlightChecks:
    """Concurrent checks of the same password against the same stored hash share one Argon2 run.

    Eight devices arriving with the same new credentials would otherwise run eight 64 MiB hashes at
    once. Keyed by (stored hash, salted digest of the password); only the checks in flight are kept."""

    def __init__(self, verify: Verify) -> None:
        self._verify = verify
        self._salt = os.urandom(16)
        self._flights: dict[tuple[str, bytes], list[Deferred[bool]]] = {}
        self.hashes = 0
        """Checks actually started (tests and metrics count these, not seconds)."""

    def check(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        key = (stored_hash or "", hashlib.sha256(self._salt + password.encode("utf-8", "surrogatepass")).digest())
        waiting = self._flights.get(key)
        d: Deferred[bool] = Deferred()
        if waiting is not None:
            waiting.append(d)
            return d
        self._flights[key] = [d]
        self.hashes += 1
        self._verify(stored_hash, password).addBoth(self._landed, key)
        return d

    def _landed(self, result: bool | Failure, key: tuple[str, bytes]) -> None:
        for waiter in self._flights.pop(key, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


class VerifiedPasswords:
    """(stored hash, password) pairs that verified, for `ttl_seconds`, at most `max_entries` (oldest
    forgotten first). Keyed by one salted digest of both: a new stored hash is a new key."""

    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max(1, max_entries)
        self.clock = clock
        self._salt = os.urandom(16)
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def _key(self, stored_hash: str, password: str) -> bytes:
        return hashlib.sha256(self._salt + stored_hash.encode("utf-8", "surrogatepass") + b"\0"
                              + password.encode("utf-8", "surrogatepass")).digest()

    def known(self, stored_hash: str | None, password: str) -> bool:
        if self.ttl <= 0 or not stored_hash:
            return False
        until = self._until.get(self._key(stored_hash, password))
        return until is not None and until > self.clock()

    def remember(self, stored_hash: str | None, password: str) -> None:
        if self.ttl <= 0 or not stored_hash:
            return
        key = self._key(stored_hash, password)
        self._until[key] = self.clock() + self.ttl
        self._until.move_to_end(key)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def __len__(self) -> int:
        return len(self._until)


class PasswordChecks:
    """A process's (or, in the first process, the node's) password checks: remembered successes first,
    then one single-flighted Argon2 check per distinct (stored hash, password) on the hash pool."""

    def __init__(self, verify: Verify, ttl_seconds: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.flights = SingleFlightChecks(verify)
        self.verified = VerifiedPasswords(ttl_seconds, max_entries, clock)

    @property
    def hashes(self) -> int:
        """Argon2 checks this process ran."""
        return self.flights.hashes

    def check(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        if self.verified.known(stored_hash, password):
            return succeed(True)
        before = self.flights.hashes
        d = self.flights.check(stored_hash, password)
        if self.flights.hashes != before:
            PASSWORD_HASHES.inc()

        def landed(ok: bool) -> bool:
            if ok:
                self.verified.remember(stored_hash, password)
            return ok
        return d.addCallback(landed)


class BrokerBusy(Exception):
    """The broker refuses a question (too many in flight from this copy, or too large): check locally."""


class CheckPassword(amp.Command):
    """Does `password` match `stored_hash` (None: no such account, a dummy check of the same cost)?"""

    arguments = [(b"stored_hash", amp.Unicode(optional=True)), (b"password", amp.Unicode())]
    response = [(b"ok", amp.Boolean())]
    errors = {BrokerBusy: b"BUSY"}


BROKER_RESULTS = ("answered", "local")
"""`oxsync_password_broker{result}`: a copy's question answered by the first process, or checked locally."""


class BrokerCounted(amp.Command):
    """A copy tells the first process how one of its password questions ended (one of BROKER_RESULTS),
    so that the node's `/metrics` (served by the first process only) counts every copy's."""

    arguments = [(b"result", amp.Unicode())]
    response = []  # no answer
    requiresAnswer = False


def question_bytes(stored_hash: str | None, password: str) -> int:
    return len((stored_hash or "").encode("utf-8", "surrogatepass")) + len(password.encode("utf-8", "surrogatepass"))


class SharedChannel(amp.AMP):
    """One end of a copy's channel. Besides the password questions it may carry the change relay of an
    SQLite node (`oxsync.push.procbus.ProcessRelay`, given as `relay`): its commands are answered by
    the relay, and the relay learns when the channel opens and closes."""

    relay: Any = None

    def locateResponder(self, name: bytes) -> Any:  # noqa: N802 - Twisted API
        responder = super().locateResponder(name)
        if responder is None and self.relay is not None:
            responder = self.relay.responder(self, name)
        return responder

    def connectionMade(self) -> None:  # noqa: N802 - Twisted API
        super().connectionMade()
        if self.relay is not None:
            self.relay.joined(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802 - Twisted API
        super().connectionLost(reason)
        if self.relay is not None:
            self.relay.left(self)


class PasswordBroker(SharedChannel):
    """The first process's end of one copy's channel: answers from the node's `PasswordChecks`."""

    def __init__(self, checks: PasswordChecks, max_in_flight: int, max_bytes: int, relay: Any = None) -> None:
        super().__init__()
        self.relay = relay
        self.checks = checks
        self.max_in_flight = max(1, max_in_flight)
        self.max_bytes = max_bytes
        self.in_flight = 0

    @CheckPassword.responder
    def check_password(self, stored_hash: str | None, password: str) -> Deferred[dict[str, bool]]:
        if self.in_flight >= self.max_in_flight or question_bytes(stored_hash, password) > self.max_bytes:
            raise BrokerBusy()
        self.in_flight += 1

        def answered(result: Any) -> Any:
            self.in_flight -= 1
            return result
        return self.checks.check(stored_hash, password).addBoth(answered).addCallback(lambda ok: {"ok": bool(ok)})

    @BrokerCounted.responder
    def counted(self, result: str) -> dict[str, Any]:
        if result in BROKER_RESULTS:  # bounded labels, whatever a copy sends
            PASSWORD_BROKER.labels(result).inc()
        return {}


class BrokerFactory(Factory):
    """Builds the broker's end of each copy's channel (`reactor.adoptStreamConnection`)."""

    def __init__(self, checks: PasswordChecks, max_in_flight: int, max_bytes: int, relay: Any = None) -> None:
        self.checks = checks
        self.max_in_flight = max_in_flight
        self.max_bytes = max_bytes
        self.relay = relay

    def buildProtocol(self, addr: Any) -> PasswordBroker:  # noqa: N802 - Twisted API
        return PasswordBroker(self.checks, self.max_in_flight, self.max_bytes, self.relay)


class _BrokerClient(SharedChannel):
    def __init__(self, owner: BrokeredChecks, relay: Any = None) -> None:
        super().__init__()
        self.owner = owner
        self.relay = relay

    def connectionMade(self) -> None:  # noqa: N802 - Twisted API
        super().connectionMade()
        self.owner.broker = self

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802 - Twisted API
        super().connectionLost(reason)
        if self.owner.broker is self:
            self.owner.broker = None
            self.owner.fell_back("the first process's channel closed")


class BrokeredChecks:
    """A copy's password checks: its own memory of verified pairs, then the first process's answer;
    the copy's own hash pool (`local`) when the broker cannot answer. Same interface as PasswordChecks."""

    def __init__(self, local: PasswordChecks, clock: Any, *, timeout_seconds: float, max_in_flight: int,
                 max_bytes: int) -> None:
        self.local = local
        self.clock = clock
        self.timeout = timeout_seconds
        self.max_in_flight = max(1, max_in_flight)
        self.max_bytes = max_bytes
        self.broker: amp.AMP | None = None
        self.in_flight = 0
        self.answers = 0
        """Questions the broker answered."""
        self.fallbacks = 0
        """Checks run locally because the broker could not answer."""
        self._questions = SingleFlightChecks(self._ask)  # this copy asks once per distinct credential
        self._outage_logged = False

    @property
    def hashes(self) -> int:
        """Argon2 checks this process ran itself (only while the broker could not answer)."""
        return self.local.hashes

    def client_factory(self, relay: Any = None) -> Factory:
        """The factory for this copy's end of the channel (`reactor.adoptStreamConnection`)."""
        return Factory.forProtocol(lambda: _BrokerClient(self, relay))

    def check(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        if self.local.verified.known(stored_hash, password):
            return succeed(True)

        def landed(ok: bool) -> bool:
            if ok:
                self.local.verified.remember(stored_hash, password)
            return ok
        return self._questions.check(stored_hash, password).addCallback(landed)

    def _ask(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        broker = self.broker
        if broker is None:
            return self._locally(stored_hash, password, "no channel to the first process")
        if self.in_flight >= self.max_in_flight or question_bytes(stored_hash, password) > self.max_bytes:
            return self._locally(stored_hash, password, "question over the broker's bounds")
        try:
            d = broker.callRemote(CheckPassword, stored_hash=stored_hash, password=password)
        except Exception as exc:  # noqa: BLE001 - a value AMP cannot carry: this process checks it
            return self._locally(stored_hash, password, f"cannot ask ({type(exc).__name__})")
        self.in_flight += 1
        d.addTimeout(self.timeout, self.clock)

        def answered(response: dict[str, Any]) -> bool:
            self.in_flight -= 1
            self.answers += 1
            self._count("answered")
            self._outage_logged = False
            return bool(response["ok"])

        def failed(failure: Failure) -> Deferred[bool]:
            self.in_flight -= 1
            reason = "busy" if failure.check(BrokerBusy) else type(failure.value).__name__
            return self._locally(stored_hash, password, f"no answer ({reason})")
        return d.addCallbacks(answered, failed)

    def _locally(self, stored_hash: str | None, password: str, why: str) -> Deferred[bool]:
        self.fallbacks += 1
        self._count("local")
        self.fell_back(why)
        return self.local.check(stored_hash, password)

    def _count(self, result: str) -> None:
        """Counted on the first process's `/metrics` (a copy serves none): told over the channel while
        it is open (a fallback while it is closed is only logged)."""
        broker = self.broker
        if broker is None:
            return
        try:
            broker.callRemote(BrokerCounted, result=result)
        except Exception:  # noqa: BLE001 - a closing channel: the count is lost, never the login
            log.debug("cannot count a password question on the first process", exc_info=True)

    def fell_back(self, why: str) -> None:
        """Logged once per outage (again only after the broker answered in between)."""
        if self._outage_logged:
            return
        self._outage_logged = True
        log.warning("password broker unavailable; checking passwords in this process",
                    extra={"event": "auth.broker_unavailable", "reason": why})


def serve_copies(reactor: Any, checks: PasswordChecks, max_in_flight: int,
                 max_bytes: int, relay: Any = None) -> Callable[[socket.socket], None]:
    """In the first process: what to do with its end of each copy's socketpair (answer on it, and
    relay changes on it when `relay` is given)."""
    factory = BrokerFactory(checks, max_in_flight, max_bytes, relay)

    def adopt(ours: socket.socket) -> None:
        try:
            reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, factory)
        finally:
            ours.close()  # the reactor holds its own duplicate
    return adopt


def ask_first_process(reactor: Any, local: PasswordChecks, fd: int, *, timeout_seconds: float,
                      max_in_flight: int, max_bytes: int, clock: Any = None, relay: Any = None) -> BrokeredChecks:
    """In a further process: its checks, asking the first process over the inherited descriptor `fd`
    (timeouts on `clock`, the reactor unless a test gives its own); `relay`: changes travel on it too."""
    brokered = BrokeredChecks(local, clock if clock is not None else reactor, timeout_seconds=timeout_seconds,
                              max_in_flight=max_in_flight, max_bytes=max_bytes)
    try:
        reactor.adoptStreamConnection(fd, socket.AF_UNIX, brokered.client_factory(relay))
    except OSError as exc:
        brokered.fell_back(f"cannot use the inherited channel ({exc.strerror})")
        if relay is not None:
            relay.left(None)
    finally:
        os.close(fd)
    return brokered
