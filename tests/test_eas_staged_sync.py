"""A Sync that only sends server changes exports its window in a read transaction; its write transaction
holds the database's write lock for the device state alone (a few statements, no object read), however
large the window. A state that moved between the two transactions makes the Sync run again inside one
write transaction, so two requests of one device never both advance the same SyncKey."""

from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event

from oxsync.eas import install, state
from oxsync.store.engine import WRITE
from oxsync.store.protocol_state import StateMoved
from tests.eas_client import client, items
from tests.test_eas_sync import add_contacts
from tests.test_eas_window_reads import OBJECT_TABLES


@pytest.fixture
def phone(live_server, store, world):  # type: ignore[no-untyped-def]
    # texts rendered ahead after the store writes run in the background: not the Sync's work
    c = client(live_server(store, setup=install, eas={"export_cache_objects": 0}, dav={"texts_ahead_max_pending": 0}))
    c.provision()
    return c


def _in_write_transactions(store, fn) -> tuple[list[str], object]:  # type: ignore[no-untyped-def]
    """The statements of the write transactions (SQLite: BEGIN IMMEDIATE) that wrote device state while
    `fn` ran: the request's own. The live server's background workers (outbound queue, reminder scan)
    write in transactions of their own at any moment; they touch no device state and are left out."""
    transactions: dict[int, list[list[str]]] = {}
    marker = next(iter(WRITE.items()))

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get(marker[0]) != marker[1]:
            return
        statement = " ".join(statement.split())
        mine = transactions.setdefault(id(conn), [])
        if statement.startswith("BEGIN") or not mine:
            mine.append([])
        mine[-1].append(statement)

    sa_event.listen(store.engine, "before_cursor_execute", record)
    try:
        result = fn()
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", record)
    ours = [t for per_conn in transactions.values() for t in per_conn if any("device_state" in s for s in t)]
    return [s for t in ours for s in t], result


def test_export_reads_no_object_inside_a_write_transaction(phone, store, world) -> None:  # type: ignore[no-untyped-def]
    add_contacts(world, 60)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    small, reply = _in_write_transactions(store, lambda: phone.sync(folder, window=5))
    assert len(items(reply)) == 5
    large, reply = _in_write_transactions(store, lambda: phone.sync(folder, window=40))
    assert len(items(reply)) == 40
    for statements in (small, large):
        assert not [s for s in statements if any(f" {t} " in f"{s} " for t in OBJECT_TABLES)], statements
        assert all("device_state" in s for s in statements if not s.startswith(("BEGIN", "COMMIT"))), statements
    assert len(large) == len(small) <= 12, (small, large)


def test_staged_state_commits_only_if_unchanged(store, world) -> None:  # type: ignore[no-untyped-def]
    alice = world.alice
    with world.as_user(alice, write=True) as session:
        session.put_state("dev1", "c:1", {"key": "{a}1"})
    with world.as_user(alice) as session:
        staged = state.StagedStates(session)
        st = staged.get_state("dev1", "c:1")
        assert st == {"key": "{a}1"}
        staged.put_state("dev1", "c:1", {"key": "{a}2"})
        assert staged.get_state("dev1", "c:1") == {"key": "{a}2"}  # reads its own staged write
        staged.put_state("dev1", state.LAST_SYNC, {"request": "x"})
    with world.as_user(alice, write=True) as session:  # another request of the device got there first
        session.put_state("dev1", "c:1", {"key": "{a}2", "other": True})
    with pytest.raises(StateMoved), world.as_user(alice, write=True) as session:
        staged.commit(session)  # raised: the transaction rolls back
    with world.as_user(alice) as session:
        assert session.get_state("dev1", "c:1") == {"key": "{a}2", "other": True}
        assert session.get_state("dev1", state.LAST_SYNC) is None  # nothing of the stale attempt landed
    with world.as_user(alice) as session:
        again = state.StagedStates(session)
        again.get_state("dev1", "c:1")
        again.put_state("dev1", "c:1", {"key": "{a}3"})
    with world.as_user(alice, write=True) as session:
        again.commit(session)
    with world.as_user(alice) as session:
        assert session.get_state("dev1", "c:1") == {"key": "{a}3"}


