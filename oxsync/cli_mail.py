"""`oxsync mail queue|retry|drop` (the outbound mail queue) and `oxsync user alias` (login aliases and
send-as addresses).

Login aliases are addresses the account receives mail at and may log in with; send-as addresses are
the extra From addresses an administrator allows it to send with (by default only the primary
address may send). `user alias add` declares both unless `--login` or `--send-as` picks one.
"""

from __future__ import annotations

import argparse
import json
import time

from oxsync.cli_common import EXIT_OK, Context, UsageError, out, table, user_id_of
from oxsync.store import accounts, reminders, sending
from oxsync.store.outbound import STATES


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z" if ms else "-"


def cmd_mail_queue(ctx: Context, args: argparse.Namespace) -> int:
    mails = ctx.store.outbound.list(ctx.tenant.id, args.state or (), args.limit)
    if args.json:
        out(json.dumps([m.as_json() for m in mails], indent=2))
        return EXIT_OK
    rows = [(m.id, m.kind, m.state, m.attempts, _when(m.created_ms),
             _when(m.sent_ms) if m.state == "sent" else _when(m.next_try_ms), m.sender,
             ", ".join(m.recipients)[:60], m.subject[:40], m.last_error[:60] or "-") for m in mails]
    out(table(("id", "kind", "state", "tries", "queued", "sent/next try", "from", "to", "subject", "last error"),
              rows))
    return EXIT_OK


def cmd_mail_retry(ctx: Context, args: argparse.Namespace) -> int:
    ctx.tenant  # noqa: B018 - resolves (and checks) the tenant
    for mail_id in args.ids:
        ctx.store.outbound.retry(mail_id, ctx.tenant.id)
        out(f"mail {mail_id} queued again")
    return EXIT_OK


def cmd_mail_drop(ctx: Context, args: argparse.Namespace) -> int:
    for mail_id in args.ids:
        ctx.store.outbound.drop(mail_id, ctx.tenant.id)
        out(f"mail {mail_id} dropped")
    return EXIT_OK


def cmd_mail_itip_in(ctx: Context, args: argparse.Namespace) -> int:
    """For the MTA / Sieve pipe: always exit 0 once read (an ignored answer must not bounce the mail)."""
    import sys

    from oxsync.mail.itip_in import delivered, handle

    raw = sys.stdin.buffer.read(ctx.settings.limits.max_request_body_bytes)
    for outcome in (delivered if args.action == "delivered" else handle)(ctx.store, args.recipient, raw):
        out(outcome)
    return EXIT_OK


def _kinds(args: argparse.Namespace) -> tuple[bool, bool]:
    login, send_as = args.login_alias, args.send_as
    return (True, True) if not (login or send_as) else (login, send_as)


def cmd_alias_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx() as tx:
        user = accounts.get_user(tx, user_id_of(tx, args.login))
        send_as = sending.send_as_addresses(tx, user.id)
    if args.json:
        out(json.dumps({"primary": user.email, "login": user.aliases, "send_as": send_as}, indent=2))
        return EXIT_OK
    rows = [(user.email, "primary (receives, logs in, sends)")]
    rows += [(a, "login alias (receives, logs in)" + (", send-as" if a in send_as else "")) for a in user.aliases]
    rows += [(a, "send-as") for a in send_as if a not in user.aliases]
    out(table(("address", "use"), rows))
    return EXIT_OK


def cmd_alias_add(ctx: Context, args: argparse.Namespace) -> int:
    login, send_as = _kinds(args)
    with ctx.tx(write=True) as tx:
        user_id = user_id_of(tx, args.login)
        if login:
            accounts.add_alias(tx, user_id, args.address)
        if send_as:
            sending.add_send_as(tx, user_id, args.address)
    out(f"{args.address}: " + " and ".join(k for k, on in (("login alias", login), ("send-as", send_as)) if on))
    return EXIT_OK


