"""Private objects are invisible to everyone but their creator and, for appointments, participants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oxsync.model import Appointment, Contact, Module, Permission, Task
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.permissions import rights_for_level
from oxsync.store.errors import NotFound


def _share(world, owner: int, module: Module, grantee: int, level: int) -> int:  # type: ignore[no-untyped-def]
    folder = world.default_folder(owner, module)
    with world.as_user(owner, write=True) as session:
        entries = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, entries + [Permission(grantee, False, rights_for_level(level))])
    return folder


@pytest.mark.parametrize("module,make", [
    (Module.CONTACT, lambda: Contact(last_name="Secret", private_flag=True)),
    (Module.TASK, lambda: Task(title="Secret", private_flag=True)),
    (Module.CALENDAR, lambda: Appointment(title="Secret", private_flag=True)),
])
def test_private_object_hidden_from_grantee_even_with_full_rights(world, module, make) -> None:  # type: ignore[no-untyped-def]
    folder = _share(world, world.alice, module, world.bob, 7)
    with world.as_user(world.alice, write=True) as session:
        secret = session.create_object(folder, make())
        session.create_object(folder, type(make())(**({"last_name": "Public"} if module == Module.CONTACT else {"title": "Public"})))
    with world.as_user(world.bob) as session:
        listed = session.list_objects(folder)
        assert secret.object_id not in [o.object_id for o in listed] and len(listed) == 1
        with pytest.raises(NotFound):
            session.get_object(folder, secret.object_id)
        assert session.object_delta(folder, 0).changed == listed or secret.object_id not in [
            o.object_id for o in session.object_delta(folder, 0).changed]
    with world.as_user(world.alice) as session:
        assert secret.object_id in [o.object_id for o in session.list_objects(folder)]


def test_private_meeting_visible_to_its_participants(world) -> None:  # type: ignore[no-untyped-def]
    alice_cal = _share(world, world.alice, Module.CALENDAR, world.carol, 2)
    alice_cal = _share(world, world.alice, Module.CALENDAR, world.bob, 2)
    with world.as_user(world.alice, write=True) as session:
        meeting = session.create_object(alice_cal, Appointment(
            title="1:1", private_flag=True, start_date=datetime(2026, 12, 2, 9, tzinfo=UTC),
            end_date=datetime(2026, 12, 2, 10, tzinfo=UTC),
            participants=[Participant(ParticipantKind.USER, world.alice), Participant(ParticipantKind.USER, world.bob)],
        ))
    with world.as_user(world.bob) as session:
        assert session.get_object(alice_cal, meeting.object_id).title == "1:1"
    with pytest.raises(NotFound), world.as_user(world.carol) as session:
        session.get_object(alice_cal, meeting.object_id)


def test_private_objects_are_not_found_by_uid(world) -> None:  # type: ignore[no-untyped-def]
    folder = _share(world, world.alice, Module.CONTACT, world.bob, 6)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="S", uid="secret-uid", private_flag=True))
    with world.as_user(world.bob) as session:
        assert session.find_by_uid(folder, "secret-uid") is None
