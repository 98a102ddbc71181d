"""The console application: its listener, routes, the handler runner on the store pool, and rendering.

`install(service)` is called by the assembly (oxsync/dialects.py) when `[console] endpoint` is set: one
more listener on the same process, reactor and store pool as the dialects (no second process).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site

from oxsync.console import i18n
from oxsync.console.web import (
    ConsoleResource,
    Ctx,
    Json,
    Page,
    Raw,
    Redirect,
    Response,
    Route,
    Router,
    error_status,
    make_environment,
    resolve_actor,
)
from oxsync.store.errors import StoreError
from oxsync.web.limits import LimitedHTTPChannel, LimitedRequest

log = logging.getLogger("oxsync.console")

HTML = b"text/html; charset=utf-8"
STATIC_FILES = {"htmx.min.js": b"text/javascript; charset=utf-8", "console.css": b"text/css; charset=utf-8",
                "console.js": b"text/javascript; charset=utf-8"}


class Console:
    """Shared state of the console: store, pool, settings, signer, templates, throttle, routes."""

    def __init__(self, settings: Any, store: Any, async_store: Any, authenticator: Any) -> None:
        from oxsync.console.session import SessionSigner

        self.settings = settings
        self.store = store
        self.async_store = async_store
        self.authenticator = authenticator
        self.throttle = authenticator.throttle
        self.signer = SessionSigner(settings.console.session_secret, settings.console.session_max_age_seconds)
        self.env = make_environment()
        self.secure = settings.console.endpoint.startswith("ssl:")
        self.router = Router()
        self._mail_threads: Any = None
        from oxsync.console import (
            pages_accounts,
            pages_base,
            pages_devices,
            pages_groups,
            pages_rules,
            pages_self,
        )

        for module in (pages_base, pages_accounts, pages_groups, pages_devices, pages_self, pages_rules):
            module.register(self.router)
        self.api_router = Router()
        from oxsync.console import api

        api.register(self.api_router)

    def run_mail(self, work: Any) -> Any:
        """`work()` (blocking ManageSieve) on the console's own bounded mail pool, never the reactor or
        the store pool; started on first use, stopped with the reactor."""
        if self._mail_threads is None:
            from twisted.python.threadpool import ThreadPool

            reactor = self.async_store.reactor
            self._mail_threads = ThreadPool(minthreads=0, maxthreads=max(1, self.settings.mail.thread_pool_size),
                                            name="oxsync-console-mail")
            self._mail_threads.start()
            reactor.addSystemEventTrigger("during", "shutdown", self._mail_threads.stop)
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self.async_store.reactor, self._mail_threads, work)

    def bearer(self, ctx: Ctx) -> str:
        header = ctx.authorization
        scheme, _, token = header.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    # ------------------------------------------------------------ on the pool

    def run_handler(self, route: Route, ctx: Ctx) -> tuple[int, dict[bytes, bytes], bytes, bytes, list[Any]]:
        """Runs on the store pool: resolve the account, gate, handle, render."""
        t = i18n.translator(ctx.lang)
        ctx.actor = resolve_actor(ctx)
        try:
            actor = ctx.actor
            if actor is None:
                if route.need != "public":
                    if ctx.signed is not None:
                        ctx.cookies.append((b"oxconsole", b"", {"max_age": b"0"}))
                    return self._render(ctx, Redirect("/login"))
            elif route.need == "admin" and not actor.is_admin:
                return self._render(ctx, Page("error.html", {"message": t("admins_only")}, 403))
            elif route.need == "platform" and not actor.platform:
                return self._render(ctx, Page("error.html", {"message": t("platform_only")}, 403))
            response = route.handler(ctx)
        except StoreError as exc:
            status = error_status(exc)
            response = Page("error.html", {"message": str(exc)}, status)
        return self._render(ctx, response)

    def run_api(self, route: Route, ctx: Ctx) -> tuple[int, dict[bytes, bytes], bytes, bytes, list[Any]]:
        from oxsync.console.api import run_api

        return run_api(self, route, ctx)

    def _render(self, ctx: Ctx, response: Response) -> tuple[int, dict[bytes, bytes], bytes, bytes, list[Any]]:
        if isinstance(response, Redirect):
            return 303, {b"Location": response.location.encode("utf-8")}, HTML, b"", ctx.cookies
        if isinstance(response, Json):
            body = json.dumps(response.value, separators=(",", ":")).encode("utf-8")
            return response.status, {}, b"application/json", body, ctx.cookies
        if isinstance(response, Raw):
            return 200, response.headers, response.content_type, response.body, ctx.cookies
        values = {"t": i18n.translator(ctx.lang), "lang": ctx.lang, "csrf": ctx.csrf, "me": ctx.actor,
                  "path": ctx.path, "htmx": ctx.htmx, **response.values}
        if ctx.actor is not None and "tenants" not in values:
            from oxsync.store.admin_ops import tenant_ids_for

            values["my_tenants"] = tenant_ids_for(ctx.store, ctx.actor) if ctx.actor.is_admin else []
        body = self.env.get_template(response.template).render(**values).encode("utf-8")
        return response.status, {}, HTML, body, ctx.cookies


class StaticFile(Resource):
    """One vendored file, served from memory with a validator (no directory listing, no paths)."""

    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes) -> None:
        super().__init__()
        import hashlib

        self.body = body
        self.content_type = content_type
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", self.content_type)
        request.setHeader(b"ETag", self.etag)
        request.setHeader(b"Cache-Control", b"max-age=3600")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        if request.getHeader(b"if-none-match") == self.etag:
            request.setResponseCode(304)
            return b""
        return self.body

    render_HEAD = render_GET


class ConsoleSite(Site):
    """The console listener's Site: the request-body bound is the console's form limit."""

    requestFactory = LimitedRequest

    def __init__(self, root: Resource, max_body: int) -> None:
        super().__init__(root)
        self.max_body = max_body
        self.displayTracebacks = False

    def protocol(self) -> LimitedHTTPChannel:  # type: ignore[override]
        channel = LimitedHTTPChannel()
        channel.max_request_body_bytes = self.max_body
        return channel


def build_root(console: Console) -> Resource:
    from oxsync.console.api import ApiResource

    root = ConsoleResource(console, console.router)
    top = _Top(root)
    static = Resource()
    base = resources.files("oxsync.console").joinpath("static")
    for name, ctype in STATIC_FILES.items():
        static.putChild(name.encode(), StaticFile(base.joinpath(name).read_bytes(), ctype))
    top.putChild(b"static", static)
    admin = Resource()
    admin.putChild(b"api", ApiResource(console))
    top.putChild(b"admin", admin)
    return top


class _Top(Resource):
    """`/static/...` and `/admin/api/...` by name, everything else to the console pages."""

    def __init__(self, pages: ConsoleResource) -> None:
        super().__init__()
        self.pages = pages

    def getChild(self, path: bytes, request: Any) -> Resource:
        request.postpath.insert(0, path)
        request.prepath.pop()
        return self.pages

    def render(self, request: Any) -> Any:
        return self.pages.render(request)


def install(service: Any) -> Console | None:
    """Attach the console listener to an `OxsyncService` when `[console] endpoint` is set."""
    from oxsync.listeners import HttpListenerService

    ctx = service.site.context
    settings = ctx.settings
    if not settings.console.endpoint:
        return None
    console = Console(settings, ctx.store, ctx.async_store, ctx.authenticator)
    site = ConsoleSite(build_root(console), settings.console.max_form_bytes)
    listener = HttpListenerService(service.async_store.reactor, settings.console.endpoint, site, name="console")
    listener.setServiceParent(service)
    service.console = console
    service.console_listener = listener
    return console
