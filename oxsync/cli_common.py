"""What every `oxsync` verb module shares: the `Context`, output (`out`, `err`, `table`, JSON mode),
exit codes and errors, size parsing, principal look-ups and `subcommand_actions`.

The verb modules (`cli_*`) import this; `oxsync.cli` imports them to build the parser, and no verb
imports `oxsync.cli` (the import graph stays one-way).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from oxsync.config import DEMO_STORE_URL, Settings, apply_overrides, config_path, load_settings
from oxsync.model import Tenant
from oxsync.store import accounts
from oxsync.store.api import Store
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


def subcommand_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    """The subcommand groups of `parser`. argparse keeps them only in private attributes (no public way
    to walk a parser's subcommands), read here and nowhere else."""
    return [a for a in parser._actions  # noqa: SLF001 - argparse: no public list of a parser's actions
            if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001 - argparse: the subcommands' class
