"""HTTP Basic authentication against the store, with per-protocol rights and login throttling.

What must hold:
- wrong or missing credentials answer 401 with a Basic challenge, never 403 (a 403 would tell an
  attacker that the password was right);
- right password but suspended account or protocol not enabled answer 403 with a plain reason;
- the throttle is checked before the password is verified, so a throttled client learns nothing;
- a success resets the per-login counter but never the per-address one;
- logs carry login and address, never the password nor the Authorization header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.web.server import Request

from oxsync.config import AuthSettings
from oxsync.logs import failure_exc_info
from oxsync.metrics import LOGIN_CHECKS, LOGIN_THROTTLED
from oxsync.model import Protocol
from oxsync.push.bus import AccountChange
from oxsync.runtime import DeferredStore
from oxsync.store.api import LoginRecord, Principal
from oxsync.store.errors import AccessRefused, AuthenticationFailed
from oxsync.web import client_address, is_gone, send_text
from oxsync.web.password_broker import BrokeredChecks, PasswordChecks

log = logging.getLogger("oxsync.auth")

REALM = "oxsync"
"""Bound on the throttle's memory (logins plus addresses with recent failures)."""


class _Window:
    """Failure timestamps of one key inside a sliding window; only the newest `limit` are kept."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = max(1, limit)
        self.window = window
        self.times: deque[float] = deque(maxlen=self.limit)

    def expired(self, now: float) -> bool:
        return not self.times or self.times[-1] + self.window <= now


def _wait(window: _Window | None, limit: int, window_seconds: float, pending: int, now: float) -> float:
    """Seconds until one more attempt is allowed (0 = now), counting attempts still in flight as
    failures: otherwise a burst of parallel requests would all pass the check before any failed."""
    recent = [t for t in window.times if t + window_seconds > now] if window is not None else []
    excess = len(recent) + pending - max(1, limit) + 1
    if excess <= 0:
        return 0.0
    if excess > len(recent):
        return 1.0  # blocked by attempts in flight; they finish within a moment
    return recent[excess - 1] + window_seconds - now


class LoginThrottle:
    """Counts failed logins per login name and per client address in a sliding window.

    Memory is bounded: at most `max_keys` keys per kind; expired keys are dropped first, then the
    keys whose last failure is oldest.
    """

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic,
                 max_keys: int | None = None) -> None:
        self.window = float(settings.failed_login_window_seconds)
        self.max_per_user = settings.max_failures_per_user
        self.max_per_address = settings.max_failures_per_address
        self.clock = clock
        self.max_keys = max(1, settings.max_tracked_throttle_keys if max_keys is None else max_keys)
        self._users: OrderedDict[str, _Window] = OrderedDict()
        self._addresses: OrderedDict[str, _Window] = OrderedDict()
        self._pending_users: Counter[str] = Counter()
        self._pending_addresses: Counter[str] = Counter()

    @staticmethod
    def normalize(login: str) -> str:
        return login.strip().lower()

    def retry_after(self, login: str | None, address: str) -> int:
        """Whole seconds to wait before trying again; 0 when the attempt may go ahead."""
        now = self.clock()
        waits = [_wait(self._addresses.get(address), self.max_per_address, self.window,
                       self._pending_addresses[address], now)]
        if login:
            key = self.normalize(login)
            waits.append(_wait(self._users.get(key), self.max_per_user, self.window, self._pending_users[key], now))
        return math.ceil(max(waits))

    def begin(self, login: str, address: str) -> None:
        """An attempt is being verified: it counts against both limits until `end`."""
        self._pending_users[self.normalize(login)] += 1
        self._pending_addresses[address] += 1

    def end(self, login: str, address: str, *, failed: bool | None) -> None:
        """The attempt finished: `failed` True records a failure, False a success, None neither."""
        for table, key in ((self._pending_users, self.normalize(login)), (self._pending_addresses, address)):
            table[key] -= 1
            if table[key] <= 0:
                del table[key]
        if failed is True:
            self.record_failure(login, address)
        elif failed is False:
            self.record_success(login, address)

    def record_failure(self, login: str | None, address: str) -> None:
        now = self.clock()
        self._bump(self._addresses, address, self.max_per_address, now)
        if login:
            self._bump(self._users, self.normalize(login), self.max_per_user, now)

    def record_success(self, login: str, address: str) -> None:
        """The account's own counter restarts; the address keeps its history (a success from an
        address guessing many accounts must not buy it fresh attempts)."""
        self._users.pop(self.normalize(login), None)

    def tracked_keys(self) -> int:
        return len(self._users) + len(self._addresses)

    def _bump(self, table: OrderedDict[str, _Window], key: str, limit: int, now: float) -> None:
        entry = table.pop(key, None) or _Window(limit, self.window)
        entry.times.append(now)
        table[key] = entry  # most recently failed at the end
        while table:
            oldest_key, oldest = next(iter(table.items()))
            if len(table) <= self.max_keys and not oldest.expired(now):
                break
            del table[oldest_key]


def parse_basic(header: bytes | None) -> tuple[str, str] | None:
    """(login, password) from an `Authorization: Basic ...` value; None if absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic" or not encoded:
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    login, sep, password = text.partition(":")
    if not sep or not login:
        return None
    return windows_login(login), password


