"""Accounts (the FAQ's "Gestion" table and the per-account icons), folders and sharing, set-up pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from oxsync.advertised import imap_server, smtp_server
from oxsync.console.pages_base import parse_size
from oxsync.console.web import Ctx, Page, Redirect, Response, Router
from oxsync.endpoints import public_host, public_scheme
from oxsync.model import Protocol
from oxsync.model.account import ACCOUNT_FLAGS
from oxsync.model.permissions import LEVEL_NAMES
from oxsync.store import admin_mail, admin_ops
from oxsync.store.errors import InvalidData

RIGHT_FLAGS = ("public_folders", "sharing")
SORTS = ("login", "display_name", "email", "active", "usage_bytes")


def protocols_of(ctx: Ctx) -> list[Protocol]:
    return [p for p in Protocol if ctx.checked(f"proto_{p.value}")]


def flags_of(ctx: Ctx, names: tuple[str, ...]) -> dict[str, bool]:
    return {name: ctx.checked(f"flag_{name}") for name in names}


def editable_flags(ctx: Ctx) -> tuple[str, ...]:
    assert ctx.actor is not None
    return tuple(f for f in ACCOUNT_FLAGS if f != "platform_admin" or ctx.actor.platform)


def register(r: Router) -> None:
    @r.add("GET", "/t/{tid}/accounts")
    def account_list(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        sort = ctx.query.get("sort", "login")
        sort = sort if sort in SORTS else "login"
        descending = ctx.query.get("dir") == "desc"
        try:
            page = max(1, int(ctx.query.get("page", "1")))
        except ValueError:
            page = 1
        text = ctx.query.get("q", "")[:200]
        result = admin_ops.list_accounts(ctx.store, ctx.actor, ctx.tenant_id, text, sort, descending, page,
                                         ctx.settings.console.page_size)
        def link(**changes: Any) -> str:
            values = {"q": text, "sort": sort, "dir": "desc" if descending else "asc", "page": page, **changes}
            return f"/t/{ctx.tenant_id}/accounts?" + urlencode({k: v for k, v in values.items() if v not in ("", None)})
        return Page("accounts.html", {"r": result, "tid": ctx.tenant_id, "q": text, "sort": sort,
                                      "descending": descending, "link": link, "protocols": list(Protocol)})

    @r.add("GET", "/t/{tid}/accounts/new")
    def account_new(ctx: Ctx) -> Response:
        return Page("account_new.html", {"tid": ctx.tenant_id, "protocols": list(Protocol),
                                         "flags": editable_flags(ctx)})

    @r.add("POST", "/t/{tid}/accounts")
    def account_create(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        user, generated = admin_ops.create_account(
            ctx.store, ctx.actor, ctx.tenant_id, ctx.field("login"), password=ctx.raw_field("password") or None,
            display_name=ctx.field("display_name"), email=ctx.field("email") or None, protocols=protocols_of(ctx),
            flags=flags_of(ctx, editable_flags(ctx)), quota_bytes=parse_size(ctx.field("quota")),
            aliases=[a for a in ctx.field("aliases").replace(",", " ").split() if a])
        return _account_page(ctx, user.id, notice="created", password=generated)

    @r.add("GET", "/t/{tid}/accounts/{uid}")
    def account_show(ctx: Ctx) -> Response:
        return _account_page(ctx, ctx.int_param("uid"))

    @r.add("POST", "/t/{tid}/accounts/{uid}")
    def account_update(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid = ctx.int_param("uid")
        quota: Any = parse_size(ctx.field("quota")) if "quota" in ctx.form else ...
        admin_ops.update_account(
            ctx.store, ctx.actor, ctx.tenant_id, uid, display_name=ctx.field("display_name") or None,
            protocols=protocols_of(ctx), flags=flags_of(ctx, editable_flags(ctx)), quota_bytes=quota)
        return _account_page(ctx, uid, notice="saved")

    @r.add("POST", "/t/{tid}/accounts/{uid}/status")
    def account_status(ctx: Ctx) -> Response:
        """Suspend / resume (data kept). htmx swaps the table row; without JavaScript, back to the list."""
        assert ctx.actor is not None
        active = ctx.field("active") == "1"
        user = admin_ops.update_account(ctx.store, ctx.actor, ctx.tenant_id, ctx.int_param("uid"), active=active)
        if ctx.htmx:
            usage = admin_ops.get_account(ctx.store, ctx.actor, ctx.tenant_id, user.id)[2]
            mail = admin_mail.account_mail(ctx.store, ctx.actor, ctx.tenant_id, user.id)
            return Page("account_row.html", {"u": user, "usage": usage, "tid": ctx.tenant_id,
                                             "protocols": list(Protocol),
                                             "mail": {**mail, "send_as": len(mail["send_as"])}})
        back = ctx.field("back")
        return Redirect(back if back.startswith(f"/t/{ctx.tenant_id}/") else f"/t/{ctx.tenant_id}/accounts/{user.id}")

    @r.add("POST", "/t/{tid}/accounts/{uid}/password")
    def account_password(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid = ctx.int_param("uid")
        password = admin_ops.reset_password(ctx.store, ctx.actor, ctx.tenant_id, uid, ctx.raw_field("password") or None)
        return _account_page(ctx, uid, notice="password_set",
                             password=None if ctx.raw_field("password") else password)

    @r.add("POST", "/t/{tid}/accounts/{uid}/aliases")
    def account_aliases(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid = ctx.int_param("uid")
        admin_ops.set_aliases(ctx.store, ctx.actor, ctx.tenant_id, uid, add=ctx.fields("add"),
                              remove=ctx.fields("remove"))
        return Redirect(f"/t/{ctx.tenant_id}/accounts/{uid}")

    @r.add("POST", "/t/{tid}/accounts/{uid}/mail")
    def account_mail(ctx: Ctx) -> Response:
        """Send-as addresses (the FAQ's "alias d'expédition") and the address collection switch."""
        assert ctx.actor is not None
        uid = ctx.int_param("uid")
        admin_mail.set_account_mail(ctx.store, ctx.actor, ctx.tenant_id, uid,
                                    add_send_as=[a for a in ctx.field("add_send_as").replace(",", " ").split() if a],
                                    remove_send_as=ctx.fields("remove_send_as"),
                                    collect_addresses=ctx.checked("collect_addresses"))
        return Redirect(f"/t/{ctx.tenant_id}/accounts/{uid}")

    @r.add("POST", "/t/{tid}/accounts/{uid}/delete")
    def account_delete(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid = ctx.int_param("uid")
        admin_ops.delete_account(ctx.store, ctx.actor, ctx.tenant_id, uid, ctx.field("confirm"))
        return Redirect(f"/t/{ctx.tenant_id}/accounts")

    # ------------------------------------------------------------ folders and sharing

    @r.add("GET", "/t/{tid}/accounts/{uid}/folders")
    def folders(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid = ctx.int_param("uid")
        user = admin_ops.get_account(ctx.store, ctx.actor, ctx.tenant_id, uid)[0]
        rows = admin_ops.user_folders(ctx.store, ctx.actor, ctx.tenant_id, uid)
        users = admin_ops.list_accounts(ctx.store, ctx.actor, ctx.tenant_id, per_page=500)["users"]
        groups = admin_ops.list_groups(ctx.store, ctx.actor, ctx.tenant_id)
        names = {(u.id, False): u.login for u in users} | {(g.id, True): g.display_name for g in groups}
        names[(0, True)] = "*"
        return Page("folders.html", {"user": user, "folders": rows, "tid": ctx.tenant_id, "users": users,
                                     "groups": groups, "names": names, "levels": LEVEL_NAMES})

    @r.add("POST", "/t/{tid}/accounts/{uid}/folders/{fid}/share")
    def share(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid, fid = ctx.int_param("uid"), ctx.int_param("fid")
        kind, _, number = ctx.field("who").partition(":")
        if kind not in ("user", "group") or not number.isdigit():
            raise InvalidData("choose a user or a group", field="who")
        level_text = ctx.field("level")
        level = None if level_text in ("", "none") else int(level_text) if level_text.isdigit() else -1
        admin_ops.share_folder(ctx.store, ctx.actor, ctx.tenant_id, uid, fid, int(number), kind == "group", level)
        return Redirect(f"/t/{ctx.tenant_id}/accounts/{uid}/folders")

    @r.add("GET", "/t/{tid}/accounts/{uid}/setup")
    def setup(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        user = admin_ops.get_account(ctx.store, ctx.actor, ctx.tenant_id, ctx.int_param("uid"))[0]
        return Page("setup.html", {"user": user, "tid": ctx.tenant_id, **setup_values(ctx, user)})


def setup_values(ctx: Ctx, user: Any) -> dict[str, Any]:
    """Connection settings per client, from the same settings `oxsync serve` prints them from: the public
    host and scheme, and the IMAP/SMTP servers of `oxsync.advertised` (as autoconfig and profiles)."""
    server = ctx.settings.server
    scheme, host = public_scheme(server), public_host(server)
    base = f"{scheme}://{host}"
    imap = imap_server(ctx.settings)
    return {
        "profile": f"{base}/profile", "profile_mac": f"{base}/profile?mail=imap" if imap else "",
        "autoconfig": f"{base}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={quote(user.email, safe='@')}",
        "imap": imap, "smtp": smtp_server(ctx.settings),
        "eas_server": host, "eas_ssl": scheme == "https", "ox_url": base, "udp_port": server.udp_port,
        "freebusy": f"{base}/servlet/webdav.freebusy?username=%NAME%&server=%SERVER%",
        "caldav": f"{base}/dav/calendars/{user.login}/", "carddav": f"{base}/dav/addressbooks/{user.login}/",
        "wellknown": f"{base}/.well-known/caldav",
    }


def _account_page(ctx: Ctx, uid: int, notice: str = "", password: str | None = None) -> Response:
    assert ctx.actor is not None
    user, group_ids, usage = admin_ops.get_account(ctx.store, ctx.actor, ctx.tenant_id, uid)
    groups = [g for g in admin_ops.list_groups(ctx.store, ctx.actor, ctx.tenant_id) if g.id in group_ids]
    devices = admin_ops.list_devices(ctx.store, ctx.actor, ctx.tenant_id, uid)
    return Page("account.html", {"user": user, "groups": groups, "usage": usage, "tid": ctx.tenant_id,
                                 "notice": notice, "password": password, "protocols": list(Protocol),
                                 "flags": editable_flags(ctx), "devices": devices,
                                 "mail": admin_mail.account_mail(ctx.store, ctx.actor, ctx.tenant_id, uid)})
