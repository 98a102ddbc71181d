"""Shared fixtures: a real SQLite store and a real PostgreSQL store (throwaway cluster)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from oxsync.config import Settings, StoreSettings
from oxsync.store.api import Store
from tests.pgcluster import PgCluster

SKIP_PG = os.environ.get("OXSYNC_SKIP_PG") == "1"
BACKENDS = ["sqlite"] if SKIP_PG else ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if SKIP_PG:
        pytest.skip("OXSYNC_SKIP_PG=1")
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def make_store(url: str, **limits: int) -> Store:
    settings = Settings(store=StoreSettings(url=url, thread_pool_size=4))
    if limits:
        settings = replace(settings, limits=replace(settings.limits, **limits))
    store = Store(settings)
    store.create_schema()
    return store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/oxsync.db"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = make_store(store_url)
    yield st
    st.dispose()


@pytest.fixture
def world(store: Store):  # type: ignore[no-untyped-def]
    from tests.world import build_world

    return build_world(store)
