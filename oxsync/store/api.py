"""The store's public entry point: transactions, tenants, authentication, pruning, change listeners.

Protocol packages use `Store.session()` (or `DeferredStore` from the reactor thread) and never import
SQLAlchemy. One call of `session()` is one database transaction; a write session bumps the tenant
revision once and tells the change listeners which folders changed, after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import EllipsisType
from typing import TypedDict

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from oxsync.config import Settings
from oxsync.model import FolderType, Protocol, Tenant
from oxsync.store import accounts
from oxsync.store import folders as folder_ops
from oxsync.store import schema as s
from oxsync.store.bulk import write_closing_texts
from oxsync.store.engine import (
    PG_READ,
    WRITE,
    WRITER_LOCK_SUFFIX,
    WalCheckpointer,
    WriterTurn,
    is_sqlite,
    make_engine,
    sqlite_file,
)
from oxsync.store.errors import AccessRefused, AuthenticationFailed, Conflict, InvalidData, NotFound
from oxsync.store.ids import IdBlocks
from oxsync.store.session import UserSession
from oxsync.store.tx import Tx, now_ms

log = logging.getLogger("oxsync.store")

ChangeListener = Callable[[int, frozenset[int], int], None]
"""Called after a commit with (tenant_id, changed folder ids, revision), on the committing thread."""

ObjectListener = Callable[[int, dict[int, frozenset[int]]], None]
"""Called after a commit that changed objects with (tenant_id, folder id -> ids of the objects changed
there and still in it, leaving out those whose served text the transaction stored itself), on the
committing thread: what may need a served text rendered (the assembly's `oxsync.texts_ahead`)."""

AccountListener = Callable[[int, frozenset[int]], None]
"""Called after a commit with (tenant_id, user ids whose login, password, suspension, rights or
existence changed), on the committing thread."""

CommitHook = Callable[[Tx], None]
"""Called inside a write transaction that changed folders, just before COMMIT, on the committing thread.
What it executes on `tx.conn` commits or rolls back with the writes; if it raises, the writes roll back."""


class TenantUsage(TypedDict):
    domain: str
    usage_bytes: int
    quota_bytes: int | None


class AccountUsage(TypedDict):
    id: int
    login: str
    usage_bytes: int
    quota_bytes: int | None


class Usage(TypedDict):
    """`Store.usage`: the tenant's storage and each account's (quota None: unlimited)."""

    tenant: TenantUsage
    users: list[AccountUsage]


@dataclass(frozen=True)
class Principal:
    """An authenticated account."""

    tenant_id: int
    user_id: int
    login: str
    display_name: str
    email: str


@dataclass(frozen=True)
class LoginRecord:
    """What checking a login needs, read without hashing (the hash runs on its own pool)."""

    principal: Principal
    password_hash: str
    active: bool
    protocols: frozenset[Protocol]

    def admit(self, protocol: Protocol) -> Principal:
        """The principal once the password was verified; AccessRefused when suspended or not allowed."""
        if not self.active:
            raise AccessRefused("account suspended")
        if protocol not in self.protocols:
            raise AccessRefused(f"account not enabled for {protocol.value}")
        return self.principal


class Store:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.store)
        self._listeners: list[ChangeListener] = []
        self._commit_hooks: list[CommitHook] = []
        self._account_listeners: list[AccountListener] = []
        self._object_listeners: list[ObjectListener] = []
        self.ids: IdBlocks | None = None
        self._writers = WriterTurn(settings.store.busy_timeout_ms / 1000, self.engine) if is_sqlite(self.engine) else None
        database = sqlite_file(self.engine)
        self.checkpoints = WalCheckpointer(database) if database else None
        """SQLite: the log's checkpoints, run after write commits on a thread of their own (engine.py)."""
        if self.engine.dialect.name == "postgresql":
            self.ids = IdBlocks(self.engine)
        self._mail_listeners: list[Callable[[], None]] = []
        from oxsync.store.outbound import OutboundQueue

        self.outbound = OutboundQueue(self)

    # ------------------------------------------------------------ schema

    def create_schema(self) -> None:
        """Bring the database to the current schema through the Alembic migrations."""
        from oxsync.store.migrate import upgrade

        upgrade(self.engine)

    @property
    def serialises_writers(self) -> bool:
        """True where the process's writes take turns on one writer (SQLite, `engine.WriterTurn`)."""
        return self._writers is not None

    def share_writer_turns(self) -> None:
        """SQLite, `[server] processes` > 1: the serving processes of this database file take their
        writer's turns across processes too (a file lock beside the database, `engine.WriterTurn`).
        Called by every serving process before it serves; no-op on PostgreSQL."""
        database = sqlite_file(self.engine)
        if self._writers is not None and database:
            self._writers.lock_file = f"{database}{WRITER_LOCK_SUFFIX}"

    def writer_turns(self) -> dict[str, int]:
        """SQLite: the writer's turn's work counts (for /health): writes that waited for another serving
        process's write (`file_waits`) and writes that were not granted a turn (`not_granted`)."""
        turn = self._writers
        return {} if turn is None else {"file_waits": turn.file_waits, "not_granted": turn.not_granted}

    def dispose(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.stop()
        if self._writers is not None:
            self._writers.close()
        self.engine.dispose()
        if self.ids is not None:
            self.ids.dispose()

    # ------------------------------------------------------------ transactions

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def add_commit_hook(self, hook: CommitHook) -> None:
        self._commit_hooks.append(hook)

    def add_object_listener(self, listener: ObjectListener) -> Callable[[], None]:
        """Register `listener`; the returned function removes it."""
        self._object_listeners.append(listener)
        return lambda: self._object_listeners.remove(listener) if listener in self._object_listeners else None

    def add_account_listener(self, listener: AccountListener) -> None:
        self._account_listeners.append(listener)
    def add_mail_listener(self, listener: Callable[[], None]) -> None:
        """Called (on the committing thread) after a transaction that queued mail commits."""
        self._mail_listeners.append(listener)

    def mail_queued(self) -> None:
        for listener in self._mail_listeners:
            try:
                listener()
            except Exception:  # waking a worker must never undo or hide a committed write
                log.exception("mail listener failed")

    @contextmanager
    def transaction(self, tenant_id: int, write: bool = False) -> Iterator[Tx]:
        """One transaction on a pooled connection; a SQLite write takes the writer's turn first, and with
        it the process's writer connection (`engine.WriterTurn`), both given back once committed."""
        turn = self._writers.turn() if write and self._writers is not None else nullcontext(None)
        with turn as writer, nullcontext(writer) if writer is not None else self.engine.connect() as conn:
            if write:
                conn = conn.execution_options(**WRITE)
            elif self.engine.dialect.name == "postgresql":  # PostgreSQL: a read needs no BEGIN/COMMIT round trips (engine.PG_READ)
                conn = conn.execution_options(**PG_READ)
            with conn.begin():
                tx = Tx(conn, tenant_id, self.settings, writable=write, ids=self.ids)
                yield tx
                tx.finish()
                if (tx.stamped is not None and tx.touched_folders) or tx.changed_accounts:
                    for hook in self._commit_hooks:
                        hook(tx)
                write_closing_texts(tx)  # those no NOTIFY took along
        if write and self.checkpoints is not None:
            self.checkpoints.committed()
        self._notify(tx)
        if tx.queued_mail:
            self.mail_queued()
        if tx.after_commit:
            self._write_behind(tx.after_commit)

    def _write_behind(self, writes: list[Callable[[Connection], None]]) -> None:
        """Run a read transaction's best-effort writes in one write transaction that never waits for
        the database lock (SQLite: busy timeout 0 meanwhile); any failure only skips them."""
        sqlite = is_sqlite(self.engine)
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.dbapi_connection if sqlite else None
                if raw is not None:
                    raw.execute("PRAGMA busy_timeout=0")
                try:
                    with conn.execution_options(**WRITE).begin():
                        for write in writes:
                            write(conn)
                finally:
                    if raw is not None:
                        raw.execute(f"PRAGMA busy_timeout={int(self.settings.store.busy_timeout_ms)}")
        except Exception as exc:  # noqa: BLE001 - a cache fill must never fail a request
            log.debug("write-behind skipped: %r", exc)

    @contextmanager
    def session(self, tenant_id: int, user_id: int, write: bool = False) -> Iterator[UserSession]:
        with self.transaction(tenant_id, write) as tx:
            yield UserSession(tx, user_id)

    def _notify(self, tx: Tx) -> None:
        if tx.changed_accounts:
            users = frozenset(tx.changed_accounts)
            for account_listener in self._account_listeners:
                try:
                    account_listener(tx.tenant_id, users)
                except Exception:
                    log.exception("account listener failed")
        stamp = tx.stamped
        if stamp is None or not tx.touched_folders:
            return
        folders = frozenset(tx.touched_folders)
        for listener in self._listeners:
            try:
                listener(tx.tenant_id, folders, stamp.rev)
            except Exception:  # a listener must never undo or hide a committed write
                log.exception("change listener failed")
        if self._object_listeners:
            changed = {folder: frozenset(ids - tx.texts_written) for folder, ids in tx.changed_objects.items()}
            changed = {folder: ids for folder, ids in changed.items() if ids}
            for object_listener in list(self._object_listeners) if changed else ():
                try:
                    object_listener(tx.tenant_id, changed)
                except Exception:
                    log.exception("object listener failed")

    # ------------------------------------------------------------ tenants

    def create_tenant(self, domain: str, *, max_accounts: int | None = None, quota_bytes: int | None = None) -> Tenant:
        domain = domain.strip().lower()
        if not domain or "." not in domain:
            raise InvalidData(f"invalid domain {domain!r}", field="domain")
        with self.engine.connect() as conn:
            conn = conn.execution_options(**WRITE)
            with conn.begin():
                if accounts.find_tenant(conn, domain):
                    raise Conflict(f"tenant {domain} already exists")
                tenant_id = conn.execute(
                    insert(s.tenants).values(domain=domain, max_accounts=max_accounts, quota_bytes=quota_bytes,
                                             usage_bytes=0, rev=0, last_ms=0, min_valid_rev=0).returning(s.tenants.c.id)
                ).scalar_one()
                tx = Tx(conn, tenant_id, self.settings, writable=True)
                folder_ops.create_system_folders(tx)
        return Tenant(tenant_id, domain, max_accounts, quota_bytes)

    def tenants(self) -> list[Tenant]:
        with self.engine.connect() as conn:
            return accounts.list_tenants(conn)

    def tenant(self, domain: str) -> Tenant:
        with self.engine.connect() as conn:
            found = accounts.find_tenant(conn, domain)
        if found is None:
            raise NotFound(f"tenant {domain} does not exist")
        return found

    def update_tenant(self, tenant_id: int, *, max_accounts: int | None | EllipsisType = ...,
                      quota_bytes: int | None | EllipsisType = ...) -> None:
        values = {}
        if max_accounts is not ...:
            values["max_accounts"] = max_accounts
        if quota_bytes is not ...:
            values["quota_bytes"] = quota_bytes
        with self.transaction(tenant_id, write=True) as tx:
            tx.conn.execute(update(s.tenants).where(s.tenants.c.id == tenant_id).values(**values))

    def usage(self, tenant_id: int) -> Usage:
        """Storage usage and quotas of the tenant and of each account."""
        with self.transaction(tenant_id) as tx:
            t = tx.conn.execute(select(s.tenants).where(s.tenants.c.id == tenant_id)).one()
            users = tx.conn.execute(
                select(s.users.c.id, s.users.c.login, s.users.c.usage_bytes, s.users.c.quota_bytes)
                .where(s.users.c.tenant_id == tenant_id).order_by(s.users.c.id)
            ).all()
        return {
            "tenant": {"domain": t.domain, "usage_bytes": int(t.usage_bytes), "quota_bytes": t.quota_bytes},
            "users": [{"id": u.id, "login": u.login, "usage_bytes": int(u.usage_bytes), "quota_bytes": u.quota_bytes}
                      for u in users],
        }

    # ------------------------------------------------------------ authentication

    def resolve_login(self, login: str) -> tuple[int, int] | None:
        """(tenant_id, user_id) for `login`, `login@domain` or any address of the account."""
        login = login.strip().lower()
        with self.engine.connect() as conn:
            a = s.addresses
            row = conn.execute(select(a.c.tenant_id, a.c.user_id).where(a.c.address == login)).one_or_none()
            if row is not None and row.user_id is not None:
                return int(row.tenant_id), int(row.user_id)
            name, _, domain = login.partition("@")
            u = s.users
            query = select(u.c.tenant_id, u.c.id).where(u.c.login == name)
            if domain:
                query = query.join(s.tenants, s.tenants.c.id == u.c.tenant_id).where(s.tenants.c.domain == domain)
            rows = conn.execute(query).all()
        if len(rows) != 1:
            return None  # unknown, or the same login in several tenants without a domain
        return int(rows[0].tenant_id), int(rows[0].id)

    def authenticate(self, login: str, password: str, protocol: Protocol) -> Principal:
        """Check credentials, suspension and the protocol right. Never logs the password.
        (The server splits this: `login_record` on the store pool, `verify_password` on the hash pool.)"""
        record = self.login_record(login)
        if not self.verify_password(record.password_hash if record else None, password) or record is None:
            raise AuthenticationFailed("wrong user name or password")
        return record.admit(protocol)

    def login_record(self, login: str) -> LoginRecord | None:
        """The account a login names, with its password hash; None if it names none. No hashing."""
        found = self.resolve_login(login)
        if found is None:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.users).where(and_(s.users.c.tenant_id == found[0], s.users.c.id == found[1]))
            ).one_or_none()
        if row is None:
            return None
        principal = Principal(int(row.tenant_id), int(row.id), row.login, row.display_name, row.email)
        return LoginRecord(principal, row.password_hash, bool(row.active), accounts.decode_protocols(row.protocols))

    def verify_password(self, stored_hash: str | None, password: str) -> bool:
        """The slow Argon2 check (a dummy hash of the same cost when `stored_hash` is None). Touches no
        database: the server runs it on its own bounded pool, never on the store threads."""
        return accounts.verify_password(stored_hash, password, self.settings.auth)

    def account_stamps(self) -> dict[int, tuple[int, int]]:
        """tenant id -> (newest account change stamp, number of accounts): moves whenever an account
        is created, changed or deleted, by any process (SQLite has no cross-process notification)."""
        u = s.users
        with self.engine.connect() as conn:
            rows = conn.execute(select(u.c.tenant_id, func.max(u.c.last_ms), func.count()).group_by(u.c.tenant_id))
            return {int(t): (int(ms or 0), int(n)) for t, ms, n in rows}

    def changed_folders(self, tenant_id: int, since_rev: int, until_rev: int) -> frozenset[int]:
        """Folders with any object or folder change in (since_rev, until_rev]: resolves a tenant-wide
        bus event (no folder list) into the folders a push channel must announce."""
        c, fc = s.changes, s.folder_changes
        with self.transaction(tenant_id) as tx:
            objects_changed = tx.conn.execute(select(c.c.folder_id).distinct().where(
                and_(c.c.tenant_id == tenant_id, c.c.rev > since_rev, c.c.rev <= until_rev)))
            folders_changed = tx.conn.execute(select(fc.c.folder_id, fc.c.parent_id).where(
                and_(fc.c.tenant_id == tenant_id, fc.c.rev > since_rev, fc.c.rev <= until_rev)))
            found = {r.folder_id for r in objects_changed}
            for r in folders_changed:
                found.update((r.folder_id, r.parent_id))
        return frozenset(found)

    def folder_owners(self, tenant_id: int, folder_ids: Iterable[int]) -> dict[int, int]:
        """folder id -> its owner, for the private folders among `folder_ids` (whose owner reads them):
        the viewer whose served texts are rendered ahead of the first read (`oxsync.texts_ahead`)."""
        f = s.folders
        wanted = sorted(set(folder_ids))
        with self.transaction(tenant_id) as tx:
            rows = tx.conn.execute(select(f.c.id, f.c.owner_id).where(and_(
                f.c.tenant_id == tenant_id, f.c.id.in_(wanted), f.c.type == FolderType.PRIVATE.value,
                f.c.owner_id.is_not(None)))) if wanted else ()
            return {int(r.id): int(r.owner_id) for r in rows}

    # ------------------------------------------------------------ push registrations

    def record_push_login(self, tenant_id: int, user_id: int, address: str) -> None:
        """Remember an HTTP login from `address` for every node (UDP push registrations check it)."""
        pl = s.push_logins
        key = and_(pl.c.tenant_id == tenant_id, pl.c.user_id == user_id, pl.c.address == address[:64])
        with self.engine.connect() as conn:
            conn = conn.execution_options(**WRITE)
            with conn.begin():
                if conn.execute(update(pl).where(key).values(last_ms=now_ms())).rowcount == 0:
                    conn.execute(insert(pl).values(tenant_id=tenant_id, user_id=user_id, address=address[:64],
                                                   last_ms=now_ms()))
                conn.execute(delete(pl).where(pl.c.last_ms < now_ms() - 7 * 86_400_000))  # bounded table

    def recent_push_login(self, tenant_id: int, user_id: int, address: str, max_age_seconds: float) -> bool:
        pl = s.push_logins
        with self.engine.connect() as conn:
            found = conn.execute(select(pl.c.last_ms).where(and_(
                pl.c.tenant_id == tenant_id, pl.c.user_id == user_id, pl.c.address == address[:64],
                pl.c.last_ms >= now_ms() - int(max_age_seconds * 1000)))).first()
        return found is not None

    # ------------------------------------------------------------ maintenance

    def prune_tombstones(self, tenant_id: int, max_age_days: int | None = None) -> int:
        """Drop tombstones older than the horizon; tokens before it must resync. Returns rows removed."""
        days = self.settings.store.tombstone_max_age_days if max_age_days is None else max_age_days
        horizon_ms = now_ms() - days * 86_400_000
        with self.transaction(tenant_id, write=True) as tx:
            rl = s.revision_log
            cutoff = tx.conn.execute(
                select(func.max(rl.c.rev)).where(and_(rl.c.tenant_id == tenant_id, rl.c.ms < horizon_ms))
            ).scalar_one_or_none()
            if cutoff is None:
                return 0
            c, fc = s.changes, s.folder_changes
            removed = tx.conn.execute(
                delete(c).where(and_(c.c.tenant_id == tenant_id, c.c.gone.is_(True), c.c.rev <= cutoff))
            ).rowcount
            removed += tx.conn.execute(
                delete(fc).where(and_(fc.c.tenant_id == tenant_id, fc.c.gone.is_(True), fc.c.rev <= cutoff))
            ).rowcount
            tx.conn.execute(delete(rl).where(and_(rl.c.tenant_id == tenant_id, rl.c.rev < cutoff)))
            t = s.tenants
            tx.conn.execute(update(t).where(and_(t.c.id == tenant_id, t.c.min_valid_rev < cutoff)).values(min_valid_rev=cutoff))
        log.info("pruned tombstones", extra={"tenant": tenant_id, "removed": removed, "min_valid_rev": cutoff})
        return int(removed)


