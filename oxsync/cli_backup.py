"""`oxsync backup FILE` and `oxsync restore FILE`: the whole database (oxsync/store/backup.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from oxsync.cli_common import EXIT_OK, CliError, Context, out
from oxsync.store.backup import BackupError
from oxsync.store.backup import backup as make_backup
from oxsync.store.backup import restore as apply_restore


def cmd_backup(ctx: Context, args: argparse.Namespace) -> int:
    try:
        make_backup(ctx.settings.store.url, Path(args.file))
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    out(f"backup written to {args.file} (mode 0600)")
    return EXIT_OK


def cmd_restore(ctx: Context, args: argparse.Namespace) -> int:
    try:
        apply_restore(ctx.settings.store.url, Path(args.file), force=args.force)
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    out(f"restored {args.file}; run `oxsync migrate` if it came from an older oxsync")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="write a consistent copy of the database to FILE (safe while serving)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(handler=cmd_backup)
    p = sub.add_parser("restore", help="replace the database with a backup FILE")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite a database that holds oxsync data")
    p.set_defaults(handler=cmd_restore)
