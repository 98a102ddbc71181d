"""The console's request cycle: route, session, CSRF, store work on the pool, render, respond.

What must hold:
- nothing that touches the store, hashes a password or renders a template runs on the reactor: a
  request's whole handler (and its rendering) runs as one unit on the store's thread pool;
- every POST carries the session's CSRF token (the sign-in form a pre-session one), else 403;
- the signed-in account is re-read on every request: a suspended account or a withdrawn admin role
  is refused at once; admin pages need an admin, platform pages a platform admin;
- store errors become their HTTP status (NotFound 404, PermissionDenied 403, InvalidData 400,
  Conflict 409) with the message on a page, never a traceback.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.console import i18n
from oxsync.console.session import COOKIE, LANG_COOKIE, SignedIn
from oxsync.logs import failure_exc_info
from oxsync.store import admin
from oxsync.store.admin import Actor
from oxsync.store.api import Store
from oxsync.store.errors import (
    AccessRefused,
    AuthenticationFailed,
    Conflict,
    InvalidData,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
)
from oxsync.web import client_address, is_gone, send_bytes

log = logging.getLogger("oxsync.console")

STATUS_OF_ERROR: tuple[tuple[type[StoreError], int], ...] = (
    (NotFound, 404), (PermissionDenied, 403), (AccessRefused, 403), (AuthenticationFailed, 401),
    (InvalidData, 400), (Conflict, 409), (QuotaExceeded, 409),
)
SECURITY_HEADERS = {
    b"Content-Security-Policy": b"default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                                b"frame-ancestors 'none'; form-action 'self'",
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"same-origin",
    b"Cache-Control": b"no-store",
}


# ---------------------------------------------------------------- responses


@dataclass
class Page:
    template: str
    values: dict[str, Any] = field(default_factory=dict)
    status: int = 200


@dataclass
class Redirect:
    location: str


@dataclass
class Json:
    value: Any
    status: int = 200


@dataclass
class Raw:
    body: bytes
    content_type: bytes
    headers: dict[bytes, bytes] = field(default_factory=dict)


Response = Page | Redirect | Json | Raw


# ---------------------------------------------------------------- per-request context


@dataclass
class Ctx:
    """What a handler sees. Built on the reactor; `actor` is resolved on the pool."""

    store: Store
    settings: Any
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    form: dict[str, list[str]]
    body: bytes
    address: str
    lang: str
    htmx: bool
    signed: SignedIn | None
    csrf: str = ""
    actor: Actor | None = None
    services: Any = None
    """The Console object (signer, throttle, templates)."""
    cookies: list[tuple[bytes, bytes, dict[str, Any]]] = field(default_factory=list)
    """Cookies the handler sets (name, value, extra addCookie options)."""
    login_outcome: bool | None = None
    """Sign-in handlers: True failed credentials, False success, None neither (for the throttle)."""
    after: Callable[[], Any] | None = None
    """Blocking mail-server work (ManageSieve) the handler asks for, run on the console's mail pool once
    the store work is committed; when it fails the answer is a redirect to `after_failed` instead."""
    after_failed: str = ""
    authorization: str = ""
    """The admin API's Authorization header (a bearer token), read on the reactor."""

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0].strip() if values else default

    def raw_field(self, name: str) -> str:
        values = self.form.get(name)
        return values[0] if values else ""

    def fields(self, name: str) -> list[str]:
        return [v.strip() for v in self.form.get(name, []) if v.strip()]

    def checked(self, name: str) -> bool:
        return self.field(name) in ("on", "1", "true", "yes")

    def int_param(self, name: str) -> int:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            raise NotFound(f"no such {name}") from None

    @property
    def resolved_actor(self) -> Actor:
        """`actor` in a handler whose route needs one: the gate refused the request if none was found."""
        if self.actor is None:
            raise AuthenticationFailed("not signed in")
        return self.actor

    @property
    def tenant_id(self) -> int:
        return self.int_param("tid")


