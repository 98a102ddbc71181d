"""The `oxsync` command: init, serve, tenant and quota administration; the other verbs live in
`cli_admin` (users, groups, resources, folders) and `cli_transfer` (import/export).

Every handler takes a `Context` and the parsed arguments and returns an exit code: 0 ok, 1 error,
2 usage. Store errors become one-line messages, never tracebacks; passwords are never logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import oxsync
from oxsync.config import DEMO_STORE_URL, ConfigError, Settings, apply_overrides, config_path, load_settings
from oxsync.model import Tenant
from oxsync.store import accounts
from oxsync.store.api import Store
from oxsync.store.errors import StoreError
from oxsync.store.folders import ALL_USERS
from oxsync.store.session import UserSession
from oxsync.store.tx import Tx

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEFAULT_DOMAIN = "example.com"

Handler = Callable[["Context", argparse.Namespace], int]


class CliError(Exception):
    """An expected failure reported as one line on stderr, exit code 1."""


class UsageError(CliError):
    """The command line is inconsistent (exit code 2)."""


# ---------------------------------------------------------------- formatting helpers

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNLIMITED = ("none", "unlimited", "-")


def format_size(size: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> 'unlimited'."""
    if size is None:
        return "unlimited"
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{int(value)} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def parse_size(text: str) -> int | None:
    """argparse type for quotas: bytes, or a K/M/G/T (binary) suffix; 'none'/'unlimited' -> None."""
    if text.strip().lower() in _UNLIMITED:
        return None
    match = _SIZE_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500000, 20M, 1.5G, none)")
    power = " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1024**power)


def parse_limit(text: str) -> int | None:
    """argparse type for counts: a non-negative integer or 'none'/'unlimited'."""
    if text.strip().lower() in _UNLIMITED:
        return None
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return int(text)


def limit_text(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


def usage_text(used: int, quota: int | None) -> str:
    if quota is None:
        return f"{format_size(used)} / unlimited"
    percent = 100 * used / quota if quota else 100.0
    return f"{format_size(used)} / {format_size(quota)} ({percent:.0f}%)"


class JsonText(str):
    """Output that is already JSON (`--json`): printed on stdout as it is."""


_json_output = False


def set_json_output(enabled: bool) -> None:
    """`--json`: tables become JSON arrays of objects on stdout; other messages go to stderr."""
    global _json_output
    _json_output = enabled


def _json_key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain left-aligned text table (no borders, two spaces between columns); with `--json`, a JSON
    array with one object per row, keyed by the headers in snake_case."""
    if _json_output:
        keys = [_json_key(h) for h in headers]
        return JsonText(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], ensure_ascii=False,
                                   default=str, indent=1))
    cells = [list(headers)] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _is_json(text: str) -> bool:
    if isinstance(text, JsonText):
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def out(text: str = "") -> None:
    """stdout; with `--json`, only JSON documents go there (other messages to stderr)."""
    print(text, file=sys.stderr if _json_output and not _is_json(text) else sys.stdout)


def err(text: str) -> None:
    print(text, file=sys.stderr)


# ---------------------------------------------------------------- context


def _sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (None for memory or another backend)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


class Context:
    """Settings, the store (opened on first use) and the chosen tenant of one CLI run."""

    def __init__(self, settings: Settings, tenant_domain: str | None) -> None:
        self.settings = settings
        self.tenant_domain = tenant_domain
        self._store: Store | None = None
        self._tenant: Tenant | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        overrides = {"store": {"url": args.db}} if args.db else None
        path = config_path(args.config)
        settings = load_settings(path, overrides)
        if path is None and not args.db and getattr(args, "demo", False):
            settings = apply_overrides(settings, {"store": {"url": DEMO_STORE_URL}})  # the demo keeps ./var/
        return cls(settings, args.tenant)

    def open_store(self, create: bool = False) -> Store:
        """Open the store; refuse to conjure an empty SQLite file unless `create` (init, demo)."""
        if self._store is None:
            path = _sqlite_path(self.settings.store.url)
            if path is not None and not create and not path.exists():
                raise CliError(f"no store at {path}: run `oxsync init` first")
            self._store = Store(self.settings)
            from oxsync.store.notify import install_notifier

            install_notifier(self._store)  # admin writes wake other nodes' Pings and pushes too
        return self._store

    @property
    def store(self) -> Store:
        return self.open_store()

    @property
    def tenant(self) -> Tenant:
        """--tenant, else the only tenant; several tenants without --tenant is a usage error."""
        if self._tenant is None:
            self._tenant = self._resolve_tenant()
        return self._tenant

    def use_tenant(self, tenant: Tenant | None, domain: str | None = None) -> None:
        """From now on act for `tenant` (None: resolve it again, from `domain` when given), e.g. after
        a command renamed or deleted the tenant, so that its audit row names the right one."""
        if domain is not None:
            self.tenant_domain = domain
        self._tenant = tenant

    def _resolve_tenant(self) -> Tenant:
        if self.tenant_domain:
            return self.store.tenant(self.tenant_domain)
        try:
            tenants = self.store.tenants()
        except Exception as exc:  # schema missing: the store's driver error, not a StoreError
            raise CliError(f"cannot read the store ({type(exc).__name__}): run `oxsync init` first") from exc
        if not tenants:
            raise CliError("no tenant yet: run `oxsync init --domain DOMAIN` first")
        if len(tenants) > 1:
            names = ", ".join(t.domain for t in tenants)
            raise UsageError(f"several tenants ({names}): choose one with --tenant")
        return tenants[0]

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Tx]:
        with self.store.transaction(self.tenant.id, write=write) as tx:
            yield tx

    @contextmanager
    def user_session(self, login: str, write: bool = False) -> Iterator[UserSession]:
        """One transaction acting as `login` (so the store's rights checks apply)."""
        with self.tx(write) as tx:
            yield UserSession(tx, user_id_of(tx, login))

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()


def user_id_of(tx: Tx, login: str) -> int:
    user_id = accounts.find_user_id(tx, login)
    if user_id is None:
        raise CliError(f"no user {login!r}")
    return user_id


def principal_names(tx: Tx) -> tuple[dict[int, str], dict[int, str]]:
    """(user id -> login, group id -> name), group 0 being all users."""
    users = {u.id: u.login for u in accounts.list_users(tx)}
    groups = {ALL_USERS: "all users"} | {g.id: g.name for g in accounts.list_groups(tx)}
    return users, groups


def group_id_of(tx: Tx, name: str) -> int:
    group_id = accounts.find_group_id(tx, name)
    if group_id is None:
        raise CliError(f"no group {name!r}")
    return group_id


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


def subcommand_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    """The subcommand groups of `parser`. argparse keeps them only in private attributes (no public way
    to walk a parser's subcommands), read here and nowhere else."""
    return [a for a in parser._actions  # noqa: SLF001 - argparse: no public list of a parser's actions
            if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001 - argparse: the subcommands' class


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

