"""Shared fixtures for tests/ and conformance/ (loaded once, as a plugin, by the root conftest.py):
a real SQLite store and a real PostgreSQL store (throwaway cluster), the reactor thread, live servers."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, make_url
from sqlalchemy import event as sa_event

from oxsync.config import AuthSettings, Settings, StoreSettings
from oxsync.store.api import Store
from oxsync.store.engine import WRITE
from tests.pgcluster import MIGRATED_CLONES, PgCluster

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


FAST_HASHES = AuthSettings(password_hash_time_cost=1, password_hash_memory_kib=1024, password_hash_parallelism=1)
"""Tests create thousands of accounts: cheap Argon2 there (the production default costs ~0.3 s a hash here)."""


@contextmanager
def raw_write(engine: Engine) -> Iterator[Connection]:
    """A test's own write behind the store's back (to age history, poison rows...). On SQLite it takes
    the write lock up front (BEGIN IMMEDIATE): a deferred transaction that reads first and then writes
    fails at once with "database is locked" if the live server committed in between (a cache fill, a
    queue worker), and the busy timeout does not help there."""
    with engine.connect() as conn, conn.execution_options(**WRITE).begin():
        yield conn


_sqlite_template: list[Path] = []
"""The first SQLite store this process makes is migrated into here once; later ones are copies of it."""


def _sqlite_schema_copied(url: str) -> bool:
    """A new SQLite file at `url` gets the migrated template's bytes (the same migrations, run once per
    process: running all of them cost 0.2-0.3 s per test, a few minutes per suite). False when `url` is
    not a new file in an existing directory: the caller migrates as before."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return False
    target = Path(parsed.database)
    if target.exists() or not target.parent.is_dir():
        return False
    if not _sqlite_template:
        folder = Path(tempfile.mkdtemp(prefix="oxsync-template-"))
        atexit.register(shutil.rmtree, folder, True)
        template = Store(Settings(store=StoreSettings(url=f"sqlite:///{folder}/template.db", thread_pool_size=1),
                                  auth=FAST_HASHES))
        template.create_schema()
        template.dispose()  # the last connection's close checkpoints the log: the file alone is the database
        _sqlite_template.append(folder / "template.db")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the mode Store gives a new file
    with os.fdopen(fd, "wb") as out, _sqlite_template[0].open("rb") as source:
        shutil.copyfileobj(source, out)
    return True


def _take_migrated_clone(url: str) -> bool:
    """True (once) for a PostgreSQL database that `PgCluster.new_database` cloned from its migrated template."""
    if url in MIGRATED_CLONES:
        MIGRATED_CLONES.discard(url)
        return True
    return False


def make_store(url: str, **limits: int) -> Store:
    settings = Settings(store=StoreSettings(url=url, thread_pool_size=4), auth=FAST_HASHES)
    if limits:
        settings = replace(settings, limits=replace(settings.limits, **limits))
    copied = _sqlite_schema_copied(url) or _take_migrated_clone(url)
    store = Store(settings)
    if not copied:
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


