"""The running server prunes old tombstones in every tenant on its own."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from oxsync.model import Contact, Module
from oxsync.store import schema as s
from tests.fixtures import raw_write
from tests.world import build_world


def test_server_prunes_tombstones_at_start_and_on_schedule(live_server, store) -> None:  # type: ignore[no-untyped-def]
    world = build_world(store)
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        item = session.create_object(folder, Contact(last_name="old"))
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(folder, item.object_id)
    with raw_write(store.engine) as conn:
        conn.execute(update(s.revision_log).values(ms=s.revision_log.c.ms - 60 * 86_400_000))
    live_server(store, store={"prune_interval_seconds": 3600})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with store.engine.connect() as conn:
            tombstones = conn.execute(select(s.changes).where(s.changes.c.gone.is_(True))).all()
            horizon = conn.execute(select(s.tenants.c.min_valid_rev)).scalar_one()
        if not tombstones:
            break
        time.sleep(0.1)
    assert tombstones == [] and horizon > 0
