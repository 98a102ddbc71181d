"""`oxsync user|group|resource`: account administration.

These verbs run with system privileges (the store's `accounts` functions), like the hosting panel's
account management; verbs that act as a user on folders live in `cli_transfer`.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from collections.abc import Callable

from oxsync.cli_common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Context,
    UsageError,
    err,
    group_id_of,
    out,
    parse_size,
    principal_names,
    table,
    usage_text,
    user_id_of,
)
from oxsync.model import Module, Protocol, ResourceKind
from oxsync.model.account import ALL_PROTOCOLS
from oxsync.store import accounts
from oxsync.store.folders import default_folder_id
from oxsync.store.removal import delete_group, delete_user
from oxsync.store.tx import Tx

GENERATED_PASSWORD_BYTES = 15  # 20 URL-safe characters, ~120 bits
FLAG_HELP = {
    "tenant_admin": "may administer this tenant in the web console and admin API",
    "platform_admin": "may administer every tenant",
    "public_folders": "right: sees the public folders (default on)",
    "sharing": "right: collaborative sharing - invite, delegate, share folders (default on)",
}


def _flags(args: argparse.Namespace) -> dict[str, bool]:
    return {name: getattr(args, name) for name in FLAG_HELP if getattr(args, name, None) is not None}


# ---------------------------------------------------------------- argument types


def parse_protocols(text: str) -> frozenset[Protocol]:
    """'outlook,mobile,dav,imap', 'all' or 'none'."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return ALL_PROTOCOLS
    if words in ([], ["none"]):
        return frozenset()
    try:
        return frozenset(Protocol(w) for w in words)
    except ValueError:
        choices = ", ".join(p.value for p in Protocol)
        raise argparse.ArgumentTypeError(f"protocols are {choices}, 'all' or 'none'") from None


def protocols_text(protocols: frozenset[Protocol]) -> str:
    return ",".join(sorted(p.value for p in protocols)) or "none"


# ---------------------------------------------------------------- passwords


def _add_password_options(parser: argparse.ArgumentParser, generate_flag: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password", metavar="P", help="the password (visible in the process list)")
    group.add_argument("--password-stdin", action="store_true", help="read the password from stdin (prompted on a terminal)")
    if generate_flag:
        group.add_argument("--generate-password", action="store_true", help="set a new random password and print it")


def _password(args: argparse.Namespace, generate_by_default: bool) -> tuple[str | None, bool]:
    """(password, was generated); the generated one is printed once by the caller, never logged."""
    if args.password_stdin:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("empty password on stdin")
        return password, False
    if args.password is not None:
        if not args.password:
            raise UsageError("empty password")
        return args.password, False
    if generate_by_default or getattr(args, "generate_password", False):
        return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES), True
    return None, False


# ---------------------------------------------------------------- users


def _usage_by_user(ctx: Context) -> dict[int, int]:
    return {u["id"]: u["usage_bytes"] for u in ctx.store.usage(ctx.tenant.id)["users"]}


def cmd_user_add(ctx: Context, args: argparse.Namespace) -> int:
    password, generated = _password(args, generate_by_default=True)
    assert password is not None
    with ctx.tx(write=True) as tx:
        user = accounts.create_user(
            tx, args.login, password, display_name=args.name or "", email=args.email,
            first_name=args.first_name or "", last_name=args.last_name or "",
            protocols=ALL_PROTOCOLS if args.protocols is None else args.protocols,
            quota_bytes=args.quota, aliases=args.alias, flags=_flags(args),
        )
    out(f"created user {user.login} <{user.email}> (id {user.id})")
    if generated:
        out(f"password: {password}")
    return EXIT_OK


def cmd_user_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx() as tx:
        users = accounts.list_users(tx)
    usage = _usage_by_user(ctx)
    rows = [(u.id, u.login, u.email, protocols_text(u.protocols), "yes" if u.active else "suspended",
             usage_text(usage.get(u.id, 0), u.quota_bytes)) for u in users]
    out(table(("id", "login", "email", "protocols", "active", "usage/quota"), rows))
    return EXIT_OK


