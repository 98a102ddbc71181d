"""The Twisted side: authenticate, read the request, run one handler in one store transaction on
the pool, write the answer. Nothing here touches the store on the reactor thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO, Any

from lxml import etree
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.dav import objects, preparse, principals, propfind, reports, scheduling, sync
from oxsync.dav.context import Ctx, DavRequest
from oxsync.dav.layout import DavError, NameCache
from oxsync.dav.multistatus import Response, parse_body
from oxsync.dav.xml import CALDAV, CARDDAV, DAV, error_body, qn
from oxsync.logs import failure_exc_info
from oxsync.model import Protocol
from oxsync.store.api import Principal
from oxsync.store.budget import WorkLimitExceeded
from oxsync.store.errors import (
    AppointmentConflict,
    Conflict,
    InvalidData,
    NotFound,
    PermissionDenied,
    ResyncRequired,
    StaleObject,
)
from oxsync.web import is_gone, send_bytes
from oxsync.web.context import ServerContext

log = logging.getLogger("oxsync.dav")

DAV_HEADER = "1, 3, access-control, calendar-access, addressbook, extended-mkcol, calendar-auto-schedule, " \
             "calendar-schedule, calendarserver-principal-property-search"
ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, MOVE, PROPFIND, PROPPATCH, REPORT, MKCOL, MKCALENDAR, POST"

Handler = Callable[[Ctx], Response]
ReportHandler = Callable[[Ctx, etree._Element], Response]

REPORTS: dict[str, ReportHandler] = {
    # the body's root element -> the report answering it
    qn(CALDAV, "calendar-query"): reports.calendar_query,
    qn(CALDAV, "calendar-multiget"): reports.multiget,
    qn(CARDDAV, "addressbook-query"): reports.addressbook_query,
    qn(CARDDAV, "addressbook-multiget"): reports.multiget,
    qn(CALDAV, "free-busy-query"): reports.free_busy_query,
    qn(DAV, "sync-collection"): sync.sync_collection,
    qn(DAV, "principal-property-search"): principals.property_search,
    qn(DAV, "principal-search-property-set"): principals.search_property_set,
    qn(DAV, "expand-property"): principals.expand_property,
}


def _options(ctx: Ctx | None) -> Response:
    return Response(200, b"", headers={"DAV": DAV_HEADER, "Allow": ALLOW})


def _report(ctx: Ctx) -> Response:
    root = parse_body(ctx)
    if root is None:
        raise DavError(400, text="REPORT needs a body")
    tag = root.tag if isinstance(root.tag, str) else ""
    handler = REPORTS.get(tag)
    if handler is None:
        raise DavError(403, qn(DAV, "supported-report"), f"unsupported report {tag}")
    return handler(ctx, root)


HANDLERS: dict[str, tuple[Handler, bool]] = {
    # method -> (handler, needs a write transaction)
    "OPTIONS": (_options, False),
    "PROPFIND": (propfind.propfind, False),
    "PROPPATCH": (propfind.proppatch, True),
    "GET": (objects.get, False),
    "HEAD": (objects.get, False),
    "PUT": (objects.put, True),
    "DELETE": (objects.delete, True),
    "MOVE": (objects.move, True),
    "MKCALENDAR": (lambda ctx: objects.make_collection(ctx, True), True),
    "MKCOL": (lambda ctx: objects.make_collection(ctx, False), True),
    "REPORT": (_report, False),
    "POST": (scheduling.post, False),
}

STORE_ERRORS: list[tuple[type[Exception], int]] = [
    (NotFound, 404), (PermissionDenied, 403), (StaleObject, 412), (Conflict, 409), (InvalidData, 400),
    (AppointmentConflict, 409),
]


def error_response(exc: Exception) -> Response:
    if isinstance(exc, DavError):
        if exc.condition:
            return Response(exc.status, error_body(exc.condition, exc.text), "application/xml; charset=utf-8")
        return Response(exc.status, (exc.text + "\n").encode() if exc.text else b"")
    if isinstance(exc, ResyncRequired):
        return Response(403, error_body(qn(DAV, "valid-sync-token"), str(exc)), "application/xml; charset=utf-8")
    if isinstance(exc, PermissionDenied):
        return Response(403, error_body(qn(DAV, "need-privileges"), str(exc)), "application/xml; charset=utf-8")
    if isinstance(exc, WorkLimitExceeded):  # RFC 4791 §9.6.5 / RFC 5323 §3: the limit preconditions
        condition = qn(CALDAV, "max-instances") if exc.kind == "series" else qn(DAV, "number-of-matches-within-limits")
        log.warning("DAV request over its work limit: %s", exc, extra={"event": "dav.work_limit", "kind": exc.kind})
        return Response(403, error_body(condition, str(exc)), "application/xml; charset=utf-8")
    for cls, status in STORE_ERRORS:
        if isinstance(exc, cls):
            return Response(status, (str(exc) + "\n").encode())
    raise exc


def run_handler(session: Any, req: DavRequest, handler: Handler) -> Response:
    """On the pool, inside the transaction. A DavError/StoreError propagates so the write rolls back."""
    ctx = Ctx(req, session)
    response = handler(ctx)
    ctx.flush_texts()
    return response


class DavResource(Resource):
    """Everything below /dav (and, through `RootHook`, PROPFIND on /)."""

    isLeaf = True

    def __init__(self, context: ServerContext) -> None:
        super().__init__()
        self.context = context
        self.names = NameCache()
        self.guesses = preparse.PrincipalGuesses()

    def render(self, request: Request) -> Any:
        method = request.method.decode("ascii", "replace").upper()
        if method == "OPTIONS" and request.getHeader(b"authorization") is None:
            self._send(request, _options(None))
            return NOT_DONE_YET
        d = self.context.authenticator.authenticate(request, Protocol.DAV)  # remembers verified logins
        d.addCallback(self._authenticated, request, method)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _authenticated(self, principal: Principal | None, request: Request, method: str) -> Any:
        if principal is None:
            return None
        entry = HANDLERS.get(method)
        if entry is None:
            self._send(request, Response(405, b"", headers={"Allow": ALLOW}))
            return None
        handler, write = entry
        headers = {name.decode("latin-1").lower(): values[0].decode("latin-1")
                   for name, values in request.requestHeaders.getAllRawHeaders() if values}
        body = request.content.read() if request.content is not None else b""
        path = request.uri.decode("utf-8", "replace").split("?", 1)[0]
        req = DavRequest(method, path, headers, body, principal, self.context.settings, self.names)
        store = self.context.async_store
        run = store.write if write else store.read

        def work(session: Any) -> Response:
            return run_handler(session, req, handler)

        def prepare() -> None:
            preparse.prepare_put(req, self.guesses)

        def failed(failure: Failure) -> Response:
            if not isinstance(failure.value, Exception):
                failure.raiseException()  # not ours to answer (e.g. a BaseException): it propagates
            return error_response(failure.value)

        if method == "PUT":  # its body parsed before the write transaction where writers take turns
            done = store.write(principal.tenant_id, principal.user_id, work, prepare=prepare)
        else:
            done = run(principal.tenant_id, principal.user_id, work, is_light(method, headers))
        return done.addErrback(failed).addCallback(lambda resp: self._send(request, resp))

    def _failed(self, failure: Failure, request: Request) -> None:
        log.error("DAV request failed", exc_info=failure_exc_info(failure))
        if not is_gone(request):
            send_bytes(request, 500, b"internal error\n", b"text/plain")

    def _send(self, request: Request, resp: Response) -> None:
        if is_gone(request):
            return
        headers = {b"DAV": DAV_HEADER.encode()}
        headers.update({k.encode(): v.encode() for k, v in resp.headers.items()})
        if resp.status == 304:
            request.setResponseCode(304)
            for k, v in headers.items():
                request.setHeader(k, v)
            request.finish()
            return
        if resp.stream is not None:
            send_stream(request, resp.status, resp.stream, resp.content_type.encode(), headers)
            return
        send_bytes(request, resp.status, resp.body, resp.content_type.encode(), headers)


LIGHT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods whose unit of store work is cheap (one resource), served before heavy units (docs/store.md)."""


