"""kill -9 during a burst of writes: every acknowledged write survives, sync state never points at
missing data, and a client resuming from its state sees no duplicates and no lost items."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from oxsync.model import Module
from tests.world import build_world

ACKS_BEFORE_KILL = 150


def test_kill_9_during_writes_loses_nothing_acknowledged(store, store_url) -> None:  # type: ignore[no-untyped-def]
    world = build_world(store)
    folder = world.default_folder(world.alice, Module.CONTACT)
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", store_url, str(world.tenant_id), str(world.alice), str(folder)],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    acked: list[tuple[int, str]] = []
    assert writer.stdout is not None
    deadline = time.monotonic() + 120
    while len(acked) < ACKS_BEFORE_KILL and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        _, object_id, uid = line.split()
        acked.append((int(object_id), uid))
    writer.send_signal(signal.SIGKILL)  # mid-burst: the next transaction is in flight
    writer.wait(10)
    assert len(acked) == ACKS_BEFORE_KILL, "the writer stopped before the kill"

    with world.as_user(world.alice) as session:
        present = {c.object_id: c.uid for c in session.list_objects(folder)}
        state = session.get_state("crashdev", str(folder))
        delta = session.object_delta(folder, 0)
    assert all(present.get(object_id) == uid for object_id, uid in acked), "an acknowledged write was lost"
    assert state is not None
    assert set(state["known"]) <= set(present), "sync state points at data that is not there"
    assert set(present) == set(state["known"]), "data committed without its sync state (or the reverse)"
    assert len(state["known"]) == len(set(state["known"])) == state["sync_key"]
    # a client resuming from its state: the delta after its known set has no duplicates and nothing missing
    assert sorted(o.object_id for o in delta.changed) == sorted(present)
    assert len({o.uid for o in delta.changed}) == len(delta.changed)
