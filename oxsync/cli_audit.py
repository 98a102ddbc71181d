"""`oxsync audit` and `oxsync token`, and the audit row every administrative CLI verb leaves.

The CLI's actor is `cli:<unix user>` (whoever can run it holds the database). Its row is written after
the verb succeeded, naming the verb and its target; options that carry secrets are never recorded.
"""

from __future__ import annotations

import argparse
import time

from oxsync.cli_common import EXIT_OK, Context, out, table
from oxsync.store import admin

READ_ONLY_ACTIONS = frozenset({"list", "show", None})
AUDITED_COMMANDS = frozenset({"user", "group", "resource", "device", "tenant", "folder", "import", "init", "token"})
TARGET_ARGS = ("login", "group", "resource", "device_id", "folder", "domain", "file")
SECRET_ARGS = frozenset({"password", "password_stdin", "generate_password"})


def record_cli_action(ctx: Context, args: argparse.Namespace) -> None:
    """After a successful administrative verb: one audit row (never its secrets)."""
    command, action = args.command, getattr(args, "action", None)
    if command not in AUDITED_COMMANDS or (action in READ_ONLY_ACTIONS and command not in ("import", "init")):
        return
    if command == "token":
        return  # token verbs audit themselves inside the store
    if command == "group" and action == "members" and not (args.set is not None or args.add or args.remove):
        return
    target = " ".join(str(getattr(args, a)) for a in TARGET_ARGS if getattr(args, a, None) not in (None, [], ...))
    shown = {k: v for k, v in vars(args).items()
             if k not in SECRET_ARGS and k not in ("handler", "command", "action", "config", "db", "tenant",
                                                   *TARGET_ARGS) and v not in (None, [], ..., False)}
    detail = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    tenant_id = ctx.tenant.id if command != "init" else None
    with ctx.store.engine.begin() as conn:
        admin.audit(conn, admin.cli_actor(), tenant_id, f"{command}.{action or 'run'}", target, detail)


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z" if ms else "-"


def cmd_audit(ctx: Context, args: argparse.Namespace) -> int:
    tenant_id = None if args.all else ctx.tenant.id
    rows = admin.read_audit(ctx.store, admin.cli_actor(), tenant_id, limit=args.limit)
    out(table(("when", "tenant", "who", "via", "from", "action", "target", "detail"),
              [(_when(r["ms"]), r["tenant_id"] if r["tenant_id"] is not None else "-", r["actor"], r["via"],
                r["address"] or "-", r["action"], r["target"], r["detail"]) for r in rows]))
    return EXIT_OK


def cmd_token_add(ctx: Context, args: argparse.Namespace) -> int:
    tenant_id = None if args.platform else ctx.tenant.id
    token_id, token = admin.create_token(ctx.store, admin.cli_actor(), args.name, tenant_id)
    scope = "every tenant" if tenant_id is None else ctx.tenant.domain
    out(f"token {token_id} ({scope}): {token}")
    out("shown once: keep it; send it as 'Authorization: Bearer <token>' to /admin/api/")
    return EXIT_OK


def cmd_token_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = admin.list_tokens(ctx.store, admin.cli_actor(), None if args.all else ctx.tenant.id)
    out(table(("id", "name", "tenant", "created by", "created", "last used", "state"),
              [(r["id"], r["name"], r["tenant_id"] if r["tenant_id"] is not None else "platform", r["created_by"],
                _when(r["created_ms"]), _when(r["last_used_ms"]), "revoked" if r["revoked"] else "active")
               for r in rows]))
    return EXIT_OK


def cmd_token_revoke(ctx: Context, args: argparse.Namespace) -> int:
    admin.revoke_token(ctx.store, admin.cli_actor(), args.token_id)
    out(f"token {args.token_id} revoked")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="administrative actions: who, what, when, from where (newest first)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--all", action="store_true", help="every tenant (and platform actions)")
    p.set_defaults(handler=cmd_audit)
    tokens = sub.add_parser("token", help="admin API tokens").add_subparsers(dest="action", required=True)
    p = tokens.add_parser("add", help="create a token (printed once) for the tenant, or --platform")
    p.add_argument("--name", default="")
    p.add_argument("--platform", action="store_true", help="a token for every tenant")
    p.set_defaults(handler=cmd_token_add)
    p = tokens.add_parser("list", help="tokens of the tenant (or --all)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(handler=cmd_token_list)
    p = tokens.add_parser("revoke", help="revoke a token at once")
    p.add_argument("token_id", type=int)
    p.set_defaults(handler=cmd_token_revoke)