@pytest.fixture(scope="session")
def reactor():  # type: ignore[no-untyped-def]
    """The global Twisted reactor, running in a daemon thread for the whole test session."""
    import threading
    import time

    from twisted.internet import reactor as global_reactor

    if global_reactor.running:  # started by an earlier session-scoped user
        yield global_reactor
        return
    thread = threading.Thread(target=global_reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not global_reactor.running and time.monotonic() < deadline:
        time.sleep(0.01)
    yield global_reactor
    global_reactor.callFromThread(global_reactor.stop)
    thread.join(5)


@pytest.fixture
def live_server(reactor):  # type: ignore[no-untyped-def]
    """Factory: start a real service for `store` on an ephemeral loopback port; stopped after the test.

    `setup(service)` registers dialect resources before listening; `sections` override settings.
    """
    from twisted.internet.threads import blockingCallFromThread

    from oxsync.config import apply_overrides
    from oxsync.server import make_service
    from tests.live import Running

    started = []

    def start(store: Store, /, setup=None, **sections):  # type: ignore[no-untyped-def]
        server = {"http_endpoint": "tcp:0:interface=127.0.0.1", "udp_port": 0, **sections.pop("server", {})}
        data = {"server": server, **sections}
        settings = apply_overrides(store.settings, data)
        service = make_service(settings, store, reactor)
        if setup is not None:
            setup(service)

        def go():  # type: ignore[no-untyped-def]
            service.startService()
            return service.when_listening()

        port = blockingCallFromThread(reactor, go)
        running = Running(service, port, reactor)
        started.append(running)
        return running

    yield start
    for running in started:
        blockingCallFromThread(reactor, running.service.stopService)


@pytest.fixture(scope="module")
def mail_backends():  # type: ignore[no-untyped-def]
    """Store + throwaway Dovecot per backend for one test module, started on first use (tests/dovecot.py).

    Per module, not per session: late in whole-suite runs a session-long SQLite store shared with Dovecot
    was seen answering Dovecot's user lookups as if new accounts did not exist ("User doesn't exist",
    ManageSieve logins refused) and a new connection failing with "disk I/O error"; every module alone
    passed. Not root-caused yet; a fresh mail world per module keeps modules independent meanwhile."""
    started: dict[str, tuple[object, object]] = {}
    yield started
    for store, dovecot in started.values():
        dovecot.stop()  # type: ignore[attr-defined]
        store.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def mail(backend: str, mail_backends, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A fresh tenant with alice and bob whose mailboxes live in a real Dovecot authenticating on our store."""
    from tests.dovecot import DovecotUnavailable, MailWorld, start_mail_backend

    started = mail_backends
    if backend not in started:
        pg_url = request.getfixturevalue("pg_cluster").new_database() if backend == "postgresql" else None
        try:
            started[backend] = start_mail_backend(backend, pg_url)
        except DovecotUnavailable as exc:
            pytest.fail(str(exc))
    store, dovecot = started[backend]
    return MailWorld(store, dovecot)


@pytest.fixture
def sink():  # type: ignore[no-untyped-def]
    """A real SMTP server (aiosmtpd) on a free loopback port, keeping what it receives."""
    from tests.smtp_sink import SmtpSink

    s = SmtpSink()
    yield s
    s.close()


@pytest.fixture
def relayed(store, sink):  # type: ignore[no-untyped-def]
    """The store with its settings pointing at the sink (what the assembly passes to the workers)."""
    store.settings = replace(store.settings, outbound=replace(store.settings.outbound,
                                                              smtp_relay=f"127.0.0.1:{sink.port}"))
    return store


@contextmanager
def recorded_statements(store: Store, keep: Callable[[str], bool] = lambda statement: True) -> Iterator[list[str]]:
    """The SQL statements the store's engine runs meanwhile, on any thread, that `keep` accepts: what the
    work-count tests compare (statements per request, reads of a table)."""
    seen: list[str] = []

    def record(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if keep(statement):
            seen.append(statement)

    sa_event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", record)


@contextmanager
def recorded_executions(store: Store, keep: Callable[[str], bool] = lambda statement: True
                        ) -> Iterator[list[tuple[str, Any]]]:
    """`recorded_statements` with each statement's parameters, for what runs them again (`EXPLAIN`)."""
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if keep(statement):
            seen.append((statement, parameters))

    sa_event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", record)


def counted_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The object ids rendered to iCalendar/vCard text in this process from now on (the server's reads
    and the texts rendered ahead), for the work-count tests of the served-text cache."""
    from oxsync.dav import layout

    seen: list[int] = []
    real = layout._render

    def counting(res, *args):  # type: ignore[no-untyped-def]
        seen.append(res.object_id)
        return real(res, *args)

    monkeypatch.setattr(layout, "_render", counting)
    return seen
