"""Change tracking: revisions, tombstones, visibility changes, pruning horizon, OX milliseconds."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from oxsync.model import Appointment, Contact, Module, Permission
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.permissions import rights_for_level
from oxsync.store import schema as s
from oxsync.store.errors import ResyncRequired
from tests.fixtures import raw_write


def _rev(world, user):  # type: ignore[no-untyped-def]
    with world.as_user(user) as session:
        return session.revision()


def test_revisions_and_ms_strictly_increase(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    seen = []
    for n in range(5):
        with world.as_user(world.alice, write=True) as session:
            seen.append(session.create_object(folder, Contact(last_name=f"N{n}")).last_modified)
        seen_rev = _rev(world, world.alice)
    assert seen == sorted(set(seen)), "last_modified must be strictly increasing"
    assert seen_rev[1] == seen[-1]


def test_ms_stays_monotonic_when_clock_steps_back(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        first = session.create_object(folder, Contact(last_name="a")).last_modified
    monkeypatch.setattr("oxsync.store.tx.now_ms", lambda: 1000)
    with world.as_user(world.alice, write=True) as session:
        second = session.create_object(folder, Contact(last_name="b")).last_modified
    assert second == first + 1


def test_delta_reports_creates_updates_deletes_and_moves(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        keep = session.create_object(folder, Contact(last_name="Keep"))
        gone = session.create_object(folder, Contact(last_name="Gone"))
        mover = session.create_object(folder, Contact(last_name="Mover"))
        other = session.create_folder(1, "Other", Module.CONTACT).folder.id
    base, _ = _rev(world, world.alice)
    with world.as_user(world.alice, write=True) as session:
        keep.first_name = "Changed"
        session.update_object(folder, keep)
        session.delete_object(folder, gone.object_id)
        session.move_object(folder, mover.object_id, other)
        new = session.create_object(folder, Contact(last_name="New"))
    with world.as_user(world.alice) as session:
        delta = session.object_delta(folder, base)
        other_delta = session.object_delta(other, base)
        empty = session.object_delta(folder, delta.revision)
    assert sorted(o.object_id for o in delta.changed) == sorted([keep.object_id, new.object_id])
    assert delta.gone == sorted([gone.object_id, mover.object_id])
    assert [o.object_id for o in other_delta.changed] == [mover.object_id] and other_delta.gone == []
    assert empty.changed == [] and empty.gone == []


def test_delta_cost_follows_changes_not_folder_size(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        for n in range(300):
            session.create_object(folder, Contact(last_name=f"bulk{n}"))
    base, _ = _rev(world, world.alice)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="late"))
    statements: list[str] = []
    from sqlalchemy import event

    def capture(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(world.store.engine, "before_cursor_execute", capture)
    try:
        with world.as_user(world.alice) as session:
            delta = session.object_delta(folder, base)
    finally:
        event.remove(world.store.engine, "before_cursor_execute", capture)
    assert [o.last_name for o in delta.changed] == ["late"]
    change_scans = [st for st in statements if "FROM changes" in st or "JOIN changes" in st]
    assert change_scans and all("rev >" in st for st in change_scans), "delta must be a revision range scan"


def test_permission_change_yields_deletes_and_adds_for_viewers(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        item = session.create_object(folder, Contact(last_name="Shared"))
        owner = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, owner + [Permission(world.bob, False, rights_for_level(2))])
    with world.as_user(world.bob) as session:
        granted = session.folder_delta(0)
        assert folder in [f.folder.id for f in granted.changed]
        before, _ = session.revision()
    with world.as_user(world.alice, write=True) as session:
        session.set_permissions(folder, owner + [Permission(world.bob, False, rights_for_level(0))])
    with world.as_user(world.bob) as session:
        delta = session.object_delta(folder, before)
        assert delta.gone == [item.object_id] and delta.changed == []
        mid, _ = session.revision()
    with world.as_user(world.alice, write=True) as session:
        session.set_permissions(folder, owner)
    with world.as_user(world.bob) as session:
        folders = session.folder_delta(mid)
    assert folders.gone == [folder]


def test_private_flag_change_hides_object_from_grantee(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        item = session.create_object(folder, Contact(last_name="Secret soon"))
        owner = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, owner + [Permission(world.bob, False, rights_for_level(2))])
    before = _rev(world, world.bob)[0]
    with world.as_user(world.alice, write=True) as session:
        item.private_flag = True
        session.update_object(folder, item)
    with world.as_user(world.bob) as session:
        assert session.object_delta(folder, before).gone == [item.object_id]
    with world.as_user(world.alice) as session:
        assert [o.object_id for o in session.object_delta(folder, before).changed] == [item.object_id]


def test_removed_participant_gets_a_delete(world) -> None:  # type: ignore[no-untyped-def]
    alice_cal = world.default_folder(world.alice, Module.CALENDAR)
    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        meeting = session.create_object(alice_cal, Appointment(title="Meet", participants=[
            Participant(ParticipantKind.USER, world.alice, folder_id=alice_cal),
            Participant(ParticipantKind.USER, world.bob, folder_id=bob_cal),
        ]))
    with world.as_user(world.bob) as session:
        assert [o.title for o in session.list_objects(bob_cal)] == ["Meet"]
        before, _ = session.revision()
    with world.as_user(world.alice, write=True) as session:
        meeting.participants = meeting.participants[:1]
        session.update_object(alice_cal, meeting)
    with world.as_user(world.bob) as session:
        assert session.object_delta(bob_cal, before).gone == [meeting.object_id]
        assert session.list_objects(bob_cal) == []


def test_pruned_tombstones_force_resync(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        item = session.create_object(folder, Contact(last_name="Old"))
    old_token, _ = _rev(world, world.alice)
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(folder, item.object_id)
    with raw_write(world.store.engine) as conn:  # age the history so that it falls behind the horizon
        conn.execute(update(s.revision_log).values(ms=s.revision_log.c.ms - 40 * 86_400_000))
    assert world.store.prune_tombstones(world.tenant_id, max_age_days=30) >= 1
    with pytest.raises(ResyncRequired), world.as_user(world.alice) as session:
        session.object_delta(folder, old_token)
    with world.as_user(world.alice) as session:
        current, _ = session.revision()
        assert session.object_delta(folder, current).gone == []
        assert session.list_objects(folder) == []


def test_future_token_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with pytest.raises(ResyncRequired), world.as_user(world.alice) as session:
        session.object_delta(folder, 10**9)


def test_listeners_hear_committed_folders_only(world) -> None:  # type: ignore[no-untyped-def]
    heard: list[tuple[int, frozenset[int], int]] = []
    world.store.add_listener(lambda t, folders, rev: heard.append((t, folders, rev)))
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="x"))
    with pytest.raises(RuntimeError), world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="rolled back"))
        raise RuntimeError("abort")
    assert len(heard) == 1 and folder in heard[0][1]
    with world.as_user(world.alice) as session:
        assert [c.last_name for c in session.list_objects(folder)] == ["x"]
