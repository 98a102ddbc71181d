"""Parallel writers on PostgreSQL never make a reader's delta miss a committed change."""

from __future__ import annotations

import threading

from oxsync.model import Contact, Module
from tests.fixtures import make_store
from tests.world import build_world

WRITERS = 6
PER_WRITER = 40


def test_concurrent_writers_and_delta_reader(pg_cluster) -> None:  # type: ignore[no-untyped-def]
    store = make_store(pg_cluster.new_database())
    world = build_world(store)
    folder = world.default_folder(world.alice, Module.CONTACT)
    created: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(PER_WRITER):
                with world.as_user(world.alice, write=True) as session:
                    obj = session.create_object(folder, Contact(last_name=f"w{n}-{i}"))
                with lock:
                    created.append(obj.object_id)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    seen: set[int] = set()
    tokens: list[int] = []
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    token = 0
    while any(t.is_alive() for t in threads):
        with world.as_user(world.alice) as session:
            delta = session.object_delta(folder, token)
        seen.update(o.object_id for o in delta.changed)
        token = delta.revision
        tokens.append(token)
    for t in threads:
        t.join()
    with world.as_user(world.alice) as session:
        final = session.object_delta(folder, token)
    seen.update(o.object_id for o in final.changed)

    assert errors == []
    assert len(created) == WRITERS * PER_WRITER
    assert tokens == sorted(tokens)
    assert set(created) <= seen, f"delta reader missed {len(set(created) - seen)} committed objects"
    with world.as_user(world.alice) as session:
        ms_values = sorted(o.last_modified for o in session.list_objects(folder))
    assert len(set(ms_values)) == len(ms_values), "each commit must have its own OX timestamp"
    store.dispose()
