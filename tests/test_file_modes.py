"""The SQLite database holds password hashes: var/ is 0700, the database and its WAL/SHM files 0600."""

from __future__ import annotations

import os
import stat

from oxsync.store import accounts
from tests.fixtures import make_store


def mode(path: object) -> int:
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_new_database_files_are_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = os.umask(0o022)  # the usual umask: what it lets through must not matter
    try:
        store = make_store(f"sqlite:///{tmp_path}/var/oxsync.db")
        tenant = store.create_tenant("example.com")
        with store.transaction(tenant.id, write=True) as tx:
            accounts.create_user(tx, "alice", "alice-pw")
        db = tmp_path / "var" / "oxsync.db"
        assert (tmp_path / "var" / "oxsync.db-wal").exists() and (tmp_path / "var" / "oxsync.db-shm").exists()
        assert mode(tmp_path / "var") == 0o700
        assert {p.name: mode(p) for p in (tmp_path / "var").iterdir() if p.name.startswith("oxsync.db")} == {
            "oxsync.db": 0o600, "oxsync.db-wal": 0o600, "oxsync.db-shm": 0o600}
        store.dispose()
        assert mode(db) == 0o600
    finally:
        os.umask(old)


def test_readable_files_of_an_older_version_are_tightened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = make_store(f"sqlite:///{tmp_path}/oxsync.db")
    store.create_tenant("example.com")
    store.dispose()
    for name in ("oxsync.db", "oxsync.db-wal", "oxsync.db-shm"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o644)
    store = make_store(f"sqlite:///{tmp_path}/oxsync.db")
    assert store.tenants()
    assert all(mode(p) == 0o600 for p in tmp_path.iterdir() if p.name.startswith("oxsync.db"))
    store.dispose()
