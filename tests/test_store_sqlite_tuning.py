"""SQLite durability is a named setting: `normal` (default, WAL) or `full` reach the connection, and an
unknown value is refused with the setting's name."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from oxsync.config import ConfigError, Settings, StoreSettings, check_settings
from oxsync.store.engine import make_engine


@pytest.mark.parametrize(("value", "expected"), [("normal", 1), ("full", 2), ("EXTRA", 3)])
def test_synchronous_setting_reaches_every_connection(tmp_path, value: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(StoreSettings(url=f"sqlite:///{tmp_path}/x.db", sqlite_synchronous=value))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == expected
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        engine.dispose()


def test_unknown_synchronous_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        check_settings(Settings(store=StoreSettings(sqlite_synchronous="off")))


def test_sqlite_writers_queue_in_the_process_not_in_the_busy_handler(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A second write transaction of the process waits for its turn before BEGIN IMMEDIATE (woken the
    moment the first commits) instead of polling the database lock in SQLite's busy handler; a
    write nested in a write of the same thread does not wait for itself; reads never queue."""
    import threading

    from sqlalchemy import event

    from tests.fixtures import make_store
    from tests.world import build_world

    store = make_store(f"sqlite:///{tmp_path}/x.db")
    world = build_world(store)
    begins: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("BEGIN") and threading.current_thread().name == "second":
            begins.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    done = threading.Event()

    def second() -> None:
        with store.transaction(world.tenant_id, write=True) as tx:
            tx.stamp  # noqa: B018
        done.set()

    try:
        with store.transaction(world.tenant_id, write=True) as first:
            first.stamp  # noqa: B018
            worker = threading.Thread(target=second, name="second")
            worker.start()
            with store.transaction(world.tenant_id) as reader:  # a read does not wait for the turn
                assert reader.conn is not None
            assert not done.wait(0.3)
            assert begins == []  # without the turn: BEGIN IMMEDIATE, then polling the lock inside it
        worker.join(10)
        assert done.is_set() and begins == ["BEGIN IMMEDIATE"]
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
        store.dispose()


def _wal_frames(path: str) -> tuple[int, int]:
    """(frames in the log since it last restarted, frames of them in the database) after a PASSIVE
    checkpoint on a connection of the test's own."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _, log_frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    return log_frames, done


def _write_contacts(store, world, count: int, first: int = 0) -> None:  # type: ignore[no-untyped-def]
    from oxsync.model import Contact, Module

    folder = world.default_folder(world.alice, Module.CONTACT)
    for n in range(first, first + count):
        with world.as_user(world.alice, write=True) as session:
            session.create_object(folder, Contact(last_name=f"Log {n}", uid=f"log-{n}", note="x" * 3000))


def test_sqlite_writers_leave_checkpoints_to_the_checkpointer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No write transaction checkpoints the log inside its commit (holding the writer's turn): with the
    checkpointer held back, the log grows past SQLite's own 1,000-page checkpoint point without
    restarting; one checkpoint of the checkpointer's kind then copies all of it."""
    from tests.fixtures import make_store
    from tests.world import build_world

    path = f"{tmp_path}/x.db"
    store = make_store(f"sqlite:///{path}")
    assert store.checkpoints is not None
    store.checkpoints.commits, store.checkpoints.pause_s = 10**9, 3600.0  # held back
    try:
        world = build_world(store)
        _write_contacts(store, world, 250)
        assert store.checkpoints.runs == 0
        log_frames, done = _wal_frames(path)
        assert log_frames > 1000  # SQLite's automatic checkpoint in a commit would have restarted the log
        assert done == log_frames
    finally:
        store.dispose()


def test_sqlite_checkpointer_runs_after_a_batch_of_commits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The checkpointer's thread checkpoints once a batch of commits is noted, all of the log (the next
    write restarts it from its first frame), without any reader or writer having asked; it stops with
    the store."""
    import threading

    from tests.fixtures import make_store
    from tests.world import build_world

    path = f"{tmp_path}/x.db"
    store = make_store(f"sqlite:///{path}")
    checkpoints = store.checkpoints
    assert checkpoints is not None
    checkpoints.pause_s = 3600.0  # only a full batch can trigger it
    try:
        world = build_world(store)
        _write_contacts(store, world, checkpoints.commits - checkpoints._pending)
        for _ in range(1000):  # a bounded wait for the thread (no timing asserted)
            if checkpoints.runs:
                break
            threading.Event().wait(0.01)
        assert checkpoints.runs == 1
        _write_contacts(store, world, 1, first=checkpoints.commits)
        log_frames, _ = _wal_frames(path)
        assert 0 < log_frames < 100  # one write's frames: the batch's (about 750) were checkpointed
    finally:
        store.dispose()
    assert checkpoints._thread is not None and not checkpoints._thread.is_alive()


def test_sqlite_writes_go_through_one_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """8 threads writing at once write through the process's one writer connection (which keeps its page
    cache from one write to the next), not through 8 pooled ones; reads still take pooled connections,
    and the writer connection is given back with the store."""
    import threading

    from sqlalchemy import event

    from tests.fixtures import make_store
    from tests.world import build_world

    store = make_store(f"sqlite:///{tmp_path}/x.db")
    world = build_world(store)
    writers: set[int] = set()
    readers: set[int] = set()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("BEGIN"):
            with lock:
                (writers if statement == "BEGIN IMMEDIATE" else readers).add(id(conn.connection.dbapi_connection))

    def write() -> None:
        start.wait(10)
        for _ in range(5):
            with store.transaction(world.tenant_id, write=True) as tx:
                tx.stamp  # noqa: B018
                with store.transaction(world.tenant_id) as reader:  # a read inside: a pooled connection
                    assert reader.conn is not None

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        threads = [threading.Thread(target=write) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(writers) == 1 and not writers & readers
        assert store.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
        store.dispose()
    assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
