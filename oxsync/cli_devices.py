"""`oxsync device list|wipe|remove`: ActiveSync devices of the tenant's accounts.

A device record is the EAS state document of collection "" (type, model, user agent, protocol
version, last seen, policy state, wipe flag). `wipe` asks the device to erase itself at its next
request (it then gets 449/Status 140 until it ran Provision and confirmed); `remove` forgets all its
state, so it must provision and resynchronise from scratch.
"""

from __future__ import annotations

import argparse
import time

from oxsync.cli_common import EXIT_OK, CliError, Context, out, table, user_id_of
from oxsync.eas.state import IdSet
from oxsync.store import accounts
from oxsync.store.session import UserSession


def _when(epoch: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + "Z" if epoch else "-"


def cmd_device_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = []
    with ctx.tx() as tx:
        users = accounts.list_users(tx)
        if args.user:
            wanted = user_id_of(tx, args.user)
            users = [u for u in users if u.id == wanted]
        for user in users:
            session = UserSession(tx, user.id)
            for device_id in session.device_ids():
                record = session.get_state(device_id, "") or {}
                info = record.get("info", {})
                rows.append((user.login, device_id, record.get("type", "-"), info.get("model", "-"),
                             record.get("ua", "-") or "-", record.get("version", "-"), _when(record.get("last_seen")),
                             _when(record.get("last_sync")),
                             record.get("policy_state", "none"), record.get("wipe", "-")))
    out(table(("user", "device", "type", "model", "user agent", "eas", "last seen", "last sync", "policy", "wipe"), rows))
    return EXIT_OK


def cmd_device_show(ctx: Context, args: argparse.Namespace) -> int:
    """The device record, its collections, and the mails skipped as unconvertible (with their reason)."""
    with ctx.user_session(args.login) as session:
        if args.device_id not in session.device_ids():
            raise CliError(f"user {args.login} has no device {args.device_id}")
        record = session.get_state(args.device_id, "") or {}
        rows = [(key, str(value)) for key, value in sorted(record.items()) if key not in ("info", "policy_key")]
        out(table(("field", "value"), rows))
        skipped = []
        collections = []
        for collection in session.device_collections(args.device_id):
            if not collection.startswith("c:"):
                continue
            st = session.get_state(args.device_id, collection) or {}
            collections.append((collection[2:], st.get("key", "-"), str(len(IdSet.parse(st.get("known"))))))
            for uid, reason in sorted((st.get("skipped") or {}).items()):
                skipped.append((collection[2:], uid, reason))
    out("")
    out(table(("collection", "sync key", "items"), collections))
    out("")
    out("skipped mails (not convertible, never retried):" if skipped else "skipped mails: none")
    if skipped:
        out(table(("collection", "uid", "reason"), skipped))
    return EXIT_OK


def cmd_device_wipe(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.user_session(args.login, write=True) as session:
        if args.device_id not in session.device_ids():
            raise CliError(f"user {args.login} has no device {args.device_id}")
        record = session.get_state(args.device_id, "") or {}
        record.update(wipe="requested", wipe_requested_at=int(time.time()))
        session.put_state(args.device_id, "", record)
    out(f"remote wipe requested for device {args.device_id} of {args.login}: it is erased at its next connection")
    return EXIT_OK


def cmd_device_remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.user_session(args.login, write=True) as session:
        if args.device_id not in session.device_ids():
            raise CliError(f"user {args.login} has no device {args.device_id}")
        removed = session.delete_state(args.device_id)
    out(f"removed device {args.device_id} of {args.login} ({removed} state records)")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    device = sub.add_parser("device", help="ActiveSync devices").add_subparsers(dest="action", required=True)
    p = device.add_parser("list", help="devices with type, model, user agent, last sync and policy state")
    p.add_argument("--user", metavar="LOGIN", help="only this user's devices")
    p.set_defaults(handler=cmd_device_list)
    p = device.add_parser("show", help="one device: record, collections, mails skipped as unconvertible")
    p.add_argument("login")
    p.add_argument("device_id")
    p.set_defaults(handler=cmd_device_show)
    p = device.add_parser("wipe", help="ask a device to erase itself at its next connection")
    p.add_argument("login")
    p.add_argument("device_id")
    p.set_defaults(handler=cmd_device_wipe)
    p = device.add_parser("remove", help="forget a device and all its sync state")
    p.add_argument("login")
    p.add_argument("device_id")
    p.set_defaults(handler=cmd_device_remove)