def cmd_user_show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx() as tx:
        user = accounts.get_user(tx, user_id_of(tx, args.login))
        groups = [g.name for g in accounts.list_groups(tx) if user.id in g.members]
        defaults = {m.value: default_folder_id(tx, user.id, m) for m in Module}
    fields = (
        ("id", user.id), ("login", user.login), ("display name", user.display_name),
        ("first name", user.first_name), ("last name", user.last_name), ("email", user.email),
        ("aliases", ", ".join(user.aliases) or "-"), ("protocols", protocols_text(user.protocols)),
        ("status", "active" if user.active else "suspended"), ("groups", ", ".join(groups) or "-"),
        ("roles", ", ".join(r for r in ("tenant_admin", "platform_admin") if getattr(user, r)) or "-"),
        ("public folders", "yes" if user.public_folders else "no"), ("sharing", "yes" if user.sharing else "no"),
        ("storage", usage_text(_usage_by_user(ctx).get(user.id, 0), user.quota_bytes)),
        ("default folders", ", ".join(f"{m} {fid}" for m, fid in defaults.items())),
        ("address book entry", user.contact_id),
    )
    out(table(("field", "value"), fields))
    return EXIT_OK


def cmd_user_set(ctx: Context, args: argparse.Namespace) -> int:
    password, generated = _password(args, generate_by_default=False)
    given = {"display_name": args.name, "first_name": args.first_name, "last_name": args.last_name,
             "password": password, "protocols": args.protocols}
    changes: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if args.quota is not ...:
        changes["quota_bytes"] = args.quota
    if _flags(args):
        changes["flags"] = _flags(args)
    if not (changes or args.add_alias or args.remove_alias):
        raise UsageError("nothing to change")
    with ctx.tx(write=True) as tx:
        user_id = user_id_of(tx, args.login)
        for alias in args.remove_alias:
            accounts.remove_alias(tx, user_id, alias)
        for alias in args.add_alias:
            accounts.add_alias(tx, user_id, alias)
        user = accounts.update_user(tx, user_id, **changes)  # type: ignore[arg-type]
    out(f"updated user {user.login}")
    if generated:
        out(f"password: {password}")
    return EXIT_OK


def _set_active(active: bool) -> Callable[[Context, argparse.Namespace], int]:
    def handler(ctx: Context, args: argparse.Namespace) -> int:
        with ctx.tx(write=True) as tx:
            user = accounts.update_user(tx, user_id_of(tx, args.login), active=active)
        out(f"user {user.login} {'resumed' if active else 'suspended'}")
        return EXIT_OK

    return handler


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("not a terminal: confirm with --yes")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_user_delete(ctx: Context, args: argparse.Namespace) -> int:
    if not args.yes and not _confirmed(f"Delete {args.login} with all their folders and data?"):
        err("aborted")
        return EXIT_ERROR
    with ctx.tx(write=True) as tx:
        user_id = user_id_of(tx, args.login)
        delete_user(tx, user_id)
    out(f"deleted user {args.login} and all their data")
    return EXIT_OK


# ---------------------------------------------------------------- groups and resources


def _print_members(tx: Tx, group_id: int) -> None:
    group = accounts.get_group(tx, group_id)
    users = {u.id: u for u in accounts.list_users(tx)}
    out(f"group {group.name} ({group.display_name}): {len(group.members)} member(s)")
    out(table(("login", "display name"), [(users[m].login, users[m].display_name) for m in group.members]))


def cmd_group_add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx(write=True) as tx:
        members = [user_id_of(tx, login) for login in args.member]
        group = accounts.create_group(tx, args.group, args.name or "", members)
        _print_members(tx, group.id)
    return EXIT_OK


def cmd_group_members(ctx: Context, args: argparse.Namespace) -> int:
    changing = args.set is not None or args.add or args.remove
    with ctx.tx(write=bool(changing)) as tx:
        group_id = group_id_of(tx, args.group)
        if changing:
            members = set(accounts.get_group(tx, group_id).members if args.set is None else
                          (user_id_of(tx, login) for login in args.set))
            members |= {user_id_of(tx, login) for login in args.add}
            members -= {user_id_of(tx, login) for login in args.remove}
            accounts.set_group_members(tx, group_id, members)
        _print_members(tx, group_id)
    return EXIT_OK


def cmd_group_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx() as tx:
        logins, _ = principal_names(tx)
        rows = [(g.id, g.name, g.display_name, " ".join(logins[m] for m in g.members)) for g in accounts.list_groups(tx)]
    out(table(("id", "name", "display name", "members"), rows))
    return EXIT_OK


def cmd_group_delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx(write=True) as tx:
        delete_group(tx, group_id_of(tx, args.group))
    out(f"deleted group {args.group}")
    return EXIT_OK


def cmd_resource_add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx(write=True) as tx:
        res = accounts.create_resource(tx, args.resource, args.email, display_name=args.name or "",
                                       kind=ResourceKind(args.kind), description=args.description)
    out(f"created {res.kind.value} {res.name} <{res.email}> (id {res.id})")
    return EXIT_OK


def cmd_resource_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx() as tx:
        rows = [(r.id, r.name, r.kind.value, r.email, r.display_name, r.description) for r in accounts.list_resources(tx)]
    out(table(("id", "name", "kind", "email", "display name", "description"), rows))
    return EXIT_OK


