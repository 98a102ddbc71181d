"""Engine creation: SQLite (WAL, explicit BEGIN) by default, PostgreSQL by URL."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from oxsync.config import StoreSettings
from oxsync.store.errors import InvalidInput

WRITE = {"sqlite_begin": "IMMEDIATE"}
"""Execution options for a write transaction: on SQLite it takes the write lock up front."""


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
    engine = create_engine(url, pool_size=settings.thread_pool_size + max(0, settings.light_threads), max_overflow=2,
                           pool_pre_ping=True)
    guard_numbers(engine)
    return engine


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
