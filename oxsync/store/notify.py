"""PostgreSQL LISTEN/NOTIFY for the cross-node change bus: the sending hook and the listening connection.

Sending: `install_notifier` adds a store commit hook that runs `pg_notify` INSIDE each write transaction,
so PostgreSQL delivers the notice if and only if the transaction commits, in commit order (which is
revision order per tenant). Receiving: `NotificationStream` is one dedicated psycopg 3 connection in
autocommit mode that LISTENs and reads tenant revisions; it is driven by one thread (see
`oxsync.push.pgbus`) and never by the reactor. Everything PostgreSQL-specific lives here so that the
push package stays free of SQLAlchemy and psycopg.

Payload (ASCII, at most `MAX_PAYLOAD` bytes; PostgreSQL refuses 8000 and more):
`1 <node> <tenant> <revision> <folder,folder,...>`, or `*` instead of the folder list when it would not
fit, meaning "any folder of the tenant may have changed" (decoded as an empty folder set).
Account changes (suspension, password, rights, aliases, deletion) travel as
`A <node> <tenant> <user,user,...>` (or `*`: any user of the tenant), so that every node's
verified-login cache forgets them at once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from sqlalchemy import Engine, String, bindparam, func, select, text

from oxsync.store.api import Store
from oxsync.store.bulk import with_closing_texts
from oxsync.store.tx import Tx

log = logging.getLogger("oxsync.store.notify")

CHANNEL = "oxsync_changes"
MAX_PAYLOAD = 7900
"""Bytes; below PostgreSQL's 8000-byte limit on a NOTIFY payload."""
ALL_FOLDERS = "*"
_NODE = re.compile(r"[0-9a-z]{1,32}\Z")
_installed: WeakKeyDictionary[Store, str] = WeakKeyDictionary()
"""Store -> node id of the notifier installed on it (one per store)."""


class ListenError(Exception):
    """The LISTEN connection could not be opened or was lost; the caller reconnects."""


@dataclass(frozen=True)
class Notice:
    """One decoded notification. `folder_ids` empty = any folder of the tenant may have changed."""

    node: str
    tenant_id: int
    revision: int
    folder_ids: frozenset[int]


@dataclass(frozen=True)
class AccountNotice:
    """These users' accounts changed; `user_ids` empty = any user of the tenant."""

    node: str
    tenant_id: int
    user_ids: frozenset[int]


def new_node_id() -> str:
    """A random id for this process's bus, so it can recognise (and skip) its own notices."""
    return secrets.token_hex(6)


def is_postgresql(store: Store) -> bool:
    return store.engine.dialect.name == "postgresql"


def encode(node: str, tenant_id: int, revision: int, folder_ids: frozenset[int]) -> str:
    """The payload; degrades to the tenant-wide form (`*`) when the folder list does not fit."""
    head = f"1 {node} {tenant_id} {revision} "
    folders = ",".join(str(f) for f in sorted(folder_ids)) or ALL_FOLDERS
    if len(head) + len(folders) > MAX_PAYLOAD:
        folders = ALL_FOLDERS
    return head + folders


def encode_accounts(node: str, tenant_id: int, user_ids: frozenset[int]) -> str:
    head = f"A {node} {tenant_id} "
    users = ",".join(str(u) for u in sorted(user_ids)) or ALL_FOLDERS
    return head + (users if len(head) + len(users) <= MAX_PAYLOAD else ALL_FOLDERS)


def decode(payload: str) -> Notice | AccountNotice | None:
    """The notice, or None for anything that is not a well-formed version-1 payload (logged, skipped)."""
    parts = payload.split(" ")
    try:
        if parts[0] == "A":
            _, node, tenant, users = parts
            if not _NODE.match(node):
                raise ValueError("unknown node")
            ids = frozenset() if users == ALL_FOLDERS else frozenset(int(u) for u in users.split(","))
            return AccountNotice(node, int(tenant), ids)
        version, node, tenant, revision, folders = parts
        if version != "1" or not _NODE.match(node):
            raise ValueError("unknown version or node")
        ids = frozenset() if folders == ALL_FOLDERS else frozenset(int(f) for f in folders.split(","))
        return Notice(node, int(tenant), int(revision), ids)
    except ValueError:
        log.warning("ignoring malformed notification %.80r", payload, extra={"event": "bus.bad_payload"})
        return None


