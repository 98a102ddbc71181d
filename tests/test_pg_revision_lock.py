"""PostgreSQL: writers of different users do their object work side by side; only the short stamped tail
of a write (revision bump, change rows) queues on the tenant's revision lock, so revision order still
equals commit order (docs/store.md, "Revision lock")."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from oxsync.model import Contact, Module
from tests.fixtures import make_store
from tests.world import build_world

BOUND_S = 60
"""Bounds every wait, so that a broken lock order fails the test instead of hanging it."""


@pytest.mark.parametrize("write, pause_at, second", [("create", "before WITH bump", "bob"),
                                                     ("update", "after DELETE FROM list_members", "bob"),
                                                     ("create", "before WITH bump", "alice")])
def test_second_writer_completes_while_first_holds_its_object_work(pg_cluster, write: str, pause_at: str,
                                                                    second: str) -> None:
    """Alice's write pauses at the end of its object work (an update: after its side rows' rewrite; a
    create, whose object rows are written by the stamp's own statement: just before that statement);
    the second writer (another user, or alice herself on another connection: her usage row is also
    taken only at the stamp) must complete."""
    when, pause_after = pause_at.split(" ", 1)
    store = make_store(pg_cluster.new_database())
    world = build_world(store)
    other = getattr(world, second)
    folders = {u: world.default_folder(u, Module.CONTACT) for u in (world.alice, world.bob)}
    existing = {}
    for user in folders:
        with world.as_user(user, write=True) as session:
            existing[user] = session.create_object(folders[user], Contact(last_name="Before")).object_id
    with world.as_user(world.alice) as session:
        start = session.revision()[0]

    alice_holds, bob_done = threading.Event(), threading.Event()
    alice_thread: list[threading.Thread] = []
    paused: list[str] = []

    def pause_alice(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if alice_thread and threading.current_thread() is alice_thread[0] and not paused \
                and statement.startswith(pause_after):
            paused.append(statement)  # alice's object work is written; her transaction stays open
            alice_holds.set()
            bob_done.wait(BOUND_S)

    def save(user: int, name: str, out: dict[str, Any]) -> None:
        with world.as_user(user, write=True) as session:
            if threading.current_thread() is not alice_thread[0]:  # a lock wait behind alice fails, not hangs
                session.tx.conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            if write == "create":
                obj = session.create_object(folders[user], Contact(last_name=name))
            else:
                obj = session.update_object(folders[user], Contact(object_id=existing[user], last_name=name))
            out["id"], out["ms"] = obj.object_id, obj.last_modified
        with world.as_user(user) as session:
            out["rev"] = session.revision()[0]

    sa_event.listen(store.engine, f"{when}_cursor_execute", pause_alice)
    alice: dict[str, Any] = {}
    bob: dict[str, Any] = {}
    bob_error: list[BaseException] = []
    try:
        alice_thread.append(threading.Thread(target=save, args=(world.alice, "Alice's", alice)))
        alice_thread[0].start()
        assert alice_holds.wait(BOUND_S), "alice never reached the end of her object work"
        try:
            save(other, "Bob's", bob)
        except BaseException as exc:  # noqa: BLE001 - a lock timeout: bob waited for alice
            bob_error.append(exc)
        with world.as_user(other) as session:
            between = session.object_delta(folders[other], start)
            alice_between = session.revision()[0]
        bob_done.set()
        alice_thread[0].join(BOUND_S)
    finally:
        bob_done.set()
        sa_event.remove(store.engine, f"{when}_cursor_execute", pause_alice)
    assert paused and bob_error == [], f"bob waited for alice's open transaction: {bob_error}"
    assert "id" in alice and not alice_thread[0].is_alive()
    # bob committed first, so his revision is the lower one; alice's stamp came after, at her commit
    assert start < bob["rev"] < alice["rev"] and bob["ms"] < alice["ms"]
    assert [o.object_id for o in between.changed] == [bob["id"]] and alice_between == bob["rev"]
    with world.as_user(world.alice) as session:
        after = session.object_delta(folders[world.alice], bob["rev"])
        assert [o.object_id for o in after.changed] == [alice["id"]]
        stored = session.get_object(folders[world.alice], alice["id"])
    assert stored.last_modified == alice["ms"] and stored.last_name == "Alice's"
    if write == "create":
        assert stored.creation_time is not None and int(stored.creation_time.timestamp() * 1000) == alice["ms"]
    store.dispose()