def cmd_alias_remove(ctx: Context, args: argparse.Namespace) -> int:
    login, send_as = _kinds(args)
    explicit = args.login_alias or args.send_as
    removed = []
    with ctx.tx(write=True) as tx:
        user_id = user_id_of(tx, args.login)
        user = accounts.get_user(tx, user_id)
        if login and (explicit or args.address.lower() in user.aliases):
            accounts.remove_alias(tx, user_id, args.address)
            removed.append("login alias")
        if send_as and (explicit or args.address.lower() in sending.send_as_addresses(tx, user_id)):
            sending.remove_send_as(tx, user_id, args.address)
            removed.append("send-as")
        if not removed:
            raise UsageError(f"{args.address} is neither a login alias nor a send-as address of {args.login}")
    out(f"{args.address}: removed " + " and ".join(removed))
    return EXIT_OK


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "yes", "true", "1"):
        return True
    if text.lower() in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError("on or off")


def _hour(text: str) -> int | None:
    if text.lower() == "off":
        return None
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise argparse.ArgumentTypeError("an hour 0-23 (UTC) or off")
    return int(text)


def cmd_mail_options(ctx: Context, args: argparse.Namespace) -> int:
    changes = {k: v for k, v in (("reminder_mails", args.reminder_mails), ("digest_hour", args.digest_hour),
                                 ("collect_addresses", args.collect_addresses)) if v is not ...}
    with ctx.tx(write=bool(changes)) as tx:
        user_id = user_id_of(tx, args.login)
        current = reminders.set_options(tx, user_id, **changes) if changes else reminders.options(tx, user_id)
    if args.json:
        out(json.dumps(current, indent=2))
    else:
        out(table(("option", "value"), [
            ("task reminder mails", "on" if current["reminder_mails"] else "off"),
            ("daily task digest", "off" if current["digest_hour"] is None else f"{current['digest_hour']}:00 UTC"),
            ("collect addresses", "on" if current["collect_addresses"] else "off")]))
    return EXIT_OK


def _condition(text: str) -> dict[str, str]:
    fld, _, rest = text.strip().partition(" ")
    op, _, value = rest.strip().partition(" ")
    return {"field": fld, "op": op, "value": value.strip()}


def _action(text: str) -> dict[str, str]:
    kind, _, value = text.strip().partition(" ")
    return {"type": kind.replace("-", "_"), "value": value.strip()}


def _install_rules(ctx: Context, login: str) -> str:
    """Install the user's script on the mail server when one is configured; returns what happened."""
    from oxsync.mail import sieve

    if not ctx.settings.mail.imap_host:
        return "stored (no [mail] server configured: not installed)"
    with ctx.tx() as tx:
        user_id = user_id_of(tx, login)
    with ctx.store.session(ctx.tenant.id, user_id) as session:
        script = sieve.script_for(session)
        account = session.me().email
    sieve.install(ctx.settings.mail, account, script)
    return "installed on the mail server"


def cmd_rules(ctx: Context, args: argparse.Namespace) -> int:
    from oxsync.mail import rules as mail_rules
    from oxsync.mail import sieve

    with ctx.tx() as tx:
        user_id = user_id_of(tx, args.login)
    with ctx.store.session(ctx.tenant.id, user_id, write=args.rules_action != "list") as session:
        try:
            if args.rules_action == "add":
                rules = mail_rules.add_rule(session, {
                    "name": args.name, "match": "allof" if args.all else "anyof",
                    "conditions": [_condition(c) for c in args.conditions],
                    "actions": [_action(a) for a in args.actions]})
            elif args.rules_action == "remove":
                rules = mail_rules.remove_rule(session, args.name)
            elif args.rules_action == "clear":
                rules = mail_rules.clear_rules(session)
            else:
                rules = mail_rules.stored_rules(session)
        except sieve.RuleError as exc:
            raise UsageError(f"{args.login}: {exc}") from exc
    if args.rules_action == "list":
        if args.json:
            out(json.dumps(rules, indent=2))
        else:
            out(table(("rule", "match", "if", "then"), [
                (r["name"], r["match"], "; ".join(f"{c['field']} {c['op']} {c['value']}" for c in r["conditions"]) or "always",
                 "; ".join(f"{a['type']} {a['value']}".strip() for a in r["actions"])) for r in rules]))
        return EXIT_OK
    out(f"{len(rules)} rule(s) for {args.login}: " + _install_rules(ctx, args.login))
    return EXIT_OK


