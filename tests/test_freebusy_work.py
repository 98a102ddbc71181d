"""What one user's free/busy and a meeting's conflict check read (store/scheduling.py): their candidate
statements start from the asked users' and resources' side (participants by ix_participants_entity,
their private calendars by ix_objects_folder, their own appointments by ix_objects_creator) and read
the tenant's objects by primary key, never walking ix_objects_range, i.e. every appointment of the
tenant that starts before the window's end (issue 11: free/busy of one user grew with the tenant;
bench/README z5-fbscale). SQLite: the plans; PostgreSQL: the objects rows the executed plans read."""

from __future__ import annotations

import random
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from oxsync.model import Appointment, Module, ShownAs
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.store import accounts
from oxsync.store.api import Store
from oxsync.store.errors import AppointmentConflict
from oxsync.store.folders import default_folder_id
from tests.fixtures import recorded_executions

U = ParticipantKind.USER
USERS = 30
APPOINTMENTS = 40
"""Per colleague: a year of them, past and coming, 1 in 5 a meeting with two others: 1,200 in the tenant."""


def _load(store: Store) -> tuple[int, list[int], int, datetime]:
    rng = random.Random(11)
    tenant = store.create_tenant("example.com")
    with store.transaction(tenant.id, write=True) as tx:
        users = [accounts.create_user(tx, f"user{n:02d}", "pw", first_name="U", last_name=str(n)).id for n in range(USERS)]
        calendars = [default_folder_id(tx, u, Module.CALENDAR) for u in users]
        room = accounts.create_resource(tx, "room", "room@example.com").id
    base = datetime(2027, 3, 1, 8, tzinfo=UTC)
    alice, bob = users[0], users[1]
    for index, (user, calendar) in enumerate(zip(users[2:], calendars[2:], strict=True)):
        made = []
        for n in range(APPOINTMENTS):
            start = base + timedelta(days=rng.randint(-300, 60), hours=rng.randint(0, 9))
            parts = []
            if n % 5 == 0:
                others = rng.sample([u for u in users[2:] if u != user], 2)
                parts = [Participant(U, user)] + [Participant(U, o) for o in others]
            made.append(Appointment(title=f"A{index}.{n}", start_date=start, end_date=start + timedelta(hours=1),
                                    participants=parts, ignore_conflicts=True))
        with store.session(tenant.id, user, write=True) as session:
            assert calendar is not None
            session.create_objects(calendar, made)
    with store.session(tenant.id, alice, write=True) as session:
        calendar = calendars[0]
        assert calendar is not None
        session.create_objects(calendar, [
            Appointment(title="Own", start_date=base + timedelta(days=2), end_date=base + timedelta(days=2, hours=1)),
            Appointment(title="Free", start_date=base + timedelta(days=3), end_date=base + timedelta(days=3, hours=1),
                        shown_as=ShownAs.FREE),
            Appointment(title="Old", start_date=base - timedelta(days=90), end_date=base - timedelta(days=90, hours=-1)),
            Appointment(title="Meeting", start_date=base + timedelta(days=4), end_date=base + timedelta(days=4, hours=1),
                        participants=[Participant(U, alice), Participant(U, bob),
                                      Participant(ParticipantKind.RESOURCE, room)], ignore_conflicts=True),
        ])
    return tenant.id, users, room, base


def _candidates(store: Store) -> AbstractContextManager[list[tuple[str, Any]]]:
    """The candidate statements run meanwhile, with their parameters (each has the time filter)."""
    return recorded_executions(store, lambda statement: "objects.range_end_ms >" in statement)


def _check_work(store: Store, seen: list[tuple[str, Any]]) -> None:
    """SQLite's plans of the candidate statements (PostgreSQL plans on statistics; its plans at the
    simulator's sizes are in bench/README z5-fbscale, measured by bench/bench_freebusy.py)."""
    assert seen
    if store.engine.dialect.name != "sqlite":
        return
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            steps = [str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert "ix_objects_range" not in " / ".join(steps), steps
            assert not [step for step in steps if step.startswith("SCAN ")], steps
            assert steps[0] == "SEARCH objects USING INDEX sqlite_autoindex_objects_1 (tenant_id=? AND id=?)", steps
            assert [step for step in steps if "ix_participants_entity" in step], steps


def test_one_users_free_busy_reads_their_appointments(store: Store) -> None:
    tenant_id, users, room, base = _load(store)
    alice = users[0]
    with store.transaction(tenant_id) as tx:
        tenant_appointments = tx.conn.execute(text("SELECT count(*) FROM objects WHERE kind = 'appointment'")).scalar()
        own = tx.conn.execute(text("SELECT count(*) FROM objects WHERE created_by = :u"), {"u": alice}).scalar()
    assert tenant_appointments is not None and own is not None and tenant_appointments > 100 * own
    with store.session(tenant_id, alice) as session, _candidates(store) as seen:
        periods = session.free_busy(base - timedelta(days=400), base + timedelta(days=30), user_id=alice)
    assert [(p.start - base, p.shown_as) for p in periods] == [
        (timedelta(days=-90), ShownAs.RESERVED), (timedelta(days=2), ShownAs.RESERVED),
        (timedelta(days=3), ShownAs.FREE), (timedelta(days=4), ShownAs.RESERVED)]
    _check_work(store, seen)
    with store.session(tenant_id, alice) as session, _candidates(store) as seen:
        busy = session.free_busy(base - timedelta(days=400), base + timedelta(days=30), resource_id=room)
    assert [(p.start - base, p.shown_as) for p in busy] == [(timedelta(days=4), ShownAs.RESERVED)]
    _check_work(store, seen)


def test_a_meetings_conflict_check_reads_its_participants_appointments(store: Store) -> None:
    tenant_id, users, room, base = _load(store)
    alice, bob = users[0], users[1]
    with store.transaction(tenant_id) as tx:
        calendar = default_folder_id(tx, alice, Module.CALENDAR)
    assert calendar is not None
    overlapping = Appointment(
        title="Clash", start_date=base + timedelta(days=4, minutes=30), end_date=base + timedelta(days=4, hours=2),
        participants=[Participant(U, alice), Participant(U, bob), Participant(ParticipantKind.RESOURCE, room)])
    with pytest.raises(AppointmentConflict) as raised, store.session(tenant_id, alice, write=True) as session, \
            _candidates(store) as seen:
        session.create_object(calendar, overlapping)
    assert raised.value.hard and [item.title for item in raised.value.items] == ["Meeting"]
    _check_work(store, seen)
    with store.session(tenant_id, alice, write=True) as session, _candidates(store) as seen:
        made = session.create_object(calendar, Appointment(
            title="Next", start_date=base + timedelta(days=6), end_date=base + timedelta(days=6, hours=1),
            participants=[Participant(U, alice), Participant(U, bob), Participant(ParticipantKind.RESOURCE, room)]))
    assert made.object_id is not None
    _check_work(store, seen)
