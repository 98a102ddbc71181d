"""The bulk load (`UserSession.create_objects`, store/bulk_load.py) leaves the database exactly as
`create_object` called once per object does: every table compared row by row (ids mapped by creation
order, revision stamps and password hashes aside), on SQLite and PostgreSQL; its writes cost a number
of statements that does not grow with the batch; it refuses what create_object refuses, writing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from bench.peers_data import card, card_name, event_name
from bench.peers_data import event as bench_event
from oxsync.formats.ical import CalendarItem, parse_calendar
from oxsync.formats.vcard import parse_vcards
from oxsync.model import Appointment, Contact, Module, Task
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.contact import DistributionListMember
from oxsync.store import accounts, timeranges
from oxsync.store import schema as s
from oxsync.store.api import Store
from oxsync.store.errors import Conflict
from tests.fixtures import make_store

DATA_MS = {"start_ms", "end_ms", "range_end_ms", "due_ms"}
"""The millisecond columns that hold data; every other `*_ms` column (and `rev`) is a moment of writing."""
ASIDE = {"tenants": {"id"}, "users": {"password_hash"}, "sequences": {"next_value"}}
"""Besides the moments of writing: the tenant's own id, the salt of each password hash, and on
PostgreSQL how far the object id reservations went (store/ids.py: blocks, not the ids handed out)
differ by nature between two stores (every table's `tenant_id` is aside too: one tenant per store)."""


def _without_moments(payload: str | None) -> Any:
    """A queued mail's payload (JSON) without the moments it carries: the object's stamps, the queue time."""
    if payload is None:
        return None
    data = json.loads(payload)
    data.pop("created_ms", None)
    for key in ("creation_time", "last_modified"):
        (data.get("object") or {}).pop(key, None)
    return data


def _aside(table: str, column: str) -> bool:
    return (column in ("tenant_id", "rev", "ms") or column in ASIDE.get(table, set())
            or (column.endswith("_ms") and column not in DATA_MS))


NOW = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW if tz is not None else NOW.replace(tzinfo=None)


@pytest.fixture(autouse=True)
def _frozen_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Series rows depend on the expansion window around now: both loads see the same now."""
    monkeypatch.setattr(timeranges, "datetime", _FrozenDatetime)


def _world(store: Store) -> tuple[int, dict[Module, int], int]:
    tenant = store.create_tenant("example.com")
    with store.transaction(tenant.id, write=True) as tx:
        accounts.create_user(tx, "alice", "alice-pw", first_name="Alice", last_name="Load")
        bob = accounts.create_user(tx, "bob", "bob-pw", first_name="Bob", last_name="Load")
    with store.session(tenant.id, 1) as session:
        folders = {f.folder.module: f.folder.id for f in session.list_folders()
                   if f.folder.default_folder and f.folder.owner == 1}
    return tenant.id, folders, bob.id


def _items(bob: int) -> list[tuple[Module, Any]]:
    """What a calendar, a task list and an address book hold: bench events (time zones, endless and
    counted series, external attendees, alarms), a meeting organised here with an internal and an
    external attendee (placed in bob's calendar, iMIP queued), a mailed reminder, tasks, cards, a list."""
    out: list[tuple[Module, Any]] = []
    for i in range(24):
        item = parse_calendar(bench_event(i, 400))[0]
        assert isinstance(item, CalendarItem) and item.master is not None
        item.master.resource_name = event_name(i)
        item.master.ignore_conflicts = True
        out.append((Module.CALENDAR, item.master))
    start = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)  # before the bench events: the conflict checks find none
    for day in range(3):  # checked for conflicts: each sees the batch's earlier appointments
        out.append((Module.CALENDAR, Appointment(title=f"Checked {day}", uid=f"checked-{day}",
                                                 start_date=start - timedelta(days=day + 1),
                                                 end_date=start - timedelta(days=day + 1, hours=-1))))
    meeting = Appointment(title="Planning", uid="meeting-1@example.com", start_date=start,
                          end_date=start + timedelta(hours=1), resource_name="meeting-1.ics", alarm=30,
                          participants=[Participant(ParticipantKind.USER, bob),
                                        Participant(ParticipantKind.EXTERNAL_USER, 0, email="carol@elsewhere.test",
                                                    display_name="Carol")])
    meeting.extra["VALARM:ACTION"] = "EMAIL"
    out.append((Module.CALENDAR, meeting))
    out.append((Module.TASK, Task(title="Report", uid="task-1", start_date=start, end_date=start + timedelta(days=2),
                                  alarm=start - timedelta(hours=1))))
    out.append((Module.TASK, Task(title="Someday", uid="task-2")))
    for i in range(12):
        contact = next(parse_vcards(card(i))).contact
        assert contact is not None
        contact.resource_name = card_name(i)
        out.append((Module.CONTACT, contact))
    out.append((Module.CONTACT, Contact(display_name="Team", uid="list-1", distribution_list=[
        DistributionListMember(email="a@elsewhere.test", display_name="A"),
        DistributionListMember(email="b@elsewhere.test", display_name="B")])))
    return out


def _load(store: Store, batched: bool, batch: int = 7) -> None:
    """The items in sessions of `batch`, one folder at a time: create_object each, or create_objects."""
    tenant, folders, bob = _world(store)
    items = _items(bob)
    for module in (Module.CALENDAR, Module.TASK, Module.CONTACT):
        mine = [obj for m, obj in items if m == module]
        for low in range(0, len(mine), batch):
            with store.session(tenant, 1, write=True) as session:
                if batched:
                    session.create_objects(folders[module], mine[low:low + batch])
                else:
                    for obj in mine[low:low + batch]:
                        session.create_object(folders[module], obj)


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, object ids replaced by their creation order, stamps aside."""
    with store.engine.connect() as conn:
        order = {int(r.id): k for k, r in enumerate(conn.execute(select(s.objects.c.id).order_by(s.objects.c.id)))}
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in s.metadata.sorted_tables:
            cols = [c for c in table.columns if not _aside(table.name, c.name)]
            object_cols = {c.name for c in cols if c.name in ("object_id", "list_id", "series_id")
                           or (table.name == "objects" and c.name == "id")}
            rows: list[tuple[Any, ...]] = []
            if not cols:  # nothing but moments (revision_log): the number of rows still counts
                out[table.name] = [()] * len(conn.execute(select(table)).all())
                continue
            for row in conn.execute(select(*cols)):
                values = dict(row._mapping)
                if table.name == "outbound_mail":
                    values["payload"] = _without_moments(values["payload"])
                for name in object_cols:
                    if values[name] is not None:
                        values[name] = ("object", order.get(int(values[name]), values[name]))
                rows.append(tuple(sorted((k, repr(v)) for k, v in values.items())))
            out[table.name] = sorted(rows)
    return out


@pytest.fixture
def two_stores(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[tuple[Store, Store]]:
    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path}/one.db", f"sqlite:///{tmp_path}/bulk.db"]
    else:
        cluster = request.getfixturevalue("pg_cluster")
        urls = [cluster.new_database(), cluster.new_database()]
    stores = [make_store(url) for url in urls]
    yield stores[0], stores[1]
    for store in stores:
        store.dispose()


def test_bulk_load_writes_what_one_by_one_writes(two_stores: tuple[Store, Store]) -> None:
    one_by_one, bulk = two_stores
    _load(one_by_one, batched=False)
    _load(bulk, batched=True)
    expected, got = _tables(one_by_one), _tables(bulk)
    assert set(expected) == set(got) == {t.name for t in s.metadata.sorted_tables}
    filled = {name for name, rows in expected.items() if rows}
    for name in ("objects", "participants", "list_members", "object_ranges", "changes", "mail_alarms",
                 "revision_log", "outbound_mail"):
        assert name in filled, f"the items write no {name} row: the comparison would not see that table"
    differ = {name: _difference(expected[name], got[name]) for name in expected if expected[name] != got[name]}
    assert not differ, differ


def _difference(expected: list[tuple[Any, ...]], got: list[tuple[Any, ...]]) -> str:
    if len(expected) != len(got):
        return f"{len(expected)} rows one by one, {len(got)} in bulk"
    for one, other in zip(expected, got, strict=True):
        if one != other:
            return "first differing row: " + ", ".join(f"{a[0]}: {a[1]} != {b[1]}" for a, b in zip(one, other,
                                                                                                 strict=True) if a != b)
    return ""


def _count_statements(store: Store) -> Callable[[], dict[str, int]]:
    seen: dict[str, int] = {}

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        verb = statement.split()[0].upper()
        seen[verb] = seen.get(verb, 0) + 1
    event.listen(store.engine, "before_cursor_execute", note)
    return lambda: dict(seen)


@pytest.mark.parametrize("size", [20, 200])
def test_a_batch_costs_statements_that_do_not_grow_with_its_size(store: Store, size: int) -> None:
    tenant, folders, _bob = _world(store)
    events = []
    for i in range(size):
        item = parse_calendar(bench_event(i, size).replace(f"partner{i % 50}@", "partner@"))[0]
        assert isinstance(item, CalendarItem) and item.master is not None
        item.master.ignore_conflicts = True
        events.append(item.master)
    cards = [next(parse_vcards(card(i))).contact for i in range(size)]
    counted = _count_statements(store)
    with store.session(tenant, 1, write=True) as session:
        session.create_objects(folders[Module.CALENDAR], events)
        session.create_objects(folders[Module.CONTACT], cards)
    seen = counted()
    assert sum(seen.values()) <= 40, seen  # 20 and 200 objects of each kind: the same few statements
    assert seen.get("INSERT", 0) <= 12, seen


def test_a_refused_object_refuses_the_batch(store: Store) -> None:
    tenant, folders, _bob = _world(store)
    cards = [next(parse_vcards(card(i))).contact for i in range(3)]
    twin = next(parse_vcards(card(1))).contact  # same UID as the second card
    with pytest.raises(Conflict), store.session(tenant, 1, write=True) as session:
        session.create_objects(folders[Module.CONTACT], [*cards, twin])
    with store.session(tenant, 1, write=True) as session:
        session.create_objects(folders[Module.CONTACT], cards[:2])
    with pytest.raises(Conflict), store.session(tenant, 1, write=True) as session:
        session.create_objects(folders[Module.CONTACT], [cards[2], next(parse_vcards(card(0))).contact])
    with store.session(tenant, 1) as session:
        assert sorted(c.uid for c in session.list_objects(folders[Module.CONTACT])
                      if isinstance(c, Contact) and c.uid.startswith("card-")) == ["card-0@example.com",
                                                                                   "card-1@example.com"]


def test_a_delta_reads_by_index_whatever_the_folder_size(tmp_path) -> None:
    """sync-collection after 10 changes stays flat from 1,000 to 100,000 items (bench/README, issue 11):
    the statements of a delta (`object_delta`: the folders of the changed objects; `folder_revision`:
    the CTag) are searched by key on SQLite, never by scanning the folder's rows or placed participants."""
    store = make_store(f"sqlite:///{tmp_path}/plan.db")
    tenant, folders, _bob = _world(store)
    events = []
    for i in range(40):
        item = parse_calendar(bench_event(i, 40))[0]
        assert isinstance(item, CalendarItem) and item.master is not None
        item.master.ignore_conflicts = True
        events.append(item.master)
    with store.session(tenant, 1, write=True) as session:
        session.create_objects(folders[Module.CALENDAR], events)
        base = session.revision()[0]
    with store.session(tenant, 1, write=True) as session:
        for obj in session.list_objects(folders[Module.CALENDAR])[:3]:
            assert isinstance(obj, Appointment)
            obj.ignore_conflicts = True
            session.update_object(folders[Module.CALENDAR], obj)
    seen: list[tuple[str, Any]] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))
    event.listen(store.engine, "before_cursor_execute", note)
    with store.session(tenant, 1) as session:
        session.folder_revision(folders[Module.CALENDAR])
        assert len(session.object_delta(folders[Module.CALENDAR], base).changed) == 3
    event.remove(store.engine, "before_cursor_execute", note)
    with store.engine.connect() as conn:
        plans = {statement: [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
                 for statement, parameters in seen
                 if "FROM participants" in statement or "FROM changes" in statement}
    store.dispose()
    assert plans
    for statement, plan in plans.items():
        steps = " / ".join(plan)
        assert "ix_participants_folder" not in steps and "SCAN" not in steps.replace("SCAN CONSTANT ROW", ""), \
            f"{statement} -> {steps}"
        if "max(changes.ms)" in statement:
            assert "ix_changes_ms" in steps, steps


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # PostgreSQL's statistics
def test_a_large_load_of_contacts_refreshes_the_statistics(store: Store) -> None:
    """PostgreSQL: a bulk load of 1,200 vCards (no time-range rows) analyzes what it wrote, as a load of
    events does, so that neither the plans nor autovacuum's analyze wait for the clients' first requests."""
    tenant, folders, _bob = _world(store)
    cards = [next(parse_vcards(card(i))).contact for i in range(1200)]
    with store.session(tenant, 1, write=True) as session:
        session.create_objects(folders[Module.CONTACT], cards)
    with store.engine.connect() as conn:
        counted = dict(conn.execute(text(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('objects', 'changes')")).all())
    assert counted == {"objects": pytest.approx(1200, abs=50), "changes": pytest.approx(1200, abs=50)}, counted
