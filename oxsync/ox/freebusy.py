"""`GET /servlet/webdav.freebusy`: unauthenticated VFREEBUSY for Outlook's Internet free/busy template
`...?username=%NAME%&server=%SERVER%` (reference §3, dav.md §4).

What must hold: the address resolves to a user or resource of the tenant whose domain is `server`
(or `contextid`); an unknown address is 404; only busy times go out (private appointments included,
no titles: the store's `free_busy` never returns details); FBTYPE follows `[ox] freebusy_fbtype_mapping`
(`correct` by default, `ox-compat` reproduces OX's historic table); the range is bounded.
Parameters: contextid/contextId, username/userName, server, start/end (yyyyMMdd), period (months
around now), weeksIntoPast/weeksIntoFuture, simple=true (no FBTYPE, no FREE periods).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.model import ShownAs
from oxsync.runtime import DeferredStore
from oxsync.store.api import Store
from oxsync.store.errors import InvalidData, NotFound
from oxsync.web import client_address, send_bytes, send_text
from oxsync.web.ratelimit import RateLimiter

log = logging.getLogger("oxsync.ox.freebusy")

FBTYPES = {
    "correct": {ShownAs.RESERVED: "BUSY", ShownAs.TEMPORARY: "BUSY-TENTATIVE", ShownAs.ABSENT: "BUSY-UNAVAILABLE",
                ShownAs.FREE: "FREE"},
    "ox-compat": {ShownAs.RESERVED: "BUSY-TENTATIVE", ShownAs.TEMPORARY: "BUSY-UNAVAILABLE", ShownAs.ABSENT: "BUSY",
                  ShownAs.FREE: "FREE"},
}
ALIASES = {"contextid": ("contextid", "contextId"), "username": ("username", "userName"), "server": ("server",),
           "start": ("start",), "end": ("end",), "period": ("period",),
           "past": ("weeksIntoPast",), "future": ("weeksIntoFuture",), "simple": ("simple",)}


class BadParameter(Exception):
    pass


def _param(request: Request, name: str) -> str | None:
    for alias in ALIASES[name]:
        values = request.args.get(alias.encode())
        if values:
            return values[0].decode("utf-8", "replace").strip()
    return None


def _day(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadParameter(f"not a yyyyMMdd date: {value[:20]!r}") from None


def _number(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(f"{name} is not a number") from None
    if number < 0:
        raise BadParameter(f"{name} is negative")
    return number


def time_range(request: Request, settings: Any, now: datetime) -> tuple[datetime, datetime]:
    try:
        return _time_range(request, settings, now)
    except OverflowError:  # e.g. start=99991231: the range would end after year 9999
        raise BadParameter("date out of range") from None


def _time_range(request: Request, settings: Any, now: datetime) -> tuple[datetime, datetime]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    period, start, end = _param(request, "period"), _param(request, "start"), _param(request, "end")
    past, future = _param(request, "past"), _param(request, "future")
    if period:
        months = min(_number(period, "period"), 120)
        low, high = today - timedelta(days=31 * months), today + timedelta(days=31 * months)
    elif start or end:
        low = _day(start) if start else today - timedelta(days=settings.freebusy_default_past_days)
        high = _day(end) if end else low + timedelta(days=settings.freebusy_default_future_days)
    elif past or future:
        low = today - timedelta(weeks=min(_number(past or "1", "weeksIntoPast"), 520))
        high = today + timedelta(weeks=min(_number(future or "4", "weeksIntoFuture"), 520))
    else:
        low = today - timedelta(days=settings.freebusy_default_past_days)
        high = today + timedelta(days=settings.freebusy_default_future_days)
    if high <= low:
        raise BadParameter("end is not after start")
    high = min(high, low + timedelta(days=settings.freebusy_max_range_days))
    return low, high


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def lookup(store: Store, address: str, domain: str, context: int | None, low: datetime, high: datetime):
    """On the pool: (address, busy periods) or NotFound. The tenant is the one owning `server`."""
    tenant_id = context
    if domain:
        try:
            tenant_id = store.tenant(domain).id
        except NotFound:
            if context is None:  # an address of a tenant whose domain differs (alias domains)
                resolved = store.resolve_login(address)
                if resolved is None:
                    raise
                tenant_id = resolved[0]
    if tenant_id is None:
        raise NotFound("no tenant")
    with store.session(tenant_id, 0) as session:
        found = session.find_principal(address)
        if found is None:
            raise NotFound(address)
        kind, ident = found
        if kind == "user":
            return session.free_busy(low, high, user_id=ident)
        return session.free_busy(low, high, resource_id=ident)


class FreeBusyServlet(Resource):
    isLeaf = True

    def __init__(self, async_store: DeferredStore, settings: Any, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.async_store = async_store
        self.settings = settings
        self.requests = RateLimiter(settings.freebusy_max_requests_per_address_per_minute, clock=clock)
        self.unknown = RateLimiter(settings.freebusy_max_unknown_per_address_per_minute, clock=clock)
        """Unauthenticated by design, and a 404 tells that an address does not exist: both are throttled
        per client address (a guesser is slowed to `freebusy_max_unknown_per_address_per_minute`)."""

    def render_GET(self, request: Request) -> Any:
        now = datetime.now(UTC)
        client = client_address(request)
        wait = max(self.requests.retry_after(client), self.unknown.retry_after(client))
        if wait:
            log.warning("free/busy throttled", extra={"event": "ox.freebusy_throttled", "address": client,
                                                      "retry_after": wait})
            send_text(request, 429, f"too many free/busy requests; retry in {wait} s\n", {b"Retry-After": b"%d" % wait})
            return NOT_DONE_YET
        self.requests.hit(client)
        try:
            username, server = _param(request, "username") or "", (_param(request, "server") or "").lower()
            if not username:
                raise BadParameter("missing parameter: username")
            address = username if "@" in username else f"{username}@{server}"
            domain = server or address.partition("@")[2]
            raw_context = _param(request, "contextid")
            context = _number(raw_context, "contextid") if raw_context else None
            low, high = time_range(request, self.settings, now)
        except BadParameter as exc:
            send_text(request, 400, f"{exc}\n")
            return NOT_DONE_YET
        simple = (_param(request, "simple") or "").lower() == "true"
        d = self.async_store.run(lookup, self.async_store.store, address.lower(), domain, context, low, high)
        d.addCallbacks(self._answer, self._failed, callbackArgs=(request, address, low, high, now, simple),
                       errbackArgs=(request,))
        return NOT_DONE_YET

    def _answer(self, periods, request: Request, address: str, low: datetime, high: datetime,
                now: datetime, simple: bool) -> None:
        mapping = FBTYPES.get(self.settings.freebusy_fbtype_mapping, FBTYPES["correct"])
        lines = ["BEGIN:VCALENDAR", "PRODID:-//www.open-xchange.org//", "VERSION:2.0", "METHOD:PUBLISH",
                 "BEGIN:VFREEBUSY", f"UID:{uuid.uuid4()}", f"DTSTAMP:{_stamp(now)}", f"ORGANIZER:mailto:{address}",
                 f"DTSTART:{_stamp(low)}", f"DTEND:{_stamp(high)}"]
        for p in periods:
            fbtype = mapping.get(p.shown_as, "BUSY")
            if simple:
                if fbtype == "FREE":
                    continue
                lines.append(f"FREEBUSY:{_stamp(p.start)}/{_stamp(p.end)}")
            else:
                lines.append(f"FREEBUSY;FBTYPE={fbtype}:{_stamp(p.start)}/{_stamp(p.end)}")
        lines += ["END:VFREEBUSY", "END:VCALENDAR"]
        send_bytes(request, 200, ("\r\n".join(lines) + "\r\n").encode("utf-8"), b"text/calendar; charset=utf-8")

    def _failed(self, failure: Failure, request: Request) -> None:
        if failure.check(NotFound):
            self.unknown.hit(client_address(request))
            send_text(request, 404, "Unable to resolve mail address to a user or a resource.\n")
        elif failure.check(InvalidData):  # e.g. a contextid no tenant can have
            send_text(request, 400, "invalid parameter\n")
        else:
            send_text(request, 500, "Server Error\n")
