"""An ActiveSync Sync window loads its items in one bulk store read (one query per table), not one
item at a time: the statements that read objects do not grow with the window size (export cache off,
so every window reads from the store)."""

from __future__ import annotations

import pytest

from oxsync.eas import install
from tests.eas_client import client, items
from tests.fixtures import recorded_statements
from tests.test_eas_sync import add_contacts

OBJECT_TABLES = ("objects", "participants", "list_members", "attachments")


@pytest.fixture
def phone(live_server, store, world):  # type: ignore[no-untyped-def]
    # texts rendered ahead after the store writes run in the background: not the Sync's reads
    c = client(live_server(store, setup=install, eas={"export_cache_objects": 0}, dav={"texts_ahead_max_pending": 0}))
    c.provision()
    return c


def _object_reads(store, fn) -> tuple[int, object]:  # type: ignore[no-untyped-def]
    def keep(statement: str) -> bool:
        return statement.lstrip().upper().startswith("SELECT") and any(f" {t}" in statement for t in OBJECT_TABLES)
    with recorded_statements(store, keep) as seen:
        result = fn()
    return len(seen), result


def test_window_reads_are_flat_in_the_window_size(phone, store, world) -> None:  # type: ignore[no-untyped-def]
    add_contacts(world, 60)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    phone.sync(folder, window=5)  # plans the pass (reads every change once), sends 5
    small, reply = _object_reads(store, lambda: phone.sync(folder, window=5))
    assert len(items(reply)) == 5
    large, reply = _object_reads(store, lambda: phone.sync(folder, window=40))
    assert len(items(reply)) == 40
    assert small == large, (small, large)
