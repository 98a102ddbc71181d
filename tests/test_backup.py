"""Backup and restore, on SQLite and PostgreSQL: a backup taken during a write burst is a consistent
snapshot, a quiescent one restores to identical content, restore refuses to overwrite live data unless
forced, and a phone that synced before the backup resumes syncing against the restored database."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

from oxsync.eas import install as install_eas
from oxsync.model import Contact, Module
from tests.eas_client import client, collection, items
from tests.fixtures import make_store
from tests.serveproc import oxsync

BURST = 150
DATA_TABLES = ("users", "addresses", "group_members", "folders", "permissions", "objects", "participants",
               "list_members", "attachments")


def fresh_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.db"
    return request.getfixturevalue("pg_cluster").empty_database()


def table_contents(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {name: sorted(map(tuple, conn.execute(select(table))), key=repr)
                    for name, table in meta.tables.items()}
    finally:
        engine.dispose()


def burst_names(url: str, tenant_id: int, user_id: int, folder_id: int) -> list[str]:
    store = make_store(url)
    try:
        with store.session(tenant_id, user_id) as session:
            names = [o.last_name for o in session.list_objects(folder_id) if (o.last_name or "").startswith("burst-")]
    finally:
        store.dispose()
    return sorted(names, key=lambda n: int(n.split("-")[1]))


def test_backup_during_writes_restore_and_resume(backend: str, store, world, live_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  request: pytest.FixtureRequest) -> None:
    url = store.settings.store.url
    running = live_server(store, setup=install_eas)
    phone = client(running)
    phone.provision()
    contacts = phone.folder_of_type(9)
    phone.sync(contacts, "0")
    before = items(phone.sync(contacts))  # the phone now holds the pre-burst state and its sync key
    folder = world.default_folder(world.alice, Module.CONTACT)

    written = threading.Semaphore(0)

    def write_burst() -> None:
        for i in range(BURST):
            with world.as_user(world.alice, write=True) as session:
                session.create_object(folder, Contact(last_name=f"burst-{i}"))
            written.release()

    writer = threading.Thread(target=write_burst)
    writer.start()
    for _ in range(10):
        written.acquire()  # the burst is under way
    mid = tmp_path / "mid.backup"
    result = oxsync("--db", url, "backup", str(mid), timeout=300)
    writer.join(300)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(mid.stat().st_mode) == 0o600

    # consistent: exactly the first k writes of the burst, nothing torn
    mid_url = fresh_url(backend, tmp_path, request, "mid")
    restored = oxsync("--db", mid_url, "restore", str(mid), timeout=300)
    assert restored.returncode == 0, restored.stderr
    names = burst_names(mid_url, world.tenant_id, world.alice, folder)
    assert names == [f"burst-{i}" for i in range(len(names))] and 10 <= len(names) <= BURST

    # quiescent: restores to identical content
    full = tmp_path / "full.backup"
    assert oxsync("--db", url, "backup", str(full), timeout=300).returncode == 0
    copy_url = fresh_url(backend, tmp_path, request, "copy")
    assert oxsync("--db", copy_url, "restore", str(full), timeout=300).returncode == 0
    restored_rows, live_rows = table_contents(copy_url), table_contents(url)
    if backend == "sqlite":  # the restored database is the backup, table for table
        assert restored_rows == table_contents(f"sqlite:///{full}")
    for name in DATA_TABLES:  # and the backup is what the server held (its timers may touch housekeeping rows)
        assert restored_rows[name] == live_rows[name], name

    # never over live data by accident
    refused = oxsync("--db", copy_url, "restore", str(mid), timeout=120)
    assert refused.returncode == 1 and "refusing to overwrite" in refused.stderr
    assert table_contents(copy_url) == restored_rows
    forced = oxsync("--db", copy_url, "restore", "--force", str(mid), timeout=300)
    assert forced.returncode == 0, forced.stderr
    assert burst_names(copy_url, world.tenant_id, world.alice, folder) == names

    # the phone, which synced before the backup, resumes against the restored server
    restored_store = make_store(mid_url)
    try:
        again = live_server(restored_store, setup=install_eas)
        phone.port = again.port
        resumed = phone.sync(contacts)
        assert resumed.text("AirSync:Collections/AirSync:Collection/AirSync:Status") == "1"
        got = dict(items(resumed))
        while collection(resumed).find("AirSync:MoreAvailable") is not None:  # windows of 100
            resumed = phone.sync(contacts)
            got.update(items(resumed))
        assert len(got) == len(names) and not set(got) & set(before)
        with restored_store.session(world.tenant_id, world.alice, write=True) as session:
            session.create_object(folder, Contact(last_name="after-restore"))
        assert len(items(phone.sync(contacts))) == 1
    finally:
        restored_store.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_restore_refuses_what_is_not_a_backup(backend: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a database")
    result = oxsync("--db", f"sqlite:///{tmp_path}/new.db", "restore", str(junk), timeout=60)
    assert result.returncode == 1 and "is not an SQLite backup of oxsync" in result.stderr
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_pg_restore_leaves_planner_statistics(backend: str, store, world, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              request: pytest.FixtureRequest) -> None:
    """pg_restore copies rows, not statistics: without the VACUUM (ANALYZE) that follows it, the planner read 100
    objects by id as a scan of every object of the tenant until autovacuum came by (bench/README
    r-pgstorm). Five objects stay under autovacuum's threshold, so only the restore can have analyzed."""
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        for i in range(5):
            session.create_object(folder, Contact(last_name=f"stat-{i}"))
    saved = tmp_path / "stats.backup"
    assert oxsync("--db", store.settings.store.url, "backup", str(saved), timeout=300).returncode == 0
    copy_url = fresh_url(backend, tmp_path, request, "stats")
    restored = oxsync("--db", copy_url, "restore", str(saved), timeout=300)
    assert restored.returncode == 0, restored.stderr
    engine = create_engine(copy_url)
    try:
        with engine.connect() as conn:
            analyzed = {row[0] for row in conn.exec_driver_sql(
                "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public'")}
            pages = {row[0]: (row[1], row[2]) for row in conn.exec_driver_sql(
                "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname IN ('objects', 'folders', 'users')")}
    finally:
        engine.dispose()
    assert {"objects", "folders", "users", "permissions"} <= analyzed
    # and vacuumed (store/settle.py): every restored page all-visible, not left to autovacuum's first pass
    assert all(n > 0 and visible == n for n, visible in pages.values()), pages
