"""Engine creation: SQLite (WAL, explicit BEGIN) by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from oxsync.config import StoreSettings
from oxsync.store.errors import InvalidInput

WRITE = {"sqlite_begin": "IMMEDIATE"}
"""Execution options for a write transaction: on SQLite it takes the write lock up front."""

PG_READ = {"isolation_level": "AUTOCOMMIT", "oxsync_read_only": True}
"""Execution options for a read transaction on PostgreSQL: no BEGIN and no COMMIT, two round trips fewer
per unit of work. At READ COMMITTED (the isolation every transaction here runs at) each statement takes
its own snapshot inside BEGIN/COMMIT too, so a read sees exactly what it saw inside one; a write
statement on such a connection would commit alone, so it is refused (`_refuse_writes`)."""

PING_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection is pinged (one empty round trip) before use only when it sat idle in
the pool longer than this: a server restart or failover is noticed on idle connections, while one
reused within a second (every connection in a busy node) costs no extra round trip per unit of work.
A connection that died while in use fails its statement and SQLAlchemy invalidates the whole pool."""


class WriterTurn:
    """SQLite has one writer at a time: this process's write transactions queue on a lock before their
    BEGIN IMMEDIATE, so that the next one starts the moment the last commits, instead of polling the
    database lock in SQLite's busy handler (which sleeps 1 to 100 ms between tries: writers that
    queue there leave the database idle, and 8 clients got no more PUTs through than 1). Writers of
    other processes still meet at the database lock. A thread already holding its turn (a nested
    write) does not wait for itself; a turn not granted within the busy timeout goes on to the database
    lock, whose busy timeout then decides, as before."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me or not self._lock.acquire(timeout=self.timeout_s):
            yield
            return
        self._owner = me
        try:
            yield
        finally:
            self._owner = None
            self._lock.release()


SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, synchronous: str = "normal") -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite's own is broken)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SYNCHRONOUS.get(synchronous.lower(), 'NORMAL')}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


SQLITE_FILE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def secure_sqlite_files(database: str) -> None:
    """The database holds password hashes: its directory is created 0700, the file 0600 before SQLite
    opens it (SQLite gives its -wal/-shm files the database file's mode), and files an older version
    left group- or world-readable are tightened to 0600."""
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)  # mkdir's mode is filtered by the umask
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for suffix in SQLITE_FILE_SUFFIXES:
        try:
            mode = os.stat(f"{path}{suffix}").st_mode
        except FileNotFoundError:
            continue
        if stat.S_IMODE(mode) & 0o077:
            os.chmod(f"{path}{suffix}", stat.S_IMODE(mode) & 0o700)


def make_engine(settings: StoreSettings) -> Engine:
    url = make_url(settings.url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            secure_sqlite_files(url.database)
        engine = create_engine(
            url,
            pool_size=settings.thread_pool_size + max(0, settings.light_threads),
            max_overflow=2,
            connect_args={"check_same_thread": False, "timeout": settings.busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, settings.busy_timeout_ms, settings.sqlite_synchronous)
        guard_numbers(engine)
        return engine
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url, pool_size=settings.thread_pool_size + max(0, settings.light_threads), max_overflow=2)
    _ping_idle(engine, PING_IDLE_SECONDS)
    _refuse_writes(engine)
    guard_numbers(engine)
    return engine


def _ping_idle(engine: Engine, idle_s: float) -> None:
    """`pool_pre_ping`, for connections idle longer than `idle_s` only (PING_IDLE_SECONDS)."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn, record) -> None:
        record.info["oxsync_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop("oxsync_idle_since", None)
        if since is None or time.monotonic() - since <= idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("pooled connection is gone") from exc  # the pool retries with a new one


WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "MERGE")


def _refuse_writes(engine: Engine) -> None:
    """A write statement on a PostgreSQL read connection (PG_READ, autocommit) is a programming error."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, _cursor, statement: str, _parameters, _context, _executemany) -> None:
        if conn.get_execution_options().get("oxsync_read_only") and statement.lstrip()[:6].upper().startswith(WRITE_VERBS):
            raise RuntimeError("write attempted in a read-only store transaction")


INT64 = 2**63 - 1


def _check_parameters(values: Any) -> None:
    for value in values.values() if isinstance(values, dict) else values:
        if type(value) is int and not -INT64 - 1 <= value <= INT64:
            raise InvalidInput("number", "out of the 64-bit range the database holds")


def guard_numbers(engine: Engine) -> None:
    """The last line behind `oxsync.store.validate`: a client number no check caught (a 50-digit id in a
    header, a huge sync token) is invalid input, not a driver OverflowError (SQLite) or an error of
    PostgreSQL's numeric comparison path, whichever statement carries it."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_conn, _cursor, _statement, parameters, _context, executemany) -> None:
        if not parameters:
            return
        for values in (parameters if executemany else (parameters,)):
            _check_parameters(values)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
