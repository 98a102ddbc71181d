"""Moving people in and out: `export --user U --all DIR` / `import --user U DIR` (every folder with its
tree and permissions), `tenant rename|delete`, `user rename`.

The directory holds one .vcf or .ics file per folder and `manifest.json` (format `oxsync-export/1`):
the folders with their parent, title, module, colour, whether they are a default folder, their file
and their permission entries by name (user login, group name or "all users"), so an import into
another server or tenant maps them by name. Files are written 0600 in a 0700 directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from oxsync import cli_transfer
from oxsync.cli_common import (
    EXIT_OK,
    CliError,
    Context,
    UsageError,
    err,
    out,
    principal_names,
    subcommand_actions,
    user_id_of,
)
from oxsync.cli_transfer import PARSERS, RENDERERS, Outcome, _write_all
from oxsync.model import Module
from oxsync.model.folder import PRIVATE_ROOT
from oxsync.model.permissions import Permission, Rights
from oxsync.store import relabel
from oxsync.store.folders import ALL_USERS, default_folder_id
from oxsync.store.session import UserSession

MANIFEST = "manifest.json"
FORMAT = "oxsync-export/1"
FORMAT_OF_MODULE = {Module.CONTACT: "vcf", Module.CALENDAR: "ics", Module.TASK: "ics"}


def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:40] or "folder"


def _own_folders(session: UserSession) -> list[Any]:
    return [fa.folder for fa in session.list_folders()
            if fa.folder.owner == session.user_id and not fa.shared and fa.folder.module in FORMAT_OF_MODULE]


def export_all(ctx: Context, args: argparse.Namespace) -> int:
    target = Path(args.all)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target, 0o700)
    entries, total, left_total = [], 0, 0
    with ctx.user_session(args.user) as session:
        logins, groups = principal_names(session.tx)
        for folder in _own_folders(session):
            fmt = FORMAT_OF_MODULE[folder.module]
            objects = session.list_objects(folder.id)
            text, left_out = RENDERERS[fmt](objects, argparse.Namespace(vcard_version="4.0"))
            name = f"{folder.id}-{_slug(folder.title)}.{fmt}"
            _private_file(target / name, text)
            total, left_total = total + len(objects) - left_out, left_total + left_out
            entries.append({
                "id": folder.id, "parent": folder.parent_id, "title": folder.title, "module": folder.module.value,
                "default": folder.default_folder, "color": folder.color, "file": name,
                "objects": len(objects) - left_out, "left_out": left_out,
                "permissions": [_named(p, logins, groups) for p in folder.permissions],
            })
    manifest = {"format": FORMAT, "user": args.user, "tenant": ctx.tenant.domain, "folders": entries}
    _private_file(target / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    out(f"exported {len(entries)} folder(s), {total} object(s) to {target}"
        + (f"; {left_total} left out: they cannot be rendered (see the log)" if left_total else ""))
    return EXIT_OK


def _named(p: Permission, logins: dict[int, str], groups: dict[int, str]) -> dict[str, Any]:
    r = p.rights
    return {"kind": "group" if p.is_group else "user",
            "name": (groups if p.is_group else logins).get(p.entity, str(p.entity)),
            "rights": {"folder": r.folder, "read": r.read, "write": r.write, "delete": r.delete, "admin": r.admin}}


def _resolve(entry: dict[str, Any], session: UserSession, owner_login: str, new_login: str,
             users: dict[str, int], groups: dict[str, int]) -> Permission | None:
    name = entry["name"]
    rights = Rights(**entry["rights"])
    if entry["kind"] == "group":
        gid = ALL_USERS if name == "all users" else groups.get(name)
        return None if gid is None else Permission(gid, True, rights)
    uid = session.user_id if name in (owner_login, new_login) else users.get(name)
    return None if uid is None else Permission(uid, False, rights)


def import_dir(ctx: Context, args: argparse.Namespace) -> int:
    from oxsync.model import Contact

    source = Path(args.file)
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{source}: no readable {MANIFEST} ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise CliError(f"{source}: not an oxsync export directory (format {manifest.get('format')!r})")
    outcome, skipped_entries = Outcome(), []
    options = argparse.Namespace(progress=False)
    with ctx.user_session(args.user, write=True) as session:
        logins, group_names = principal_names(session.tx)
        users = {login: uid for uid, login in logins.items()}
        groups = {name: gid for gid, name in group_names.items()}
        mapped: dict[int, int] = {}
        existing = {(f.parent_id, f.title, f.module): f.id for f in _own_folders(session)}
        for entry in manifest["folders"]:
            module = Module(entry["module"])
            parent = mapped.get(entry["parent"], PRIVATE_ROOT)
            if entry["default"]:
                folder_id = default_folder_id(session.tx, session.user_id, module)
                if folder_id is None:
                    raise UsageError(f"{args.user} has no default {module.value} folder to import into")
            else:
                folder_id = existing.get((parent, entry["title"], module))
                if folder_id is None:
                    folder_id = session.create_folder(parent, entry["title"], module,
                                                      color=entry.get("color")).folder.stored_id
            mapped[entry["id"]] = folder_id
            fmt = FORMAT_OF_MODULE[module]
            text = (source / entry["file"]).read_text(encoding="utf-8")
            records = PARSERS[fmt](text, options, ctx.settings.limits, outcome)
            targets: dict[type, int] = {Contact: folder_id} if fmt == "vcf" else {cls: folder_id for cls in _ics_classes()}
            _write_all(session, records, targets, options, outcome, text)
            wanted = [_resolve(p, session, manifest.get("user", ""), args.user, users, groups) for p in entry["permissions"]]
            skipped_entries += [p["name"] for p, w in zip(entry["permissions"], wanted, strict=True) if w is None]
            entries = [w for w in wanted if w is not None]
            if entries and any(e.entity == session.user_id and not e.is_group for e in entries):
                session.set_permissions(folder_id, entries)
    if skipped_entries:
        err(f"permission entries for unknown users or groups left out: {', '.join(sorted(set(skipped_entries)))}")
    outcome.summary()
    out(f"imported {len(manifest['folders'])} folder(s), {outcome.imported} object(s), skipped {outcome.skipped}")
    return EXIT_OK


def _ics_classes() -> tuple[type, ...]:
    from oxsync.model import Appointment, Task

    return (Appointment, Task)


def cmd_tenant_rename(ctx: Context, args: argparse.Namespace) -> int:
    relabel.in_write_transaction(ctx.store, relabel.rename_tenant, args.old, args.new)
    ctx.use_tenant(None, args.new.strip().lower())  # the audit row goes to the renamed tenant
    out(f"tenant {args.old} is now {args.new} (addresses @{args.old} moved to @{args.new})")
    return EXIT_OK


def cmd_tenant_delete(ctx: Context, args: argparse.Namespace) -> int:
    if args.confirm != args.domain:
        raise UsageError(f"deleting a tenant removes all its data: repeat its name with --confirm {args.domain}")
    tenant = ctx.store.tenant(args.domain)
    removed = relabel.in_write_transaction(ctx.store, relabel.delete_tenant, args.domain)
    ctx.use_tenant(replace(tenant, id=None))  # type: ignore[arg-type]  # audited as a platform action
    out(f"tenant {args.domain} deleted ({removed} rows)")
    return EXIT_OK


def cmd_user_rename(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.tx(write=True) as tx:
        relabel.rename_user(tx, user_id_of(tx, args.login), args.new_login)
    out(f"user {args.login} is now {args.new_login}")
    return EXIT_OK


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    """A directory written by `export --all`, or one file (`cli_transfer.cmd_import`); the served texts
    of what it wrote are rendered once it committed (`oxsync.texts_ahead`), as a DAV PUT leaves its own;
    then, on PostgreSQL, a large import ends with VACUUM (ANALYZE) of what it filled (`store.settle`)."""
    from oxsync.store.settle import settled_after
    from oxsync.texts_ahead import rendering_after

    with settled_after(ctx.store), rendering_after(ctx.store, ctx.settings):
        return import_dir(ctx, args) if args.file.is_dir() else cli_transfer.cmd_import(ctx, args)


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    """Every folder of the user (`--all DIR`), or one folder (`cli_transfer.cmd_export`)."""
    return export_all(ctx, args) if args.all is not None else cli_transfer.cmd_export(ctx, args)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds to the `tenant`, `user`, `import` and `export` commands registered before (`cli_transfer`
    registers import and export of one file or folder; the whole-account directory forms are here, so
    `cli_people` imports `cli_transfer` and not the reverse)."""
    sub.choices["import"].set_defaults(handler=cmd_import)
    sub.choices["export"].set_defaults(handler=cmd_export)
    tenant = subcommand_actions(sub.choices["tenant"])[0]
    p = tenant.add_parser("rename", help="change a tenant's domain (its addresses follow)")
    p.add_argument("old", metavar="OLD_DOMAIN")
    p.add_argument("new", metavar="NEW_DOMAIN")
    p.set_defaults(handler=cmd_tenant_rename)
    p = tenant.add_parser("delete", help="remove a tenant with all its accounts and data")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("--confirm", metavar="DOMAIN", help="the same domain again")
    p.set_defaults(handler=cmd_tenant_delete)
    user = subcommand_actions(sub.choices["user"])[0]
    p = user.add_parser("rename", help="change an account's login (and its address login@domain)")
    p.add_argument("login", metavar="LOGIN")
    p.add_argument("new_login", metavar="NEW_LOGIN")
    p.set_defaults(handler=cmd_user_rename)
