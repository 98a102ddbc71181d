"""Engine creation: SQLite (WAL, explicit BEGIN) by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from oxsync.config import StoreSettings
from oxsync.store.errors import InvalidInput
from oxsync.store.writer_lock import WriterFileLock

log = logging.getLogger("oxsync.store.engine")

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
    lock, whose busy timeout then decides, as before.

    The turn comes with the process's writer connection (`engine` given): every write of the process
    goes through that one connection, which keeps its page cache from one write to the next. SQLite
    drops a connection's cache whenever another connection wrote since its last transaction, so a
    writer on a pooled connection read again every page it touched (about 90 page reads per CalDAV PUT,
    inside the turn, bench/README u-sqlite8); writers also no longer hold a pooled connection while
    they wait. A nested write or a turn not granted gets None: the caller takes a pooled connection.

    Across processes (`lock_file` given: `[server] processes` > 1 on one database file), the turn also
    holds an exclusive `flock` on that file, taken after the process's lock and released after COMMIT,
    so that the serving processes' writers also follow each other at once instead of meeting in the
    busy handler (`writer_lock.WriterFileLock`: the wait blocks in the kernel without the GIL and wakes
    the owner once, when granted). Both waits together are bounded by the timeout: a turn whose file
    lock is not granted within what is left of it keeps the process's turn and writer but goes on to the
    database lock without the file lock (`not_granted`), whose busy timeout then decides, as for a turn
    not granted in the process."""

    def __init__(self, timeout_s: float, engine: Engine | None = None, lock_file: str | None = None) -> None:
        self.timeout_s = timeout_s
        self._engine = engine
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._owner: int | None = None
        self.lock_file = lock_file
        self._file: WriterFileLock | None = None
        self._closed_file_waits = 0
        self.not_granted = 0
        """Writes that did not get their turn (in the process, or the file lock) within the timeout and
        went on to the database lock."""

    @property
    def file_waits(self) -> int:
        """Turns that found the file lock held by another process and waited for it (a work count)."""
        return self._closed_file_waits + (self._file.waits if self._file is not None else 0)

    @contextmanager
    def turn(self) -> Iterator[Connection | None]:
        me = threading.get_ident()
        if self._owner == me:
            yield None
            return
        deadline = time.monotonic() + self.timeout_s
        if not self._lock.acquire(timeout=self.timeout_s):
            self.not_granted += 1
            yield None
            return
        self._owner = me
        try:
            locked = self._lock_other_processes(deadline)
            try:
                yield self._writer()
            finally:
                if locked is not None:
                    locked.release()
        finally:
            self._owner = None
            self._lock.release()

    def _lock_other_processes(self, deadline: float) -> WriterFileLock | None:
        """The file lock shared with the other processes, once held (None without `lock_file`, or not
        granted before `deadline`); held by this process's turn owner only (one descriptor per process)."""
        if self.lock_file is None:
            return None
        file = self._file
        if file is None or file.path != self.lock_file:
            if file is not None:
                self._close_file()
            file = self._file = WriterFileLock(self.lock_file)
        if file.acquire(deadline - time.monotonic()):
            return file
        self.not_granted += 1
        return None

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            self._closed_file_waits += file.waits
            file.close()

    def _writer(self) -> Connection | None:
        """The writer connection (opened on first use, again if it was closed or invalidated)."""
        if self._engine is None:
            return None
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self._engine.connect().execution_options(**WRITE)
        elif conn.in_transaction():  # cannot happen after `with conn.begin()`; never inherit one
            conn.rollback()
        return conn

    def close(self) -> None:
        """Give the writer connection back and close the file lock (`Store.dispose`); a later write opens
        them again."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._close_file()
        if conn is not None:
            conn.close()


FALLBACK_AUTOCHECKPOINT_PAGES = 10000
"""SQLite's automatic checkpoint on the serving connections: only a bound on the log for when no
`WalCheckpointer` keeps up (SQLite's default, 1,000 pages, would run it inside writers' commits)."""
CHECKPOINT_COMMITS = 32
"""`WalCheckpointer`: a checkpoint after this many write commits (a CalDAV PUT adds ~30 pages to the log,
so about SQLite's own 1,000-page interval)..."""
CHECKPOINT_PAUSE_S = 0.5
"""...or once writes paused this long after the last one."""


class WalCheckpointer:
    """SQLite WAL checkpoints off the writers' path. SQLite's automatic checkpoint runs inside the commit
    that takes the log past 1,000 pages: on that writer's thread, holding the writer's turn, so every
    writer queued behind it waited for ~1,000 pages to be copied into the database and two fsyncs
    (bench/README u-sqlite8). Here the serving connections only checkpoint past
    FALLBACK_AUTOCHECKPOINT_PAGES, and one thread of the process, on a connection of its own, runs a
    PASSIVE checkpoint (it waits for no reader or writer; writers keep appending meanwhile) after
    CHECKPOINT_COMMITS write commits or once writes pause. Durability is unchanged: the same
    checkpoints sync the log and the database as before, only on another thread. The thread starts with
    the first commit noted and ends with `stop` (`Store.dispose`)."""

    def __init__(self, database: str, commits: int = CHECKPOINT_COMMITS, pause_s: float = CHECKPOINT_PAUSE_S) -> None:
        self.database = database
        self.commits = commits
        self.pause_s = pause_s
        self.runs = 0
        """Checkpoints this thread ran (a work count for the tests)."""
        self._pending = 0
        self._stopping = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """A write transaction of this process committed (called after its turn ended)."""
        with self._cond:
            if self._stopping:
                return
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="oxsync-checkpoint", daemon=True)
                self._thread.start()
            elif self._pending in (1, self.commits):  # a batch starts or is full: wake the thread once
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(30)

    def _due(self) -> bool:
        """Wait (holding `_cond`) until a batch is full, writes paused, or `stop`; False on stop."""
        while not self._stopping and not self._pending:
            self._cond.wait()
        while not self._stopping and self._pending < self.commits:
            seen = self._pending
            self._cond.wait(self.pause_s)
            if self._pending == seen:  # no commit for pause_s
                break
        return not self._stopping

    def _run(self) -> None:
        conn = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False)
        try:
            while True:
                with self._cond:
                    if not self._due():
                        return
                    self._pending = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy with another checkpoint, or the file is gone: next time
                    log.debug("checkpoint skipped: %r", exc)
                self.runs += 1
        finally:
            conn.close()


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
        cursor.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_AUTOCHECKPOINT_PAGES}")  # WalCheckpointer does it
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


WRITER_LOCK_SUFFIX = "-writer.lock"
"""Beside the database: the file the serving processes' writers take turns on (`WriterTurn`)."""
SQLITE_FILE_SUFFIXES = ("", "-wal", "-shm", "-journal", WRITER_LOCK_SUFFIX)


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
    def _before(conn, _cursor, statement: str, _parameters, context, _executemany) -> None:
        options = context.execution_options if context is not None else conn.get_execution_options()
        if options.get("oxsync_read_only") and not options.get(COMMITS_ALONE) and \
                statement.lstrip()[:6].upper().startswith(WRITE_VERBS):
            raise RuntimeError("write attempted in a read-only store transaction")


COMMITS_ALONE = "oxsync_commits_alone"
"""Execution option of a statement that is a whole write by itself (one compare-and-swap UPDATE of a
device state, `ProtocolState.put_state_alone`): allowed on a PostgreSQL read connection, where it
commits alone, which is all the write needed (no BEGIN and COMMIT round trips)."""


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


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine (None: PostgreSQL, or an in-memory database)."""
    database = engine.url.database if is_sqlite(engine) else None
    return database if database and database != ":memory:" else None


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