Handler = Callable[[Ctx], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    need: str
    """public | user | admin | platform"""


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, path: str, need: str = "admin") -> Callable[[Handler], Handler]:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"

        def wrap(fn: Handler) -> Handler:
            self.routes.append(Route(method, re.compile(regex), fn, need))
            return fn

        return wrap

    def find(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path known for another method)."""
        other = False
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                if route.method == method or (method == "HEAD" and route.method == "GET"):
                    return route, match.groupdict(), False
                other = True
        return None, {}, other


# ---------------------------------------------------------------- templates


def make_environment() -> Environment:
    env = Environment(loader=PackageLoader("oxsync.console", "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.globals.update(urlencode=urlencode, quote=lambda s: quote(str(s), safe=""))
    env.filters["size"] = format_size
    env.filters["when"] = format_when
    return env


def format_size(size: int | None) -> str:
    if size is None:
        return "∞"
    value, units = float(size), ("B", "KiB", "MiB", "GiB", "TiB")
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{int(value)} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def format_when(epoch: float | int | None, ms: bool = False) -> str:
    import time

    if not epoch:
        return "-"
    seconds = epoch / 1000 if ms else epoch
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds)) + " UTC"


# ---------------------------------------------------------------- the resource


class ConsoleResource(Resource):
    """Everything under the console listener's `/` (except /static and /admin/api)."""

    isLeaf = True

    def __init__(self, console: Any, router: Router) -> None:
        super().__init__()
        self.console = console
        self.router = router

    def render(self, request: Request) -> Any:
        method = (request.method or b"GET").decode("ascii", "replace")
        path = "/" + "/".join(p.decode("utf-8", "replace") for p in request.postpath or []).strip("/")
        path = path.rstrip("/") or "/"
        route, params, other = self.router.find(method, path)
        if route is None:
            return self._error(request, 405 if other else 404, "method not allowed" if other else "not found")
        ctx = self._context(request, method, path, params)
        if method == "POST" and not self._csrf_ok(request, ctx, route):
            log.warning("console POST without a valid CSRF token", extra={"event": "console.csrf", "path": path,
                                                                         "address": ctx.address})
            return self._error(request, 403, ctx_t(ctx)("csrf_refused"))
        throttled = getattr(route.handler, "throttled", False)
        login = ctx.field("login")
        if throttled:
            throttle = self.console.throttle
            wait = throttle.retry_after(login or None, ctx.address)
            if wait > 0:
                log.warning("console login throttled", extra={"event": "auth.throttled", "login": login,
                                                               "address": ctx.address, "protocol": "console"})
                request.setHeader(b"Retry-After", b"%d" % wait)
                return self._error(request, 429, ctx_t(ctx)("throttled", seconds=wait))
            throttle.begin(login, ctx.address)
        d = self.console.async_store.run(self.console.run_handler, route, ctx)
        if throttled:
            def done(result: Any) -> Any:
                self.console.throttle.end(login, ctx.address, failed=ctx.login_outcome)
                return result
            d.addBoth(done)
        d.addCallback(self._after, ctx)
        d.addCallback(self._respond, request, ctx)
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _after(self, result: Any, ctx: Ctx) -> Any:
        if ctx.after is None:
            return result

        def failed(failure: Any) -> Any:
            log.error("console: mail server not reached: %s", failure.getErrorMessage(),
                      extra={"event": "console.mail_failed", "path": ctx.path})
            return 303, {b"Location": ctx.after_failed.encode("utf-8")}, b"text/html; charset=utf-8", b"", result[4]

        d = self.console.run_mail(ctx.after)
        d.addCallbacks(lambda _: result, failed)
        return d

    def _context(self, request: Request, method: str, path: str, params: dict[str, str]) -> Ctx:
        query = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace") for k, v in (request.args or {}).items()}
        body = b""
        form: dict[str, list[str]] = {}
        if method == "POST":
            content = request.content
            if content is not None:
                content.seek(0)
                body = content.read(self.console.settings.console.max_form_bytes + 1)
            ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
            if ctype == b"application/x-www-form-urlencoded":
                form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=2000)
            query = {k: v for k, v in query.items() if k not in form}
        raw_cookie = request.getCookie(COOKIE)
        signed = self.console.signer.verify(raw_cookie.decode("ascii", "replace")) if raw_cookie else None
        lang_cookie = request.getCookie(LANG_COOKIE)
        lang = i18n.choose(lang_cookie.decode("ascii", "replace") if lang_cookie else None,
                           (request.getHeader(b"accept-language") or b"").decode("latin-1"))
        ctx = Ctx(self.console.store, self.console.settings, method, path, params, query, form, body,
                  client_address(request), lang, request.getHeader(b"hx-request") == b"true", signed,
                  services=self.console)
        if signed is not None:
            ctx.csrf = self.console.signer.csrf_token(signed)
        return ctx

    def _csrf_ok(self, request: Request, ctx: Ctx, route: Route) -> bool:
        token = ctx.field("csrf") or (request.getHeader(b"x-csrf-token") or b"").decode("ascii", "replace")
        if route.need == "public":
            pre = request.getCookie(b"oxpre")
            return bool(pre) and self.console.signer.csrf_ok(SignedIn(0, 0, pre.decode("ascii", "replace")), token)
        return ctx.signed is not None and self.console.signer.csrf_ok(ctx.signed, token)

    def _respond(self, result: tuple[int, dict[bytes, bytes], bytes, bytes, list[tuple[bytes, bytes, dict]]],
                 request: Request, ctx: Ctx) -> None:
        status, headers, content_type, body, cookies = result
        if is_gone(request):
            return
        secure = self.console.secure
        for name, value, opts in cookies:
            request.addCookie(name, value, path=b"/", httpOnly=True, secure=secure or None, sameSite=b"Strict",
                              **opts)
        send_bytes(request, status, body, content_type, {**SECURITY_HEADERS, **headers})

    def _failed(self, failure: Any, request: Request) -> None:
        log.error("console request failed", exc_info=failure_exc_info(failure),
                  extra={"event": "console.error"})
        if not is_gone(request):
            send_bytes(request, 500, b"internal error\n", b"text/plain; charset=utf-8", SECURITY_HEADERS)

    def _error(self, request: Request, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return (message + "\n").encode("utf-8")


def ctx_t(ctx: Ctx):
    return i18n.translator(ctx.lang)


def error_status(exc: StoreError) -> int:
    for kind, status in STATUS_OF_ERROR:
        if isinstance(exc, kind):
            return status
    return 400


def json_body(ctx: Ctx) -> dict[str, Any]:
    if len(ctx.body) > ctx.settings.console.max_form_bytes:
        raise InvalidData("request body too large", field="body")
    try:
        value = json.loads(ctx.body or b"{}")
    except ValueError:
        raise InvalidData("the body is not JSON", field="body") from None
    if not isinstance(value, dict):
        raise InvalidData("the body must be a JSON object", field="body")
    return value


def resolve_actor(ctx: Ctx) -> Actor | None:
    """On the pool: the signed-in account as it is now (None if signed out, suspended or gone)."""
    if ctx.signed is None:
        return None
    try:
        return admin.user_actor(ctx.store, ctx.signed.tenant_id, ctx.signed.user_id, "console", ctx.address)
    except (AuthenticationFailed, AccessRefused):
        return None