def is_light(method: str, headers: dict[str, str]) -> bool:
    """One resource's work: a GET, or a PROPFIND of Depth 0 (a ctag or sync-token poll); listings,
    reports and writes stay in the heavy lane."""
    return method in LIGHT_METHODS or (method == "PROPFIND" and headers.get("depth", "").strip() == "0")


def send_stream(request: Request, code: int, stream: IO[bytes], content_type: bytes,
                headers: dict[bytes, bytes]) -> None:
    """Send a spooled body in chunks as the client reads them (FileSender follows the transport's
    flow control), then close the spool."""
    size = stream.seek(0, 2)
    stream.seek(0)
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", b"%d" % size)
    for name, value in headers.items():
        request.setHeader(name, value)

    def done(result: object) -> None:
        stream.close()
        if not is_gone(request):
            request.finish()

    FileSender().beginFileTransfer(stream, request).addBoth(done)


class WellKnown(Resource):
    """/.well-known/caldav and /.well-known/carddav -> 301 to /dav/ (RFC 6764)."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        name = request.path.decode("ascii", "replace").rstrip("/").rsplit("/", 1)[-1]
        if name not in ("caldav", "carddav"):
            request.setResponseCode(404)
            return b"not found\n"
        request.setResponseCode(301)
        request.setHeader(b"Location", b"/dav/")
        request.setHeader(b"Content-Type", b"text/plain")
        return b"see /dav/\n"


class RootHook:
    """What `/` needs from us: PROPFIND/OPTIONS/REPORT at the root go to the DAV resource (iOS and
    others rewrite the account URL to the root and ask it for current-user-principal)."""

    METHODS = frozenset({b"PROPFIND", b"OPTIONS", b"REPORT"})

    def __init__(self, dav: DavResource) -> None:
        self.dav = dav

    def wants(self, request: Request) -> bool:
        return request.method in self.METHODS and request.path in (b"/", b"")

    def render(self, request: Request) -> Any:
        return self.dav.render(request)


__all__ = ["CALDAV", "DavResource", "RootHook", "WellKnown"]