def register_user_verbs(users: argparse._SubParsersAction) -> None:
    rules = users.add_parser("rules", help="server-side mail filter rules (Sieve)").add_subparsers(
        dest="rules_action", required=True, metavar="ACTION")
    p = rules.add_parser("list", help="the account's rules, in order")
    p.add_argument("login")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_rules)
    p = rules.add_parser("add", help="add (or replace) a rule, e.g. --if 'from contains news@' --then 'move Junk'")
    p.add_argument("login")
    p.add_argument("name")
    p.add_argument("--if", dest="conditions", action="append", default=[], metavar="COND",
                   help="'from|to|cc|subject contains|is|matches TEXT' or 'size over|under 5M' (repeatable)")
    p.add_argument("--all", action="store_true", help="all conditions must hold (default: any)")
    p.add_argument("--then", dest="actions", action="append", default=[], metavar="ACTION",
                   help="'move FOLDER', 'mark-read', 'forward ADDRESS', 'discard' or 'stop' (repeatable)")
    p.set_defaults(handler=cmd_rules)
    for verb, text in (("remove", "remove a rule by name"), ("clear", "remove every rule")):
        p = rules.add_parser(verb, help=text)
        p.add_argument("login")
        if verb == "remove":
            p.add_argument("name")
        p.set_defaults(handler=cmd_rules)
    p = users.add_parser("mail-options", help="reminder mails, daily task digest, collected addresses")
    p.add_argument("login")
    p.add_argument("--reminder-mails", type=_on_off, default=..., metavar="on|off",
                   help="mail task reminders (and e-mail alarms) when due (default on)")
    p.add_argument("--digest-hour", type=_hour, default=..., metavar="H|off",
                   help="daily digest of current and upcoming tasks at this hour, UTC (default off)")
    p.add_argument("--collect-addresses", type=_on_off, default=..., metavar="on|off",
                   help="add recipients not yet in the contacts to 'Collected addresses' (default off)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_mail_options)
    alias = users.add_parser("alias", help="login aliases and send-as addresses").add_subparsers(
        dest="alias_action", required=True, metavar="ACTION")
    p = alias.add_parser("list", help="the account's addresses and what each may do")
    p.add_argument("login")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_alias_list)
    for verb, handler, text in (("add", cmd_alias_add, "declare an address (both kinds unless one is named)"),
                                ("remove", cmd_alias_remove, "withdraw an address")):
        p = alias.add_parser(verb, help=text)
        p.add_argument("login")
        p.add_argument("address")
        p.add_argument("--login", dest="login_alias", action="store_true", help="as a login alias (receives mail)")
        p.add_argument("--send-as", action="store_true", help="as an extra From address")
        p.set_defaults(handler=handler)


def register(sub: argparse._SubParsersAction) -> None:
    mail = sub.add_parser("mail", help="the outbound mail queue").add_subparsers(dest="action", required=True,
                                                                             metavar="ACTION")
    p = mail.add_parser("queue", help="list queued, sent and failed mail, newest first")
    p.add_argument("--state", action="append", choices=STATES, help="only these states (repeatable)")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_mail_queue)
    p = mail.add_parser("retry", help="send a failed or waiting mail again now")
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.set_defaults(handler=cmd_mail_retry)
    p = mail.add_parser("drop", help="give up on a mail that was not sent")
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.set_defaults(handler=cmd_mail_drop)
    p = mail.add_parser("itip-in", help="apply the iMIP REPLYs of a mail (on stdin) delivered to RECIPIENT")
    p.add_argument("recipient", help="the address the mail was delivered to (the organiser)")
    p.set_defaults(handler=cmd_mail_itip_in)
    p = mail.add_parser("delivered", help="a mail (on stdin) was delivered to RECIPIENT: iMIP REPLYs, collected sender")
    p.add_argument("recipient", help="the address the mail was delivered to")
    p.set_defaults(handler=cmd_mail_itip_in)