def cmd_resource_delete(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx(write=True) as tx:
        resource_id = accounts.find_resource_id(tx, args.resource)
        if resource_id is None:
            raise CliError(f"no resource {args.resource!r}")
        accounts.delete_resource(tx, resource_id)
    out(f"deleted resource {args.resource}")
    return EXIT_OK


# ---------------------------------------------------------------- registration


def _register_users(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("user", help="accounts").add_subparsers(dest="action", required=True, metavar="ACTION")

    def names(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", help="display name")
        p.add_argument("--first-name")
        p.add_argument("--last-name")
        p.add_argument("--protocols", type=parse_protocols, help="outlook,mobile,dav,imap | all | none")
        for flag, text in FLAG_HELP.items():
            p.add_argument(f"--{flag.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=None,
                           help=text)

    p = users.add_parser("add", help="create an account (a random password is generated if none is given)")
    p.add_argument("login")
    _add_password_options(p, generate_flag=False)
    names(p)
    p.add_argument("--email", help="primary address (default LOGIN@DOMAIN)")
    p.add_argument("--alias", action="extend", nargs="+", default=[], metavar="A")
    p.add_argument("--quota", type=parse_size, help="storage quota (bytes, or 20M, 1G ...)")
    p.set_defaults(handler=cmd_user_add)
    users.add_parser("list", help="all accounts").set_defaults(handler=cmd_user_list)
    p = users.add_parser("show", help="one account in full")
    p.add_argument("login")
    p.set_defaults(handler=cmd_user_show)
    p = users.add_parser("set", help="change an account")
    p.add_argument("login")
    _add_password_options(p, generate_flag=True)
    names(p)
    p.add_argument("--quota", type=parse_size, default=..., help="storage quota; 'none' = unlimited")
    p.add_argument("--add-alias", action="extend", nargs="+", default=[], metavar="A")
    p.add_argument("--remove-alias", action="extend", nargs="+", default=[], metavar="A")
    p.set_defaults(handler=cmd_user_set)
    for verb, active in (("suspend", False), ("resume", True)):
        p = users.add_parser(verb, help=f"{verb} an account (data is kept)")
        p.add_argument("login")
        p.set_defaults(handler=_set_active(active))
    p = users.add_parser("delete", help="remove an account with all its data")
    p.add_argument("login")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_user_delete)
    from oxsync.cli_mail import register_user_verbs

    register_user_verbs(users)


def _register_groups_resources(sub: argparse._SubParsersAction) -> None:
    groups = sub.add_parser("group", help="user groups").add_subparsers(dest="action", required=True, metavar="ACTION")
    p = groups.add_parser("add", help="create a group")
    p.add_argument("group", metavar="NAME")
    p.add_argument("--name", help="display name")
    p.add_argument("--member", action="extend", nargs="+", default=[], metavar="LOGIN")
    p.set_defaults(handler=cmd_group_add)
    p = groups.add_parser("members", help="show or change the members of a group")
    p.add_argument("group", metavar="NAME")
    p.add_argument("--set", nargs="*", metavar="LOGIN", help="replace the member list")
    p.add_argument("--add", action="extend", nargs="+", default=[], metavar="LOGIN")
    p.add_argument("--remove", action="extend", nargs="+", default=[], metavar="LOGIN")
    p.set_defaults(handler=cmd_group_members)
    groups.add_parser("list", help="all groups").set_defaults(handler=cmd_group_list)
    p = groups.add_parser("delete", help="remove a group and its permission entries")
    p.add_argument("group", metavar="NAME")
    p.set_defaults(handler=cmd_group_delete)

    resources = sub.add_parser("resource", help="rooms and equipment").add_subparsers(dest="action", required=True,
                                                                                        metavar="ACTION")
    p = resources.add_parser("add", help="create a resource")
    p.add_argument("resource", metavar="NAME")
    p.add_argument("--email", required=True, metavar="ADDR")
    p.add_argument("--kind", choices=[k.value for k in ResourceKind], default=ResourceKind.ROOM.value)
    p.add_argument("--name", help="display name")
    p.add_argument("--description", default="")
    p.set_defaults(handler=cmd_resource_add)
    resources.add_parser("list", help="all resources").set_defaults(handler=cmd_resource_list)
    p = resources.add_parser("delete", help="remove a resource (meetings keep their other participants)")
    p.add_argument("resource", metavar="NAME")
    p.set_defaults(handler=cmd_resource_delete)


def register(sub: argparse._SubParsersAction) -> None:
    _register_users(sub)
    _register_groups_resources(sub)
