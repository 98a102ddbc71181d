"""The `oxsync` command: builds the parser from the verb modules (`cli_serve`, `cli_admin` for users,
groups, resources and folders, `cli_transfer` for import/export, ...) and runs init, migrate, tenant,
quota and config itself. What the verbs share lives in `cli_common`, which never imports this module.

Every handler takes a `Context` and the parsed arguments and returns an exit code: 0 ok, 1 error,
2 usage. Store errors become one-line messages, never tracebacks; passwords are never logged.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any

import oxsync
from oxsync.cli_common import (
    DEFAULT_DOMAIN,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Context,
    Handler,
    UsageError,
    err,
    format_size,
    limit_text,
    out,
    parse_limit,
    parse_size,
    set_json_output,
    subcommand_actions,
    table,
    usage_text,
    user_id_of,
)
from oxsync.config import ConfigError, config_path
from oxsync.store.errors import StoreError

# ---------------------------------------------------------------- init, tenant, quota


def cmd_init(ctx: Context, args: argparse.Namespace) -> int:
    """Idempotent: the schema is migrated to the current version, an existing tenant is kept."""
    store = ctx.open_store(create=True)
    store.create_schema()
    domain = (args.domain or ctx.tenant_domain or DEFAULT_DOMAIN).strip().lower()
    if any(t.domain == domain for t in store.tenants()):
        out(f"schema up to date; tenant {domain} already exists")
        return EXIT_OK
    tenant = store.create_tenant(domain, max_accounts=args.max_accounts, quota_bytes=args.quota)
    out(f"created tenant {tenant.domain} (id {tenant.id}) in {ctx.settings.store.url}")
    return EXIT_OK


def cmd_migrate(ctx: Context, args: argparse.Namespace) -> int:
    """Bring the schema to this version's newest migration (SQLite and PostgreSQL alike)."""
    from oxsync.store.migrate import schema_state

    store = ctx.open_store()
    state, at, head = schema_state(store.engine)
    if state == "unknown":
        raise CliError(f"the database schema is at {at}, which this oxsync (schema {head}) does not know")
    if state == "current":
        out(f"schema already at {head}")
        return EXIT_OK
    store.create_schema()
    out(f"schema migrated from {at or 'nothing'} to {head}")
    return EXIT_OK


def cmd_tenant_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = []
    for tenant in ctx.store.tenants():
        usage = ctx.store.usage(tenant.id)
        count = f"{len(usage['users'])} / {limit_text(tenant.max_accounts)}"
        rows.append((tenant.id, tenant.domain, count, usage_text(usage["tenant"]["usage_bytes"], tenant.quota_bytes)))
    out(table(("id", "domain", "accounts", "storage"), rows))
    return EXIT_OK


def cmd_tenant_set(ctx: Context, args: argparse.Namespace) -> int:
    changes = {k: v for k, v in (("max_accounts", args.max_accounts), ("quota_bytes", args.quota)) if v is not ...}
    if not changes:
        raise UsageError("nothing to change: give --max-accounts and/or --quota")
    ctx.store.update_tenant(ctx.tenant.id, **changes)
    tenant = ctx.store.tenant(ctx.tenant.domain)
    out(f"tenant {tenant.domain}: max accounts {limit_text(tenant.max_accounts)}, "
        f"quota {format_size(tenant.quota_bytes)}")
    return EXIT_OK


def cmd_quota(ctx: Context, args: argparse.Namespace) -> int:
    usage = ctx.store.usage(ctx.tenant.id)
    users = usage["users"]
    if args.user:
        with ctx.tx() as tx:
            wanted = user_id_of(tx, args.user)
        users = [u for u in users if u["id"] == wanted]
    out(table(("login", "usage"), [(u["login"], usage_text(u["usage_bytes"], u["quota_bytes"])) for u in users]))
    t = usage["tenant"]
    out(f"\ntenant {t['domain']}: {usage_text(t['usage_bytes'], t['quota_bytes'])}; "
        f"accounts {len(usage['users'])} / {limit_text(ctx.tenant.max_accounts)}")
    return EXIT_OK


# ---------------------------------------------------------------- serve


def cmd_config_example(ctx: Context, args: argparse.Namespace) -> int:
    from oxsync.config_example import example_toml

    sys.stdout.write(example_toml())
    return EXIT_OK


def cmd_config_check(ctx: Context, args: argparse.Namespace) -> int:
    """The settings were read when the command started (errors end it there): say what was read."""
    path = config_path(args.config)
    out(f"{path}: ok" if path is not None else "no configuration file: every setting has its default")
    out(f"store: {ctx.settings.store.url}")
    return EXIT_OK


