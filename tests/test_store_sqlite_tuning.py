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