def test_folder_sync_writes_only_its_hierarchy_state(phone, store) -> None:  # type: ignore[no-untyped-def]
    statements, _ = _in_write_transactions(store, lambda: phone.folder_sync("0"))
    work = [s for s in statements if not s.startswith(("BEGIN", "COMMIT"))]
    assert work and all("device_state" in s for s in work), statements
    assert len(work) <= 4, statements


def test_staged_commit_compares_and_swaps_without_a_read(store, world) -> None:  # type: ignore[no-untyped-def]
    """The state write is one UPDATE per written state, each written only if its stored text is as read,
    the first also checking the state read and not written (a Sync's device record): a move of either is
    detected, and nothing is read before the writes (a check read of every state before)."""
    from tests.fixtures import recorded_statements

    alice = world.alice
    with world.as_user(alice, write=True) as session:
        session.put_state("dev2", state.DEVICE, {"policy_key": "1"})
        session.put_state("dev2", "c:1", {"key": "{a}1"})

    def staged() -> state.StagedStates:
        with world.as_user(alice) as session:
            states = state.StagedStates(session)
            states.prefetch("dev2", [state.DEVICE, "c:1"])
            states.put_state("dev2", "c:1", {"key": "{a}2"})
            return states

    device_moved = staged()
    with world.as_user(alice, write=True) as session:  # re-provisioned meanwhile
        session.put_state("dev2", state.DEVICE, {"policy_key": "2"})
    with pytest.raises(StateMoved), world.as_user(alice, write=True) as session:
        device_moved.commit(session)
    written = staged()
    with recorded_statements(store, lambda s: "device_state" in s) as seen, \
            world.as_user(alice, write=True) as session:
        written.commit(session)
    assert len(seen) == 1 and seen[0].lstrip().upper().startswith("UPDATE"), seen
    with world.as_user(alice) as session:
        assert session.get_state("dev2", "c:1") == {"key": "{a}2"}


def test_one_state_commits_alone_on_the_reads_connection_on_postgresql(store, world, backend) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL a staged write of one state is one compare-and-swap UPDATE sent on the read's own
    (autocommit) connection: no write transaction, so no BEGIN and no COMMIT; a state that moved is
    still refused by that UPDATE (nothing written). On SQLite the read cannot write: it says so and
    writes nothing (the write transaction follows, as before)."""
    from tests.fixtures import recorded_statements

    alice = world.alice
    with world.as_user(alice, write=True) as session:
        session.put_state("dev3", state.DEVICE, {"policy_key": "1"})
        session.put_state("dev3", "c:1", {"key": "{a}1"})
    with recorded_statements(store) as seen, world.as_user(alice) as session:
        states = state.StagedStates(session)
        states.prefetch("dev3", [state.DEVICE, "c:1"])
        states.put_state("dev3", "c:1", {"key": "{a}2"})
        alone = states.commit_alone(session)
    writes = [s for s in seen if not s.lstrip().upper().startswith(("SELECT", "BEGIN", "COMMIT"))]
    with world.as_user(alice) as session:
        written = session.get_state("dev3", "c:1")
    if backend == "sqlite":
        assert not alone and writes == [] and written == {"key": "{a}1"}
        return
    assert alone and written == {"key": "{a}2"}
    assert not [s for s in seen if s.lstrip().upper().startswith(("BEGIN", "COMMIT"))], seen
    assert len(writes) == 1 and writes[0].lstrip().upper().startswith("UPDATE"), seen
    with world.as_user(alice) as session:
        moved = state.StagedStates(session)
        moved.prefetch("dev3", [state.DEVICE, "c:1"])
        moved.put_state("dev3", "c:1", {"key": "{a}3"})
        with world.as_user(alice, write=True) as other:  # another request of the device got there first
            other.put_state("dev3", state.DEVICE, {"policy_key": "2"})
        with pytest.raises(StateMoved):
            moved.commit_alone(session)
    with world.as_user(alice) as session:
        assert session.get_state("dev3", "c:1") == {"key": "{a}2"}