# ---------------------------------------------------------------- parser and entry point


def _register_local(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create the schema and the tenant")
    p.add_argument("--domain", help=f"tenant domain (default: --tenant or {DEFAULT_DOMAIN})")
    p.add_argument("--max-accounts", type=parse_limit, help="maximum number of accounts")
    p.add_argument("--quota", type=parse_size, help="tenant storage quota (bytes, or 20M, 1G ...)")
    p.set_defaults(handler=cmd_init)

    sub.add_parser("migrate", help="upgrade the database schema to this version (take a backup first)"
                   ).set_defaults(handler=cmd_migrate)

    tenant = sub.add_parser("tenant", help="tenant limits").add_subparsers(dest="action", required=True)
    tenant.add_parser("list", help="tenants with accounts and storage").set_defaults(handler=cmd_tenant_list)
    p = tenant.add_parser("set", help="change the account limit or storage quota ('none' = unlimited)")
    p.add_argument("--max-accounts", type=parse_limit, default=...)
    p.add_argument("--quota", type=parse_size, default=...)
    p.set_defaults(handler=cmd_tenant_set)

    config = sub.add_parser("config", help="the configuration file").add_subparsers(dest="action", required=True)
    config.add_parser("example", help="print an example file: every setting, its default and meaning").set_defaults(
        handler=cmd_config_example)
    config.add_parser("check", help="read the configuration (--config, $OXSYNC_CONFIG or /etc/oxsync/oxsync.toml)"
                      ).set_defaults(handler=cmd_config_check)

    p = sub.add_parser("quota", help="storage usage per user and for the tenant")
    p.add_argument("--user", metavar="LOGIN")
    p.set_defaults(handler=cmd_quota)



def build_parser() -> argparse.ArgumentParser:
    from oxsync import (
        cli_admin,
        cli_audit,
        cli_backup,
        cli_devices,
        cli_mail,
        cli_people,
        cli_serve,
        cli_transfer,
    )

    parser = argparse.ArgumentParser(prog="oxsync", description="oxsync groupware sync server and administration")
    parser.add_argument("--version", action="version", version=f"oxsync {oxsync.version()}")
    parser.add_argument("--config", metavar="PATH",
                        help="TOML configuration file (default: $OXSYNC_CONFIG, else /etc/oxsync/oxsync.toml if present)")
    parser.add_argument("--db", metavar="URL", help="database URL (overrides [store] url)")
    parser.add_argument("--tenant", metavar="DOMAIN", help="tenant to act on (default: the only one)")
    parser.add_argument("--json", action="store_true", help="list and show verbs print JSON on stdout")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_local(sub)
    cli_serve.register(sub)
    cli_backup.register(sub)
    cli_admin.register(sub)
    cli_transfer.register(sub)
    cli_devices.register(sub)
    cli_audit.register(sub)
    cli_mail.register(sub)
    cli_people.register(sub)
    accept_global_options_everywhere(parser)
    return parser


GLOBAL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--config", {"metavar": "PATH"}), ("--db", {"metavar": "URL"}), ("--tenant", {"metavar": "DOMAIN"}),
    ("--json", {"action": "store_true"}),
)


def accept_global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """`oxsync user list --tenant x.org --json` works like `oxsync --tenant x.org --json user list`: every
    subcommand also accepts the global options (suppressed defaults, so an absent one never overrides
    what was given before the verb)."""
    for action in subcommand_actions(parser):
        for sub in {id(p): p for p in action.choices.values()}.values():
            for flag, options in GLOBAL_OPTIONS:
                with contextlib.suppress(argparse.ArgumentError):  # the subcommand has this option already
                    sub.add_argument(flag, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **options)
            accept_global_options_everywhere(sub)


def _run(ctx: Context, handler: Handler, args: argparse.Namespace) -> int:
    try:
        code = handler(ctx, args)
        if code == EXIT_OK:
            from oxsync.cli_audit import record_cli_action

            record_cli_action(ctx, args)
        return code
    except UsageError as exc:
        err(f"oxsync: {exc}")
        return EXIT_USAGE
    except (CliError, StoreError) as exc:
        err(f"oxsync: {exc}")
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    set_json_output(bool(getattr(args, "json", False)))
    try:
        ctx = Context.from_args(args)
    except (ConfigError, OSError) as exc:
        err(f"oxsync: configuration: {exc}")
        return EXIT_ERROR
    try:
        return _run(ctx, args.handler, args)
    except OSError as exc:
        err(f"oxsync: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()

