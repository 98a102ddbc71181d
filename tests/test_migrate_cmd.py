"""Upgrades: `serve` refuses a database whose schema is behind (or migrates when told to), and
`oxsync migrate` brings it to this version, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from oxsync.store.migrate import head_revision, schema_state, upgrade
from tests.serveproc import Serve, oxsync

OLD = "0004"


@pytest.fixture
def old_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database migrated only up to an older revision, as an earlier oxsync left it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        url = request.getfixturevalue("pg_cluster").empty_database()
    engine = create_engine(url)
    upgrade(engine, OLD)
    engine.dispose()
    return url


def state(url: str) -> str:
    engine = create_engine(url)
    try:
        return schema_state(engine)[0]
    finally:
        engine.dispose()


def test_serve_refuses_an_old_schema_and_migrate_upgrades_it(old_db: str) -> None:
    refused = oxsync("--db", old_db, "serve", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", "0", timeout=60)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"schema is at {OLD}, this oxsync needs {head_revision()}: run `oxsync migrate`" in refused.stderr
    assert state(old_db) == "behind"  # refusing changed nothing

    migrated = oxsync("--db", old_db, "migrate", timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema migrated from {OLD} to {head_revision()}" in migrated.stdout
    assert state(old_db) == "current"
    again = oxsync("--db", old_db, "migrate", timeout=60)
    assert again.returncode == 0 and "already at" in again.stdout


def test_serve_migrates_when_told(old_db: str) -> None:
    server = Serve("--db", old_db, "serve", "--migrate", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", "0")
    try:
        printed = server.wait_for("CalDAV/CardDAV discovery")
        assert f"schema migrated from {OLD} to {head_revision()}" in printed
    finally:
        assert server.stop() == 0
    assert state(old_db) == "current"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_serve_on_an_empty_database_says_init(backend: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    create_engine(url).connect().close()
    result = oxsync("--db", url, "serve", "--listen", "tcp:0:interface=127.0.0.1", timeout=60)
    assert result.returncode == 1 and "run `oxsync init` first" in result.stderr
