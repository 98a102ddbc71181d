"""The `/servlet/webdav.*` XML resources: auth, body parsing, dispatch, 207 answers.

Each request: authenticate (Basic or cookie) -> parse the body with `xmlsafe` -> run the store work on
the pool (`DeferredStore`, never on the reactor) -> write the multistatus. Each `D:set` of a PROPPATCH is
its own write transaction, run in order, so a failing set writes nothing and does not undo the others.
Anything after the servlet name in the path is ignored (KDE writes to `.../webdav.calendar/file.xml`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.config import Settings
from oxsync.logs import failure_exc_info
from oxsync.ox import errors as E
from oxsync.ox import folders, groupuser, objects
from oxsync.ox.auth import COOKIE, OxAuth, OxUser, check_account
from oxsync.ox.query import parse_query
from oxsync.ox.wire import (
    DAV,
    RequestError,
    el,
    find_prop,
    is_dav,
    multistatus,
    ox_fields,
    response,
    text,
)
from oxsync.runtime import DeferredStore
from oxsync.store.errors import AccessRefused
from oxsync.web import is_gone, send_bytes, send_text
from oxsync.web.xmlsafe import XmlRejected, parse

log = logging.getLogger("oxsync.ox")
XML_TYPE = b"text/xml; charset=UTF-8"


@dataclass
class OxContext:
    settings: Settings
    async_store: DeferredStore
    auth: OxAuth


class VersionServlet(Resource):
    """`GET /servlet/webdav.version`: the OX version string, unauthenticated."""

    isLeaf = True

    def __init__(self, version: str) -> None:
        super().__init__()
        self.version = version

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=UTF-8")
        return (self.version + "\n").encode("utf-8")


class XmlServlet(Resource):
    """One of webdav.folders / .contacts / .calendar / .tasks / .groupuser."""

    isLeaf = True

    def __init__(self, ctx: OxContext, kind: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.kind = kind

    # -------------------------------------------------------------- HTTP entry points

    def render_OPTIONS(self, request: Request) -> bytes:
        request.setHeader(b"DAV", b"1")
        request.setHeader(b"Allow", b"OPTIONS, PROPFIND, PROPPATCH, PUT")
        return b""

    def render_PROPFIND(self, request: Request) -> Any:
        return self._start(request, self._propfind)

    def render_PROPPATCH(self, request: Request) -> Any:
        if self.kind == "groupuser":
            send_text(request, 405, "groupuser is read-only\n")
            return NOT_DONE_YET
        return self._start(request, self._proppatch)

    render_PUT = render_PROPPATCH

    def _start(self, request: Request, handler: Callable[[Request, OxUser, bytes], Deferred[None] | None]) -> Any:
        body = request.content.read() if request.content is not None else b""
        d = self.ctx.auth.authenticate(request)

        def authed(who: OxUser | None) -> Deferred[None] | None:
            if who is None or is_gone(request):
                return None
            return handler(request, who, body)

        d.addCallback(authed)
        d.addErrback(self._crashed, request)
        return NOT_DONE_YET

    # -------------------------------------------------------------- helpers

    def _store(self, who: OxUser, write: bool, fn: Callable[..., Any], *args: Any, light: bool = False) -> Deferred[Any]:
        """`fn(session, *args)` for `who`; `light`: a cheap unit served before heavy ones (folder
        listings, deltas, single objects, users), see `DeferredStore.run_light`."""
        def work(session):
            check_account(session, who)
            return fn(session, *args)

        run = self.ctx.async_store.write if write else self.ctx.async_store.read
        return run(who.tenant_id, who.user_id, work, light)

    def _send(self, request: Request, responses: list[str]) -> None:
        send_bytes(request, 207, multistatus(responses, self.ctx.settings.ox.version_string), XML_TYPE)

    def _crashed(self, failure: Failure, request: Request) -> None:
        if isinstance(failure.value, RequestError):
            send_text(request, failure.value.status, str(failure.value) + "\n")
        elif failure.check(AccessRefused):
            request.addCookie(COOKIE, b"", max_age=b"0", path=b"/servlet", httpOnly=True)
            send_text(request, 403, f"access refused: {failure.value}\n")
        else:
            log.error("OX servlet failed", exc_info=failure_exc_info(failure),
                      extra={"event": "ox.servlet_error", "servlet": self.kind})
            send_text(request, 500, "Server Error\n")

    # -------------------------------------------------------------- PROPFIND

    def _propfind(self, request: Request, who: OxUser, body: bytes) -> Deferred[None]:
        if not body.strip():
            raise RequestError(400, "missing request body")
        try:
            root = parse(body, self.ctx.settings.limits)
        except XmlRejected as exc:
            raise RequestError(400, f"[1400] bad xml request - {exc.reason}") from None
        if not (is_dav(root, "propfind") or is_dav(root, "multistatus")):
            raise RequestError(400, "[1400] bad xml request - expected D:propfind")
        prop = find_prop(root)
        if prop is None:
            raise RequestError(400, "[1400] bad xml request - no D:prop")
        given = ox_fields(prop)
        if self.kind == "groupuser":
            if not {"user", "group", "resource"} & given.keys():
                raise RequestError(400, "expected element: user, group or resource")
            d = self._store(who, False, groupuser.propfind, given, light=True)
            return d.addCallback(lambda xml: self._send(request, [xml]))
        query = parse_query(given)
        if self.kind == "folders":
            d = self._store(who, False, _safe(folders.propfind), query, light=True)
        else:
            d = self._store(who, False, objects.propfind, objects.MODULES[self.kind], query,
                            light=objects.is_light(query))
        return d.addCallback(lambda responses: self._send(request, responses))

    # -------------------------------------------------------------- PROPPATCH

    def _proppatch(self, request: Request, who: OxUser, body: bytes) -> Deferred[None] | None:
        try:
            root = parse(body, self.ctx.settings.limits)
        except XmlRejected as exc:
            self._send(request, [response(0, _client_id_scan(body), *_bad_xml(exc.reason))])
            return None
        if is_dav(root, "multistatus"):
            inner = [c for c in root if is_dav(c, "propertyupdate")]
            root = inner[0] if inner else root
        if not is_dav(root, "propertyupdate"):
            self._send(request, [response(0, "", *_bad_xml("expected D:propertyupdate"))])
            return None
        sets = [child for child in root if is_dav(child, "set")]
        props = [next((p for p in s if is_dav(p, "prop")), None) for s in sets]
        if not props:
            self._send(request, [response(0, "", *_bad_xml("no D:set"))])
            return None
        return self._run_sets(request, who, props)

    @inlineCallbacks
    def _run_sets(self, request: Request, who: OxUser, props: list[etree._Element | None]):
        chained: dict[int, tuple[int, int]] = {}
        answers = []
        for prop in props:
            given = ox_fields(prop) if prop is not None else {}
            client = el("client_id", text(given["client_id"])) if "client_id" in given else ""
            href = text(given.get("object_id")).strip() or "0"
            try:
                if prop is None:
                    raise E.OxFailure(E.BAD_XML, "D:set without D:prop")
                if self.kind == "folders":
                    href, prop_xml = yield self._store(who, True, folders.proppatch, given, chained)
                else:
                    href, prop_xml = yield self._store(who, True, objects.proppatch, objects.MODULES[self.kind],
                                                       given, chained)
                answers.append(response(href, prop_xml + client, *E.OK))
            except AccessRefused:
                raise
            except Exception as exc:  # noqa: BLE001 - per-set outcome
                status, description, extra = E.outcome_of(exc)
                ident = el("object_id", href) if href != "0" else ""
                answers.append(response(href, ident + client, status, description, extra))
        self._send(request, answers)


def _safe(fn: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """Turn a store/OX failure of a folder PROPFIND into a single error response (href 0)."""

    def wrapped(*args: Any) -> list[str]:
        try:
            return fn(*args)
        except AccessRefused:
            raise
        except Exception as exc:  # noqa: BLE001
            status, description, _ = E.outcome_of(exc)
            return [response(0, "", status, description)]

    return wrapped


def _bad_xml(reason: str) -> tuple[int, str]:
    return E.BAD_XML[0], f"{E.BAD_XML[1]} - {reason}"


def _client_id_scan(body: bytes) -> str:
    """OX scans an unparsable body for ox:client_id to echo it (reference §1.5)."""
    import re

    found = re.search(rb"<(?:\w+:)?client_id[^>]*>([^<]{0,200})</", body)
    return el("client_id", found.group(1).decode("utf-8", "replace")) if found else ""


__all__ = ["DAV", "OxContext", "VersionServlet", "XmlServlet"]
