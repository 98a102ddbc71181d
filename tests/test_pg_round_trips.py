"""Round trips per unit of work on PostgreSQL, counted by the server itself (its statement log,
`log_min_duration_statement = 0`, which logs every query, the empty ping included): a read unit sends no
BEGIN and no COMMIT, a write unit one of each; a pooled connection reused within PING_IDLE_SECONDS is not
pinged, one idle longer is, and one whose backend died meanwhile is replaced instead of failing the
unit; a write statement on a read connection is refused (it would commit alone). bench/README r-pgstorm
measured what these round trips cost in the simulator's arrival storm."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import select, update

from oxsync.model import Contact, Module
from oxsync.store import engine as store_engine
from oxsync.store import schema as s
from oxsync.store.api import Store
from tests.fixtures import make_store
from tests.pgcluster import PgCluster
from tests.world import World, build_world

LOGGED = re.compile(r"duration: [0-9.]+ ms  (?:statement|execute [^:]*): (.*)$")


class ServerLog:
    """The statements the cluster logged from here on, for one database."""

    def __init__(self, cluster: PgCluster) -> None:
        self.path = cluster.dir / "log"
        self.offset = self.path.stat().st_size

    def statements(self) -> list[str]:
        with open(self.path, encoding="utf-8", errors="replace") as log:
            log.seek(self.offset)
            text = log.read()
        self.offset += len(text.encode("utf-8", errors="replace"))
        entries: list[str] = []
        for line in text.splitlines():  # a statement's further lines follow its entry, tab-indented
            if line.startswith("\t") and entries:
                entries[-1] += " " + line.strip()
            else:
                entries.append(line)
        return [m.group(1).strip() for entry in entries if (m := LOGGED.search(entry))]


def _admin(cluster: PgCluster, sql: str) -> None:
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def logged(pg_cluster: PgCluster) -> Iterator[tuple[str, PgCluster]]:
    url = pg_cluster.new_database()
    name = url.rsplit("/", 1)[1]
    _admin(pg_cluster, f"ALTER DATABASE {name} SET log_min_duration_statement = 0")
    yield url, pg_cluster
    _admin(pg_cluster, f"ALTER DATABASE {name} RESET log_min_duration_statement")


@pytest.fixture
def opened(logged: tuple[str, PgCluster], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], tuple[Store, World]]]:
    """Opens the logged database as a store whose pool pings a connection idle over `idle_s`; disposed after."""
    url, _cluster = logged
    made: list[Store] = []

    def open_store(idle_s: float) -> tuple[Store, World]:
        monkeypatch.setattr(store_engine, "PING_IDLE_SECONDS", idle_s)
        made.append(make_store(url))
        return made[-1], build_world(made[-1])
    yield open_store
    for store in made:
        store.dispose()


def _read_unit(world: World) -> None:
    with world.as_user(world.alice) as session:
        assert session.list_folders()


def test_read_unit_sends_no_begin_or_commit_write_unit_one_each(logged, opened) -> None:  # type: ignore[no-untyped-def]
    _url, cluster = logged
    _store, world = opened(3600.0)
    folder = world.default_folder(world.alice, Module.CONTACT)
    log = ServerLog(cluster)
    _read_unit(world)
    read = log.statements()
    assert read and not [q for q in read if q.startswith(("BEGIN", "COMMIT", "ROLLBACK", ";")) or not q]
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="counted"))
    written = log.statements()
    assert len([q for q in written if q.startswith("BEGIN")]) == 1 and written.count("COMMIT") == 1
    with world.as_user(world.alice) as session:  # the read sees the committed write
        assert [c.last_name for c in session.list_objects(folder)] == ["counted"]


def test_connection_reused_within_the_idle_time_is_not_pinged(logged, opened) -> None:  # type: ignore[no-untyped-def]
    _url, cluster = logged
    _store, world = opened(3600.0)
    _read_unit(world)
    log = ServerLog(cluster)
    for _ in range(5):
        _read_unit(world)
    assert not [q for q in log.statements() if q in (";", "")]


def test_idle_connection_is_pinged_and_a_dead_one_replaced(logged, opened) -> None:  # type: ignore[no-untyped-def]
    url, cluster = logged
    _store, world = opened(0.0)
    _read_unit(world)
    log = ServerLog(cluster)
    _read_unit(world)
    assert [q for q in log.statements() if q in (";", "")] == [";"]
    name = url.rsplit("/", 1)[1]
    _admin(cluster, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
    _read_unit(world)  # the ping finds the pooled connection dead; a new one serves the unit


def test_write_statement_on_a_read_connection_is_refused(opened) -> None:  # type: ignore[no-untyped-def]
    store, world = opened(3600.0)
    u = s.users
    with pytest.raises(RuntimeError, match="read-only"), store.transaction(world.tenant_id) as tx:
        tx.conn.execute(update(u).where(u.c.id == world.alice).values(display_name="changed"))
    with store.transaction(world.tenant_id) as tx:
        name = tx.conn.execute(select(u.c.display_name).where(u.c.id == world.alice)).scalar_one()
    assert name != "changed"



@pytest.fixture
def eas_contacts(opened, live_server):  # type: ignore[no-untyped-def]
    """A provisioned phone on a live server over the logged database (export cache off: every item read
    from the store), alice with 250 contacts: (phone, contacts folder id, contact ids, world)."""
    from oxsync.dialects import install_all
    from tests.eas_client import client
    from tests.test_eas_sync import add_contacts

    store, world = opened(3600.0)
    running = live_server(store, setup=install_all, eas={"export_cache_objects": 0}, dav={"texts_ahead_max_pending": 0})
    ids = add_contacts(world, 250)
    phone = client(running, device_id="pgcounted")
    phone.provision()
    return phone, phone.folder_of_type(9), ids, world


def test_eas_initial_window_round_trips(logged, eas_contacts) -> None:  # type: ignore[no-untyped-def]
    """The windows of an initial Contacts Sync (100, 100, 50 items): the statements of a window of 100, and
    one statement text for the rows of every window whatever its length (an array of ids, not one
    parameter per id: psycopg converts it once and prepares it, PostgreSQL plans it by index)."""
    from tests.eas_client import collection, items

    _url, cluster = logged
    phone, folder, ids, _world = eas_contacts
    phone.sync(folder, "0")
    log = ServerLog(cluster)
    per_window: list[list[str]] = []
    sent: list[str] = []
    for _ in range(3):
        reply = phone.sync(folder, window=100)
        sent += items(reply)
        per_window.append(log.statements())
    assert collection(reply).find("AirSync:MoreAvailable") is None and sorted(map(int, sent)) == ids
    assert len(per_window[1]) <= WINDOW_ROUND_TRIPS, "\n".join(per_window[1])
    row_reads = {q for window in per_window for q in window if q.startswith("SELECT objects.tenant_id, objects.id")}
    assert len(row_reads) == 1, row_reads


WINDOW_ROUND_TRIPS = 4
"""The gate's device-state read; the folder with its permissions (one statement, 2 before; the user's own
folder names no group: the viewer's groups are not read, 5 before); the window's rows (plain contacts: no list-member read, 1 before; none has attachments
(`objects.has_attachments`): no attachment read, 1 before); the state write, one compare-and-swap
UPDATE of the collection's state that commits alone on the read's connection (7 before: BEGIN and
COMMIT around it in a write transaction of its own). Before that: the state
write: BEGIN, 1 compare-and-swap UPDATE of the collection's state (a check read and 2 UPDATEs before,
10: the remembered request kept its SyncKey and was written again), COMMIT."""


@pytest.fixture
def eas_phone(eas_contacts):  # type: ignore[no-untyped-def]
    """`eas_contacts` with the 250 contacts synced to the phone in windows of 100."""
    from tests.test_eas_light_plan import _whole_pass

    phone, folder, ids, world = eas_contacts
    _whole_pass(phone, folder, 100)
    return phone, folder, ids, world


def test_eas_ten_change_delta_round_trips(logged, eas_phone) -> None:  # type: ignore[no-untyped-def]
    """One Sync answering 10 changed contacts (bench_eas_peers' delta): every statement PostgreSQL runs."""
    from tests.eas_client import items

    _url, cluster = logged
    phone, folder, ids, world = eas_phone
    contacts = world.default_folder(world.alice, Module.CONTACT)
    for rnd in range(2):  # the second delta is the one counted: statements prepared, logins remembered
        with world.as_user(world.alice, write=True) as session:
            for object_id in ids[rnd * 10:rnd * 10 + 10]:
                contact = session.get_object(contacts, object_id)
                contact.first_name += " changed"
                session.update_object(contacts, contact)
        log = ServerLog(cluster)
        reply = phone.sync(folder, window=100)
        statements = log.statements()
    assert sorted(int(i) for i in items(reply, "Change")) == sorted(ids[10:20])
    assert len(statements) <= DELTA_ROUND_TRIPS, "\n".join(statements)


DELTA_ROUND_TRIPS = 5
"""The gate's device-state read (the device record, the cached request and the collection's state in one
statement); the folder with its permissions (no group in them: no read of the viewer's groups, 6 before);
the revision with the changes; the
rows (all at home in the folder: no participant read; no list among them: no list-member read; none
with attachments: no attachment read, 9 before); the state write, one compare-and-swap UPDATE committing
alone on the read's connection (8 before, with BEGIN and COMMIT); before that the state write: BEGIN, 1 compare-and-swap UPDATE of the collection's state (checking the
device record and the remembered request), COMMIT (19 before the gate read every state at once, 16
before the revision joined the changes and the rows told the folder, 13 before the folder joined its
permissions, 12 before plain contacts skipped the list members, 11 before the writes compared and
swapped without a check read, 10 before the remembered request stopped keeping the SyncKey)."""


def test_caldav_put_create_round_trips(logged, opened, live_server) -> None:  # type: ignore[no-untyped-def]
    """A CalDAV PUT of a new event (bench_peers' PUT line: a time zone, an organizer, attendees, an alarm)
    on a real server over the logged database: every statement PostgreSQL runs for it, BEGIN and COMMIT
    included, one write transaction."""
    from bench.peers_data import event as bench_event
    from oxsync.dialects import install_all
    from tests.davhelp import Dav

    _url, cluster = logged
    store, world = opened(3600.0)
    running = live_server(store, setup=install_all, auth={"account_poll_seconds": 0},
                          dav={"texts_ahead_delay_seconds": 600.0})
    dav = Dav(running.port, world)
    cal = dav.calendar()
    assert dav.put(f"{cal}warm.ics", bench_event(2, 100), If_None_Match="*").status == 201  # ids reserved, login kept
    log = ServerLog(cluster)
    assert dav.put(f"{cal}new.ics", bench_event(1, 100), If_None_Match="*").status == 201
    statements = log.statements()
    assert [q for q in statements if q.startswith("BEGIN")] == ["BEGIN"] and statements.count("COMMIT") == 1
    assert len(statements) <= PUT_CREATE_ROUND_TRIPS, "\n".join(statements)


PUT_CREATE_ROUND_TRIPS = 9
"""BEGIN; the account's row; the DAV alias map; the folder with its permissions; the missing name; the body's
addresses with the objects holding its UID (one statement, 2 before: bench/README y-pgput); the revision bump
with the object's row, participants, time ranges and change rows (store/stamping.py); the served text with the
NOTIFY; COMMIT (10 before the invitation check took the sharing right from the account's row, 11 before both)."""
