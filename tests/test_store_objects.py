"""Objects: every field round-trips through the store; attachments, quota, optimistic concurrency, moves."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from oxsync.model import Appointment, Contact, Module, Task
from oxsync.model.appointment import (
    Confirmation,
    Participant,
    ParticipantKind,
    Recurrence,
    RecurrenceType,
    ShownAs,
)
from oxsync.model.contact import STRING_FIELDS, DistributionListMember
from oxsync.model.task import TaskPriority, TaskStatus
from oxsync.store import accounts, timeranges
from oxsync.store.errors import InvalidData, NotFound, QuotaExceeded, StaleObject

SERVER_FIELDS = {"object_id", "folder_id", "created_by", "modified_by", "creation_time", "last_modified", "attachments",
                 "recurrence_id", "participants"}


def full_contact() -> Contact:
    values = {name: f"{name}-value é" for name in STRING_FIELDS}
    return Contact(
        **values, birthday=date(1980, 2, 29), anniversary=date(2005, 6, 18), default_address=2,
        image1=b"\xff\xd8\xff\xe0JPEGDATA", image_content_type="image/jpeg", categories="Friends,Work",
        color_label=3, uid="contact-uid-1", extra={"X-CUSTOM": "kept"},
    )


def full_appointment(alice: int, bob: int) -> Appointment:
    return Appointment(
        title="Weekly", location="Room 1", note="Agenda\nline 2", start_date=datetime(2026, 1, 5, 9, tzinfo=UTC),
        end_date=datetime(2026, 1, 5, 10, tzinfo=UTC), shown_as=ShownAs.TEMPORARY, timezone="Europe/Paris",
        alarm=15, uid="appt-uid-1", organizer="alice@example.com", organizer_id=alice, categories="Team",
        color_label=5, sequence=2,
        participants=[
            Participant(ParticipantKind.USER, alice, confirmation=Confirmation.ACCEPT),
            Participant(ParticipantKind.USER, bob, confirmation=Confirmation.TENTATIVE, message="maybe"),
            Participant(ParticipantKind.EXTERNAL_USER, 0, email="ext@example.org", display_name="Ext"),
        ],
        recurrence=Recurrence(RecurrenceType.WEEKLY, 1, days=2 | 8, until=date(2026, 6, 29)),
        delete_exceptions=[date(2026, 1, 12)], change_exceptions=[date(2026, 1, 19)],
    )


def full_task() -> Task:
    return Task(
        title="Report", note="Write it", start_date=date(2026, 2, 1), end_date=date(2026, 2, 10),
        status=TaskStatus.IN_PROGRESS, priority=TaskPriority.HIGH, percent_completed=40,
        date_completed=datetime(2026, 2, 9, 17, tzinfo=UTC), alarm=datetime(2026, 2, 9, 8, tzinfo=UTC),
        target_duration=120, actual_duration=90, target_costs=Decimal("100.50"), actual_costs=Decimal("80.25"),
        currency="EUR", trip_meter="12 km", billing_information="internal", companies="ACME", uid="task-uid-1",
        recurrence=Recurrence(RecurrenceType.MONTHLY, 1, day_in_month=1, occurrences=6), categories="Work",
    )


def assert_same(stored, original) -> None:  # type: ignore[no-untyped-def]
    for f in dataclasses.fields(original):
        if f.name in SERVER_FIELDS:
            continue
        assert getattr(stored, f.name) == getattr(original, f.name), f.name


def test_every_field_round_trips(world) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (Module.CONTACT, full_contact()),
        (Module.CALENDAR, full_appointment(world.alice, world.bob)),
        (Module.TASK, full_task()),
    ]
    for module, obj in cases:
        folder = world.default_folder(world.alice, module)
        original = dataclasses.replace(obj)
        with world.as_user(world.alice, write=True) as session:
            created = session.create_object(folder, obj)
        with world.as_user(world.alice) as session:
            stored = session.get_object(folder, created.object_id)
        assert_same(stored, original)
        assert stored.created_by == world.alice and stored.folder_id == folder
        assert stored.last_modified == created.last_modified
        if isinstance(stored, Appointment):
            assert stored.recurrence_id == stored.object_id  # a series master points at itself (OX)
            got = [(p.kind, p.entity, p.email, p.display_name, p.confirmation, p.message) for p in stored.participants]
            assert got == [
                (ParticipantKind.USER, world.alice, "alice@example.com", "Alice Martin", Confirmation.ACCEPT, ""),
                # confirmations are the participant's own: only they change them, through confirm()
                (ParticipantKind.USER, world.bob, "bob@example.com", "Bob Durand", Confirmation.NONE, ""),
                (ParticipantKind.EXTERNAL_USER, 0, "ext@example.org", "Ext", Confirmation.NONE, ""),
            ]


def test_distribution_list_members(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        jane = session.create_object(folder, Contact(first_name="Jane", email1="jane@x.org", email2="j@y.org"))
        dlist = session.create_object(folder, Contact(display_name="List", distribution_list=[
            DistributionListMember(email="j@y.org", display_name="Jane", contact_id=jane.object_id, folder_id=folder, email_field=2),
            DistributionListMember(email="free@z.org"),
        ]))
        empty = session.create_object(folder, Contact(display_name="Empty list", distribution_list=[]))
    with world.as_user(world.alice) as session:
        stored = session.get_object(folder, dlist.object_id)
        assert stored.is_distribution_list
        assert [(m.contact_id, m.email_field, m.email) for m in stored.distribution_list] == [
            (jane.object_id, 2, "j@y.org"), (None, 0, "free@z.org")]
        assert session.get_object(folder, empty.object_id).distribution_list == []
        assert not session.get_object(folder, jane.object_id).is_distribution_list
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(folder, jane.object_id)
    with world.as_user(world.alice) as session:
        member = session.get_object(folder, dlist.object_id).distribution_list[0]
    assert (member.contact_id, member.email) == (None, "j@y.org")


def test_list_members_are_read_for_lists_only(world) -> None:  # type: ignore[no-untyped-def]
    """A listing of plain contacts and lists reads list members for the lists alone (one statement, their
    ids), and each list still comes with its members; plain contacts only: no list-member read."""
    from tests.fixtures import recorded_statements

    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        plain = [session.create_object(folder, Contact(last_name=f"Plain {i}")).object_id for i in range(3)]
        dlist = session.create_object(folder, Contact(display_name="List", distribution_list=[
            DistributionListMember(email="free@z.org")])).object_id
        empty = session.create_object(folder, Contact(display_name="Empty", distribution_list=[])).object_id
    with recorded_statements(world.store, lambda st: "FROM list_members" in st) as reads, \
            world.as_user(world.alice) as session:
        listed = {c.object_id: c.distribution_list for c in session.list_objects(folder)}
    assert listed == {**{i: None for i in plain}, dlist: [DistributionListMember(email="free@z.org")], empty: []}
    assert len(reads) == 1
    with recorded_statements(world.store, lambda st: "FROM list_members" in st) as reads, \
            world.as_user(world.alice) as session:
        assert [c.last_name for c in session.objects_by_ids(folder, plain).values()] == ["Plain 0", "Plain 1", "Plain 2"]
    assert reads == []


def test_stale_update_and_delete_change_nothing(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        created = session.create_object(folder, Contact(last_name="One"))
    seen = created.last_modified
    with world.as_user(world.alice, write=True) as session:
        fresh = session.get_object(folder, created.object_id)
        fresh.last_name = "Two"
        session.update_object(folder, fresh, expected_last_modified=seen)
    stale = dataclasses.replace(fresh, last_name="Three")
    with pytest.raises(StaleObject) as err, world.as_user(world.alice, write=True) as session:
        session.update_object(folder, stale, expected_last_modified=seen)
    assert err.value.current_last_modified > seen
    with pytest.raises(StaleObject), world.as_user(world.alice, write=True) as session:
        session.delete_object(folder, created.object_id, expected_last_modified=seen)
    with world.as_user(world.alice) as session:
        assert session.get_object(folder, created.object_id).last_name == "Two"


def test_require_unchanged_refuses_an_older_version_and_writes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    """The store's one optimistic-concurrency call, for requests that must be refused when stale although
    they write nothing (OX: a save without changes, a CLEAR, an occurrence): folders and objects alike."""
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        created = session.create_object(folder, Contact(last_name="One"))
        folder_ms = session.get_folder(folder).folder.last_modified
    seen = created.last_modified
    with world.as_user(world.alice) as session:
        for expected in (None, seen, seen + 1):  # no version, the current one, a newer one: accepted
            session.require_unchanged(folder, expected, object_id=created.object_id)
            session.require_unchanged(folder, None if expected is None else folder_ms + (expected - seen))
        with pytest.raises(StaleObject) as err:
            session.require_unchanged(folder, seen - 1, object_id=created.object_id)
        assert err.value.current_last_modified == seen
        with pytest.raises(StaleObject) as err:
            session.require_unchanged(folder, folder_ms - 1)
        assert err.value.current_last_modified == folder_ms
    with pytest.raises(NotFound), world.as_user(world.bob) as session:  # rights first: bob cannot see it
        session.require_unchanged(folder, seen, object_id=created.object_id)


def test_attachments_capped_counted_and_bump_last_modified(store_url) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures import make_store
    from tests.world import build_world

    world = build_world(make_store(store_url, max_attachment_bytes=1000))
    folder = world.default_folder(world.alice, Module.TASK)
    with world.as_user(world.alice, write=True) as session:
        task = session.create_object(folder, Task(title="With file"))
    with world.as_user(world.alice, write=True) as session:
        meta = session.add_attachment(folder, task.object_id, "notes.txt", "text/plain", b"hello")
    usage = {u["login"]: u["usage_bytes"] for u in world.store.usage(world.tenant_id)["users"]}
    with world.as_user(world.alice) as session:
        reread = session.get_object(folder, task.object_id)
        assert [a.filename for a in reread.attachments] == ["notes.txt"]
        assert reread.last_modified > task.last_modified
        assert session.get_attachment(folder, task.object_id, meta.id).content == b"hello"
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.add_attachment(folder, task.object_id, "big.bin", "application/octet-stream", b"x" * 1001)
    with world.as_user(world.alice, write=True) as session:
        session.delete_attachment(folder, task.object_id, meta.id)
    after = {u["login"]: u["usage_bytes"] for u in world.store.usage(world.tenant_id)["users"]}
    assert after["alice"] == usage["alice"] - 5
    with pytest.raises(NotFound), world.as_user(world.alice) as session:
        session.get_attachment(folder, task.object_id, meta.id)


def test_user_and_tenant_quota(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.alice, quota_bytes=3000)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(note="x" * 1000))
    with pytest.raises(QuotaExceeded), world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(note="y" * 3000))
    with world.as_user(world.alice) as session:
        assert len(session.list_objects(folder)) == 1
    world.store.update_tenant(world.tenant_id, quota_bytes=1)
    bob_folder = world.default_folder(world.bob, Module.CONTACT)
    with pytest.raises(QuotaExceeded), world.as_user(world.bob, write=True) as session:
        session.create_object(bob_folder, Contact(last_name="Over"))
    # a meeting's participants and time ranges (on PostgreSQL written by the refused stamp's statement)
    calendar = world.default_folder(world.bob, Module.CALENDAR)
    with pytest.raises(QuotaExceeded), world.as_user(world.bob, write=True) as session:
        session.create_object(calendar, full_appointment(world.alice, world.bob))
    with world.as_user(world.bob) as session:
        assert session.list_objects(calendar) == [] and session.list_objects(bob_folder) == []


def test_object_size_limit_and_wrong_module(world) -> None:  # type: ignore[no-untyped-def]
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.create_object(contacts, Contact(note="x" * (world.store.settings.limits.max_object_bytes + 1)))
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.create_object(contacts, Task(title="not here"))


def test_move_between_folders(world) -> None:  # type: ignore[no-untyped-def]
    source = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        target = session.create_folder(1, "Archive", Module.CONTACT).folder.id
        created = session.create_object(source, Contact(last_name="Mover"))
        moved = session.move_object(source, created.object_id, target)
    assert moved.folder_id == target
    with world.as_user(world.alice) as session:
        assert [c.last_name for c in session.list_objects(target)] == ["Mover"]
        assert session.list_objects(source) == []
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.move_object(target, created.object_id, world.default_folder(world.alice, Module.TASK))


def test_uid_unique_per_folder(world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.store.errors import Conflict

    folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Appointment(title="A", uid="same"))
    with pytest.raises(Conflict), world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Appointment(title="B", uid="same"))
    with world.as_user(world.alice) as session:
        assert session.find_by_uid(folder, "same").title == "A"


def _side_rows(world, object_id: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:  # type: ignore[no-untyped-def]
    with world.store.engine.connect() as conn:
        parts = conn.execute(text("SELECT position, kind, entity, email, confirmation, message, folder_id FROM participants "
                                  "WHERE object_id = :i ORDER BY position"), {"i": object_id}).all()
        ranges = conn.execute(text("SELECT position, start_ms, end_ms, exact, long_span FROM object_ranges "
                                   "WHERE object_id = :i ORDER BY position"), {"i": object_id}).all()
    return [tuple(r) for r in parts], [tuple(r) for r in ranges]


def test_an_update_leaves_the_side_rows_a_create_of_it_would(world) -> None:  # type: ignore[no-untyped-def]
    """Fewer participants and fewer time ranges than before (a series made a single meeting), and more again:
    the object's participants and time-range rows are exactly those of a new object written the same way
    (on PostgreSQL they are rewritten by the stamp's statement: stale positions deleted, the others upserted)."""
    calendar = world.default_folder(world.alice, Module.CALENDAR)

    def meeting(uid: str, series: bool = True) -> Appointment:
        made = dataclasses.replace(full_appointment(world.alice, world.bob), uid=uid, ignore_conflicts=True)
        if not series:
            made.recurrence, made.delete_exceptions, made.change_exceptions = None, [], []
            made.participants = made.participants[:1]
        return made
    single = meeting("appt-uid-2", series=False)
    with world.as_user(world.alice, write=True) as session:
        series = session.create_object(calendar, meeting("appt-uid-1"))
        fresh = session.create_object(calendar, meeting("appt-uid-3", series=False))
    assert [len(rows) for rows in _side_rows(world, series.object_id)] == [3, 1]
    for shape in (single, meeting("appt-uid-1")):
        with world.as_user(world.alice, write=True) as session:
            current = session.get_object(calendar, series.object_id)
            session.update_object(calendar, dataclasses.replace(shape, object_id=series.object_id, uid=current.uid),
                                  current.last_modified)
        parts, ranges = _side_rows(world, series.object_id)
        with world.as_user(world.alice) as session:
            stored = session.get_object(calendar, series.object_id)
        index = timeranges.table_rows(world.tenant_id, series.object_id, timeranges.rows(stored, world.store.settings.limits))
        assert ranges == [(r["position"], r["start_ms"], r["end_ms"], r["exact"], r["long_span"]) for r in index]
        if shape is single:
            assert parts == _side_rows(world, fresh.object_id)[0]
    with world.as_user(world.alice, write=True) as session:
        again = session.create_object(calendar, meeting("appt-uid-4"))
    assert parts == _side_rows(world, again.object_id)[0]


def test_a_visible_folder_is_a_copy_made_without_a_deep_walk(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What `get_folder` hands out may be changed by its caller without changing what the transaction
    remembers, and is made without `copy.deepcopy` (4 of them per CalDAV PUT before)."""
    import copy
    import types

    from oxsync.model.permissions import Permission, Rights
    from oxsync.store import viewer

    walks: list[object] = []
    monkeypatch.setattr(viewer, "copy", types.SimpleNamespace(
        copy=copy.copy, deepcopy=lambda value: walks.append(value) or copy.deepcopy(value)))
    folder_id = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice) as session:
        first = session.get_folder(folder_id).folder
        kept = copy.deepcopy(first)
        first.title = "changed"
        first.permissions.append(Permission(999, False, Rights(folder=1)))
        again = session.get_folder(folder_id).folder
        assert again == kept and again is not first and again.permissions is not first.permissions
    assert walks == []
