"""Self-service mail filter rules (OXtender manual §6.2 "Filtre de courrier"): list, add, remove.

The same code as `oxsync user rules` (oxsync.mail.rules, checked by sieve.check_rule); the user's whole
Sieve script is then installed over ManageSieve on the console's mail pool (`ctx.after`), never on the
reactor or a store thread. Without a mail server the rules are kept and the page says they are not
applied; an unreachable mail server is reported on the page, the rules stay saved.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from oxsync.console.web import Ctx, Page, Redirect, Response, Router
from oxsync.mail import rules as mail_rules
from oxsync.mail import sieve
from oxsync.store import selfservice
from oxsync.store.errors import InvalidData

FORM_ROWS = 3
"""Condition and action rows the add form offers (a rule may need fewer)."""
NOTICES = ("saved", "rules_unreachable")


def _rule_from_form(ctx: Ctx) -> dict[str, Any]:
    conditions = [{"field": ctx.field(f"if_field_{i}"), "op": ctx.field(f"if_op_{i}"), "value": ctx.field(f"if_value_{i}")}
                  for i in range(FORM_ROWS) if ctx.field(f"if_value_{i}")]
    actions = [{"type": ctx.field(f"then_type_{i}"), "value": ctx.field(f"then_value_{i}")}
               for i in range(FORM_ROWS) if ctx.field(f"then_type_{i}")]
    return {"name": ctx.field("name"), "match": ctx.field("match"), "conditions": conditions, "actions": actions}


def _change(ctx: Ctx, edit: Any, detail: str) -> Response:
    """Apply `edit(session)` to one's own rules, audit it, and ask for the script's installation."""
    actor = ctx.actor
    assert actor is not None and actor.tenant_id is not None and actor.user_id is not None
    with ctx.store.session(actor.tenant_id, actor.user_id, write=True) as session:
        try:
            edit(session)
        except sieve.RuleError as exc:
            raise InvalidData(str(exc), field="rule") from None
        selfservice.record(session, actor, actor.tenant_id, "self.mail_rules", detail)
        install_script(ctx, session, "/me/rules?notice=rules_unreachable")
    return Redirect("/me/rules?notice=saved")


def install_script(ctx: Ctx, session: Any, failed: str) -> None:
    """Ask for the user's whole Sieve script (rules + out-of-office) to be installed after this request's
    store work, when a mail server is configured; `failed`: where to send the browser if it cannot be."""
    mail = ctx.settings.mail
    if mail.imap_host:
        ctx.after = partial(sieve.install, mail, session.me().email, sieve.script_for(session))
        ctx.after_failed = failed


def register(r: Router) -> None:
    @r.add("GET", "/me/rules", "user")
    def rules_page(ctx: Ctx) -> Response:
        actor = ctx.actor
        assert actor is not None and actor.tenant_id is not None and actor.user_id is not None
        with ctx.store.session(actor.tenant_id, actor.user_id) as session:
            rules = mail_rules.stored_rules(session)
        notice = ctx.query.get("notice", "")
        return Page("rules.html", {"rules": rules, "rows": range(FORM_ROWS), "fields": [*sieve.FIELDS, "size"],
                                   "ops": [*sieve.OPERATORS, *sieve.SIZE_OPERATORS], "actions": sieve.ACTIONS,
                                   "mail_server": bool(ctx.settings.mail.imap_host),
                                   "notice": notice if notice in NOTICES else ""})

    @r.add("POST", "/me/rules", "user")
    def rule_add(ctx: Ctx) -> Response:
        rule = _rule_from_form(ctx)
        return _change(ctx, lambda session: mail_rules.add_rule(session, rule), f"add={rule['name'][:100]}")

    @r.add("POST", "/me/rules/remove", "user")
    def rule_remove(ctx: Ctx) -> Response:
        name = ctx.field("name")
        return _change(ctx, lambda session: mail_rules.remove_rule(session, name), f"remove={name[:100]}")
