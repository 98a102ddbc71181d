"""Sign-in, language switch, the tenant home page, the audit log, API tokens and the platform pages."""

from __future__ import annotations

import secrets

from oxsync.console import i18n
from oxsync.console.session import LANG_COOKIE, SignedIn
from oxsync.console.web import Ctx, Page, Redirect, Response, Router
from oxsync.store import admin, admin_ops
from oxsync.store.errors import AccessRefused, AuthenticationFailed, InvalidData


def _parse_limit(text: str) -> int | None:
    text = text.strip().lower()
    if text in ("", "none", "unlimited", "-", "∞"):
        return None
    if not text.isdigit():
        raise InvalidData(f"not a whole number: {text!r}", field="limit")
    return int(text)


def parse_size(text: str) -> int | None:
    """'500000', '20M', '1.5G', or empty / 'none' for unlimited (binary units, as the CLI)."""
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text in ("", "none", "unlimited", "-", "∞"):
        return None
    power = {"k": 1, "m": 2, "g": 3, "t": 4}.get(text[-1:], 0)
    number = text[:-1] if power else text
    try:
        value = float(number)
    except ValueError:
        raise InvalidData(f"not a size: {text!r}", field="quota") from None
    if value < 0:
        raise InvalidData("a size cannot be negative", field="quota")
    return int(value * 1024**power)


def register(r: Router) -> None:
    @r.add("GET", "/", "user")
    def index(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        if ctx.actor.is_admin:
            tenant = ctx.actor.tenant_id if not ctx.actor.platform else (ctx.actor.tenant_id or 0)
            return Redirect(f"/t/{tenant}")
        return Redirect("/me")

    @r.add("GET", "/login", "public")
    def login_page(ctx: Ctx) -> Response:
        nonce = secrets.token_urlsafe(18)
        ctx.cookies.append((b"oxpre", nonce.encode(), {}))
        token = ctx.services.signer.csrf_token(SignedIn(0, 0, nonce))
        return Page("login.html", {"login_csrf": token, "error": ctx.query.get("error", "")})

    @r.add("POST", "/login", "public")
    def login(ctx: Ctx) -> Response:
        t = i18n.translator(ctx.lang)
        try:
            tenant_id, user_id = admin.console_login(ctx.store, ctx.field("login"), ctx.raw_field("password"))
        except AuthenticationFailed:
            ctx.login_outcome = True
            return _login_again(ctx, t("login_failed"), 401)
        except AccessRefused:
            ctx.login_outcome = None
            return _login_again(ctx, t("login_suspended"), 403)
        ctx.login_outcome = False
        raw = ctx.services.signer.issue(tenant_id, user_id)
        ctx.cookies.append((b"oxconsole", raw.encode(), {"max_age": str(ctx.services.signer.max_age).encode()}))
        ctx.cookies.append((b"oxpre", b"", {"max_age": b"0"}))
        return Redirect("/")

    login.throttled = True  # type: ignore[attr-defined]

    @r.add("POST", "/logout", "user")
    def logout(ctx: Ctx) -> Response:
        ctx.cookies.append((b"oxconsole", b"", {"max_age": b"0"}))
        return Redirect("/login")

    @r.add("GET", "/lang/{code}", "public")
    def language(ctx: Ctx) -> Response:
        code = ctx.params["code"]
        if code in i18n.LANGUAGES:
            ctx.cookies.append((LANG_COOKIE, code.encode(), {"max_age": b"31536000"}))
        back = ctx.query.get("back", "/")
        return Redirect(back if back.startswith("/") and not back.startswith("//") else "/")

    @r.add("GET", "/t/{tid}")
    def home(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        summary = admin_ops.tenant_summary(ctx.store, ctx.actor, ctx.tenant_id)
        return Page("home.html", {"s": summary, "tid": ctx.tenant_id})

    @r.add("GET", "/t/{tid}/audit")
    def audit_page(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        before = ctx.query.get("before")
        rows = admin.read_audit(ctx.store, ctx.actor, ctx.tenant_id, limit=ctx.settings.console.audit_page_size,
                                before_id=int(before) if before and before.isdigit() else None)
        return Page("audit.html", {"rows": rows, "tid": ctx.tenant_id})

    @r.add("GET", "/t/{tid}/tokens")
    def tokens(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        return Page("tokens.html", {"tokens": admin.list_tokens(ctx.store, ctx.actor, ctx.tenant_id),
                                    "tid": ctx.tenant_id, "new_token": None})

    @r.add("POST", "/t/{tid}/tokens")
    def token_create(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        scope = None if ctx.field("scope") == "platform" else ctx.tenant_id
        token_id, token = admin.create_token(ctx.store, ctx.actor, ctx.field("name"), scope)
        return Page("tokens.html", {"tokens": admin.list_tokens(ctx.store, ctx.actor, ctx.tenant_id),
                                    "tid": ctx.tenant_id, "new_token": token, "new_token_id": token_id})

    @r.add("POST", "/t/{tid}/tokens/{token}/revoke")
    def token_revoke(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        admin.revoke_token(ctx.store, ctx.actor, ctx.int_param("token"))
        return Redirect(f"/t/{ctx.tenant_id}/tokens")

    # ------------------------------------------------------------ platform

    @r.add("GET", "/platform/tenants", "platform")
    def tenants(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        return Page("tenants.html", {"rows": admin_ops.list_tenants(ctx.store, ctx.actor)})

    @r.add("POST", "/platform/tenants", "platform")
    def tenant_create(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        tenant_id = admin_ops.create_tenant(ctx.store, ctx.actor, ctx.field("domain"),
                                            _parse_limit(ctx.field("max_accounts")), parse_size(ctx.field("quota")))
        return Redirect(f"/t/{tenant_id}")

    @r.add("POST", "/platform/tenants/{tid}", "platform")
    def tenant_limits(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        admin_ops.set_tenant_limits(ctx.store, ctx.actor, ctx.tenant_id,
                                    max_accounts=_parse_limit(ctx.field("max_accounts")),
                                    quota_bytes=parse_size(ctx.field("quota")))
        return Redirect("/platform/tenants")


def _login_again(ctx: Ctx, message: str, status: int) -> Response:
    nonce = secrets.token_urlsafe(18)
    ctx.cookies.append((b"oxpre", nonce.encode(), {}))
    token = ctx.services.signer.csrf_token(SignedIn(0, 0, nonce))
    return Page("login.html", {"login_csrf": token, "error": message, "login": ctx.field("login")}, status)