def install_notifier(store: Store, node: str | None = None) -> str:
    """Make every write transaction of `store` NOTIFY the other nodes (PostgreSQL only; no-op on SQLite).

    Idempotent per store: returns the node id its notices carry. Every process that writes to a shared
    database should call it (server, CLI), or the other nodes' waiters miss those writes.
    """
    installed = _installed.get(store)
    if installed is not None:
        if node is not None and node != installed:
            raise ValueError(f"store already notifies as node {installed!r}")
        return installed
    node = node or new_node_id()
    if not _NODE.match(node):
        raise ValueError(f"invalid node id {node!r}")
    _installed[store] = node
    if is_postgresql(store):
        statement = text("SELECT pg_notify(:channel, :payload)")
        changes = select(func.pg_notify(bindparam("channel", type_=String), bindparam("payload", type_=String)))

        def notify(tx: Tx) -> None:
            if tx.stamped is not None and tx.touched_folders:
                payload = encode(node, tx.tenant_id, tx.stamp.rev, frozenset(tx.touched_folders))
                # the served texts a DAV write leaves travel in the same round trip (bulk.with_closing_texts)
                tx.conn.execute(*with_closing_texts(tx, changes, {"channel": CHANNEL, "payload": payload}))
            if tx.changed_accounts:
                payload = encode_accounts(node, tx.tenant_id, frozenset(tx.changed_accounts))
                tx.conn.execute(statement, {"channel": CHANNEL, "payload": payload})

        store.add_commit_hook(notify)
    return node


def notify_all_accounts(store: Store, conn: Any) -> None:
    """Inside a write transaction that changed accounts outside a `Tx` (tenant rename or delete):
    tell every node to forget every verified login (`A <node> 0 *`, tenant 0 = every tenant)."""
    if is_postgresql(store):
        node = _installed.get(store) or new_node_id()
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"A {node} 0 *"})


class NotificationStream:
    """One dedicated LISTEN connection. Not thread-safe: one thread opens, reads and closes it."""

    def __init__(self, engine: Engine, application_name: str, connect_timeout: int = 5) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._args: list[Any] = list(args)
        self._kwargs: dict[str, Any] = {
            **kwargs,
            "autocommit": True,
            "application_name": application_name,
            "connect_timeout": connect_timeout,
            # a silently dead peer (network cut, failover) is noticed within about a minute
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        }
        self._conn: psycopg.Connection[Any] | None = None
        self.backend_pid: int | None = None

    def open(self) -> dict[int, int]:
        """Connect and LISTEN, then read every tenant's revision (LISTEN first: nothing slips between)."""
        self.close()
        try:
            self._conn = psycopg.connect(*self._args, **self._kwargs)
            self._conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = self._conn.info.backend_pid
            return self.revisions()
        except psycopg.Error as e:
            self.close()
            raise ListenError(str(e)) from e

    def revisions(self) -> dict[int, int]:
        """tenant id -> current revision, as committed now."""
        conn = self._require()
        try:
            rows = conn.execute("SELECT id, rev FROM tenants").fetchall()
        except psycopg.Error as e:
            raise ListenError(str(e)) from e
        return {int(tenant): int(rev) for tenant, rev in rows}

    def receive(self, timeout: float) -> list[Notice | AccountNotice]:
        """Notices that arrive within `timeout` seconds (returns early once some have arrived)."""
        conn = self._require()
        notices: list[Notice | AccountNotice] = []
        try:
            for n in conn.notifies(timeout=timeout, stop_after=1):
                if n.channel == CHANNEL and (notice := decode(n.payload)) is not None:
                    notices.append(notice)
            # drain whatever else is already buffered without waiting again
            for n in conn.notifies(timeout=0):
                if n.channel == CHANNEL and (notice := decode(n.payload)) is not None:
                    notices.append(notice)
        except psycopg.Error as e:
            raise ListenError(str(e)) from e
        return notices

    def ping(self) -> None:
        """A round trip, so a dead connection is noticed even when nobody writes."""
        try:
            self._require().execute("SELECT 1")
        except psycopg.Error as e:
            raise ListenError(str(e)) from e

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self.backend_pid = None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _require(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            raise ListenError("not connected")
        return self._conn
