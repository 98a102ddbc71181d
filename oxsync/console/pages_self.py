"""Self-service for every account (OXtender manual, chapter 6): password, own address book entry,
out-of-office, and the account's own set-up instructions."""

from __future__ import annotations

from oxsync.console.pages_accounts import setup_values
from oxsync.console.pages_rules import install_script
from oxsync.console.web import Ctx, Page, Redirect, Response, Router
from oxsync.store import selfservice
from oxsync.store.errors import AuthenticationFailed, InvalidData


def _me(ctx: Ctx, notice: str = "", error: str = "", status: int = 200) -> Response:
    assert ctx.actor is not None and ctx.actor.tenant_id is not None and ctx.actor.user_id is not None
    tid, uid = ctx.actor.tenant_id, ctx.actor.user_id
    with ctx.store.session(tid, uid) as session:
        user = session.me()
    return Page("me.html", {"user": user, "gab": selfservice.gab_entry(ctx.store, tid, uid),
                            "gab_fields": selfservice.GAB_FIELDS, "oof": selfservice.get_oof(ctx.store, tid, uid),
                            "mail_options": selfservice.mail_options(ctx.store, tid, uid), "hours": range(24),
                            "notice": notice, "error": error, "min_length": selfservice.MIN_PASSWORD_LENGTH,
                            **setup_values(ctx, user)}, status)


def _oof_time(text: str) -> str:
    """`2026-12-24T09:00` from a datetime-local field -> the stored ActiveSync form (UTC)."""
    text = text.strip()
    if not text:
        return ""
    if len(text) == 16 and text[10] == "T":
        return f"{text}:00.000Z"
    raise InvalidData(f"not a date and time: {text!r}", field="start")


def register(r: Router) -> None:
    @r.add("GET", "/me", "user")
    def me(ctx: Ctx) -> Response:
        notice = ctx.query.get("notice", "")
        return _me(ctx, notice=notice if notice in ("saved", "oof_unreachable") else "")

    @r.add("POST", "/me/password", "user")
    def password(ctx: Ctx) -> Response:
        assert ctx.actor is not None and ctx.actor.tenant_id is not None and ctx.actor.user_id is not None
        try:
            selfservice.change_password(ctx.store, ctx.actor, ctx.actor.tenant_id, ctx.actor.user_id,
                                        ctx.raw_field("current"), ctx.raw_field("new"), ctx.raw_field("repeat"))
        except (InvalidData, AuthenticationFailed) as exc:  # mismatch, too short, wrong current password
            return _me(ctx, error=str(exc), status=400)
        return _me(ctx, notice="password_changed")

    @r.add("POST", "/me/gab", "user")
    def gab(ctx: Ctx) -> Response:
        assert ctx.actor is not None and ctx.actor.tenant_id is not None and ctx.actor.user_id is not None
        values = {name: ctx.field(name) for name in selfservice.GAB_FIELDS if name in ctx.form}
        selfservice.update_gab_entry(ctx.store, ctx.actor, ctx.actor.tenant_id, ctx.actor.user_id, values)
        return _me(ctx, notice="saved")

    @r.add("POST", "/me/oof", "user")
    def oof(ctx: Ctx) -> Response:
        assert ctx.actor is not None and ctx.actor.tenant_id is not None and ctx.actor.user_id is not None
        tid, uid = ctx.actor.tenant_id, ctx.actor.user_id
        selfservice.set_oof(ctx.store, ctx.actor, tid, uid, ctx.field("state", "0"),
                            ctx.raw_field("message"), _oof_time(ctx.field("start")), _oof_time(ctx.field("end")))
        with ctx.store.session(tid, uid) as session:  # the vacation rule in the mail server, as EAS Oof does
            install_script(ctx, session, "/me?notice=oof_unreachable")
        return Redirect("/me?notice=saved")

    @r.add("POST", "/me/mail-options", "user")
    def mail_options(ctx: Ctx) -> Response:
        assert ctx.actor is not None and ctx.actor.tenant_id is not None and ctx.actor.user_id is not None
        hour = ctx.field("digest_hour")
        if hour and not hour.isdigit():
            raise InvalidData("the digest hour is 0-23 (UTC)", field="digest_hour")
        selfservice.set_mail_options(ctx.store, ctx.actor, ctx.actor.tenant_id, ctx.actor.user_id,
                                     reminder_mails=ctx.checked("reminder_mails"),
                                     digest_hour=int(hour) if hour else None)
        return _me(ctx, notice="saved")