def windows_login(login: str) -> str:
    """Outlook and Windows Mail log in as `DOMAIN\\user`: a dotted DOMAIN is the tenant's mail domain
    (`user@domain`), a NetBIOS-style one says nothing we know and is dropped."""
    domain, sep, user = login.rpartition("\\")
    if not sep or not user or not domain:
        return login
    return f"{user}@{domain}" if "." in domain else user


def challenge(request: Request, message: str = "authentication required") -> None:
    send_text(request, 401, message + "\n", {b"WWW-Authenticate": f'Basic realm="{REALM}"'.encode()})


class VerifiedLogins:
    """A memory of successful logins, shared by every dialect.

    Clients send Basic credentials on every request (a phone's Ping every few minutes, DAV clients in
    bursts) and the password hash is deliberately slow (~0.3 s of CPU here), so without it one device
    costs more CPU in hashing than in syncing. Only successes are remembered, keyed by (login, protocol)
    with a salted SHA-256 of the password (the salt lives only in memory); failures always go through the
    store and the throttle. Account changes (suspension, password, rights, aliases, deletion) reach it
    through the change bus (`forget_accounts`) from this node and every other, so they apply at once.
    `generation` moves with every such change: a check that started before it must not be remembered.
    """

    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max(1, max_entries)
        self.clock = clock
        self._salt = os.urandom(16)
        self._entries: OrderedDict[tuple[str, Protocol], tuple[bytes, Principal, float]] = OrderedDict()
        self.generation = 0

    def _digest(self, password: str) -> bytes:
        return hashlib.sha256(self._salt + password.encode("utf-8")).digest()

    def get(self, login: str, password: str, protocol: Protocol) -> Principal | None:
        if self.ttl <= 0:
            return None
        entry = self._entries.get((login.strip().lower(), protocol))
        if entry is None or entry[2] <= self.clock() or not hmac.compare_digest(entry[0], self._digest(password)):
            return None
        return entry[1]

    def put(self, login: str, password: str, protocol: Protocol, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        key = (login.strip().lower(), protocol)
        self._entries[key] = (self._digest(password), principal, self.clock() + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_accounts(self, change: AccountChange) -> None:
        """Drop every remembered login of the accounts `change` names (bus subscriber)."""
        self.generation += 1
        for key in [k for k, v in self._entries.items() if change.concerns(v[1].tenant_id, v[1].user_id)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, login: str | None = None) -> None:
        self.generation += 1
        if login is None:
            self._entries.clear()
            return
        for key in [k for k in self._entries if k[0] == login.strip().lower()]:
            del self._entries[key]


LoginKey = tuple[str, Protocol, bytes]
"""(normalized login, protocol, salted digest of the password): requests that are the same login attempt."""


class Authenticator:
    """Authenticates one request for one protocol; shared by every dialect.

    The store pool only reads the account (`login_record`); the Argon2 check runs on the hash pool
    through `PasswordChecks` (with `[server] processes` > 1, a further process asks the first one's
    through `BrokeredChecks`, oxsync/web/password_broker.py); suspension and the protocol right are decided on the reactor.
    Requests carrying the same credentials while a check of them is in flight join that attempt: they
    are one guess, so they neither pass through the throttle again nor count as more pending failures
    (20 devices of one user arriving together, or many users behind one address, must not be throttled
    by their own first login)."""

    def __init__(self, async_store: DeferredStore, throttle: LoginThrottle,
                 verified: VerifiedLogins | None = None) -> None:
        self.async_store = async_store
        self.throttle = throttle
        self.verified = verified if verified is not None else VerifiedLogins(0, 1)
        self.checks: PasswordChecks | BrokeredChecks = PasswordChecks(
            async_store.verify_password, self.verified.ttl, self.verified.max_entries)
        self._attempts: dict[LoginKey, list[Deferred[Principal]]] = {}
        self._salt = os.urandom(16)
        async_store.bus.subscribe_accounts(self.verified.forget_accounts)

    def _attempt_key(self, login: str, password: str, protocol: Protocol) -> LoginKey:
        digest = hashlib.sha256(self._salt + password.encode("utf-8", "surrogatepass")).digest()
        return self.throttle.normalize(login), protocol, digest

    def authenticate(self, request: Request, protocol: Protocol) -> Deferred[Principal | None]:
        """Fires with the Principal, or with None after the error response (401/403/429/503) was sent.

        On success the principal is also stored as `request.principal` (used by the access log).
        """
        credentials = parse_basic(request.getHeader(b"authorization"))
        if credentials is not None:
            known = self.verified.get(credentials[0], credentials[1], protocol)
            if known is not None:  # a device that already proved its password keeps working
                request.principal = known  # type: ignore[attr-defined]
                LOGIN_CHECKS.labels("cached").inc()
                return succeed(known)
        address = client_address(request)  # the throttle's and the attempts' key: not needed above
        if credentials is not None:
            attempt = self._attempts.get(self._attempt_key(credentials[0], credentials[1], protocol))
            if attempt is not None:  # the same credentials are being checked: share that attempt's outcome
                joined: Deferred[Principal] = Deferred()
                attempt.append(joined)
                return joined.addCallbacks(self._answer, self._refuse, callbackArgs=(request,),
                                           errbackArgs=(request, credentials[0], address, protocol))
        login = credentials[0] if credentials else None
        wait = self.throttle.retry_after(login, address)
        if wait > 0:
            log.warning("login throttled", extra={"event": "auth.throttled", "login": login or "",
                                                   "address": address, "protocol": protocol.value,
                                                   "retry_after": wait})
            LOGIN_THROTTLED.inc()
            send_text(request, 429, f"too many failed logins; retry in {wait} s\n",
                      {b"Retry-After": b"%d" % wait})
            return succeed(None)
        if credentials is None:
            challenge(request)
            return succeed(None)
        login, password = credentials
        self.throttle.begin(login, address)
        generation = self.verified.generation
        key = self._attempt_key(login, password, protocol)
        self._attempts[key] = []
        d = self.async_store.login_record(login)
        d.addCallback(self._check_password, login, password, protocol)
        d.addBoth(self._settled, key, login, address, password, protocol, generation)
        return d.addCallbacks(self._answer, self._refuse, callbackArgs=(request,),
                              errbackArgs=(request, login, address, protocol))

    def _settled(self, result: Principal | Failure, key: LoginKey, login: str, address: str, password: str,
                 protocol: Protocol, generation: int) -> Principal | Failure:
        """The attempt's outcome, once for the throttle and the memory, then for every request that joined."""
        waiters = self._attempts.pop(key, [])
        if isinstance(result, Failure):
            self.throttle.end(login, address, failed=True if result.check(AuthenticationFailed) else None)
        else:
            self.throttle.end(login, address, failed=False)
            if generation == self.verified.generation:  # no account changed while we checked
                self.verified.put(login, password, protocol, result)
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return result

    def _check_password(self, record: LoginRecord | None, login: str, password: str,
                        protocol: Protocol) -> Deferred[Principal] | Principal:
        known = self.verified.get(login, password, protocol)
        if known is not None:  # verified by a request that overtook this one while it read the account
            return known

        def decided(ok: bool) -> Principal:
            if not ok or record is None:
                raise AuthenticationFailed("wrong user name or password")
            return record.admit(protocol)

        return self.checks.check(record.password_hash if record else None, password).addCallback(decided)

    def _answer(self, principal: Principal, request: Request) -> Principal | None:
        LOGIN_CHECKS.labels("ok").inc()
        request.principal = principal  # type: ignore[attr-defined]
        return None if is_gone(request) else principal

    def _refuse(self, failure: Failure, request: Request, login: str, address: str,
                protocol: Protocol) -> None:
        fields = {"login": login, "address": address, "protocol": protocol.value}
        LOGIN_CHECKS.labels("failed" if failure.check(AuthenticationFailed)
                            else "refused" if failure.check(AccessRefused) else "error").inc()
        if failure.check(AuthenticationFailed):
            log.warning("login failed", extra={"event": "auth.failed", "reason": "bad_credentials", **fields})
            challenge(request, "wrong user name or password")
        elif failure.check(AccessRefused):
            reason = str(failure.value)
            log.warning("login refused", extra={"event": "auth.refused", "reason": reason, **fields})
            send_text(request, 403, f"access refused: {reason}\n")
        else:
            log.error("authentication error", exc_info=failure_exc_info(failure),
                      extra={"event": "auth.error", **fields})
            send_text(request, 503, "authentication temporarily unavailable\n")
        return None
