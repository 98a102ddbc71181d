"""Meetings, confirmations, resources and conflicts, series, delegated tasks, group lists, free/busy.

Each behaviour is checked from the organizer's, a participant's, a grantee's and an outsider's view.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from oxsync.model import Appointment, Contact, Module, Permission, ShownAs, Task
from oxsync.model.appointment import Confirmation, Participant, ParticipantKind, Recurrence, RecurrenceType
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.model.permissions import rights_for_level
from oxsync.model.task import TaskStatus
from oxsync.store import accounts, removal
from oxsync.store.errors import AppointmentConflict, NotFound

U = ParticipantKind.USER


def at(day: int, hour: int, month: int = 1) -> datetime:
    return datetime(2027, month, day, hour, tzinfo=UTC)


def meeting(world, title="Review", start=None, end=None, **extra):  # type: ignore[no-untyped-def]
    parts = extra.pop("participants", [Participant(U, world.alice), Participant(U, world.bob)])
    return Appointment(title=title, start_date=start or at(4, 9), end_date=end or at(4, 10), participants=parts, **extra)


def titles(world, user, module=Module.CALENDAR, owner=None):  # type: ignore[no-untyped-def]
    folder = world.default_folder(owner or user, module)
    with world.as_user(user) as session:
        return sorted(o.title for o in session.list_objects(folder))


def create(world, user, obj, module=Module.CALENDAR):  # type: ignore[no-untyped-def]
    with world.as_user(user, write=True) as session:
        return session.create_object(world.default_folder(user, module), obj)


def grant(world, owner, grantee, module, level) -> int:  # type: ignore[no-untyped-def]
    folder = world.default_folder(owner, module)
    with world.as_user(owner, write=True) as session:
        entries = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, entries + [Permission(grantee, False, rights_for_level(level))])
    return folder


# ---------------------------------------------------------------- meetings


def test_meeting_is_one_object_in_each_participants_calendar(world) -> None:  # type: ignore[no-untyped-def]
    grant(world, world.bob, world.carol, Module.CALENDAR, 2)  # carol may read bob's calendar
    m = create(world, world.alice, meeting(world))
    bob_folder = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob) as session:
        seen = session.get_object(bob_folder, m.object_id)
    assert seen.object_id == m.object_id and seen.folder_id == bob_folder
    assert titles(world, world.alice) == titles(world, world.bob) == ["Review"]
    assert titles(world, world.carol, owner=world.bob) == ["Review"]  # grantee of bob's calendar
    assert titles(world, world.carol) == []  # carol is no participant
    with pytest.raises(NotFound), world.as_user(world.carol) as session:
        session.get_object(world.default_folder(world.alice, Module.CALENDAR), m.object_id)


def test_group_expands_and_externals_are_kept(world) -> None:  # type: ignore[no-untyped-def]
    m = create(world, world.carol, meeting(world, participants=[
        Participant(ParticipantKind.GROUP, world.team),
        Participant(ParticipantKind.EXTERNAL_USER, email="ext@partner.org", display_name="Eve Partner"),
    ]))
    kinds = sorted((p.kind.name, p.entity, p.email) for p in m.participants)
    assert ("USER", world.alice, "alice@example.com") in kinds and ("USER", world.bob, "bob@example.com") in kinds
    assert ("USER", world.carol, "carol@example.com") in kinds  # the organizer's own calendar holds it
    assert not any(p.kind == ParticipantKind.GROUP for p in m.participants)
    ext = next(p for p in m.participants if p.is_external)
    assert (ext.email, ext.display_name) == ("ext@partner.org", "Eve Partner")
    assert titles(world, world.alice) == titles(world, world.bob) == ["Review"]


def test_confirmations_are_per_participant_and_survive_organizer_edits(world) -> None:  # type: ignore[no-untyped-def]
    m = create(world, world.alice, meeting(world, alarm=15))
    bob_folder = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as session:
        session.confirm(bob_folder, m.object_id, Confirmation.TENTATIVE, "might be late")
        mine = session.get_object(bob_folder, m.object_id)
        mine.alarm = 30
        session.update_object(bob_folder, mine)
    alice_folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        edit = session.get_object(alice_folder, m.object_id)
        edit.title = "Review (moved)"
        edit.participants = [Participant(U, world.alice), Participant(U, world.bob, confirmation=Confirmation.ACCEPT)]
        edit.ignore_conflicts = True
        session.update_object(alice_folder, edit)
    with world.as_user(world.alice) as session:
        as_alice = session.get_object(alice_folder, m.object_id)
    with world.as_user(world.bob) as session:
        as_bob = session.get_object(bob_folder, m.object_id)
    status = {p.entity: (p.confirmation, p.message) for p in as_alice.participants}
    assert status[world.bob] == (Confirmation.TENTATIVE, "might be late")  # the organizer cannot overwrite it
    assert status[world.alice][0] == Confirmation.ACCEPT
    assert as_bob.title == "Review (moved)"
    assert (as_alice.alarm, as_bob.alarm) == (15, 30)  # each their own reminder


def test_removed_participant_loses_it_and_organizer_delete_removes_everywhere(world) -> None:  # type: ignore[no-untyped-def]
    m = create(world, world.alice, meeting(world, participants=[
        Participant(U, world.alice), Participant(U, world.bob), Participant(U, world.carol)]))
    alice_folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        m = session.get_object(alice_folder, m.object_id)
        m.participants = [p for p in m.participants if p.entity != world.carol]
        session.update_object(alice_folder, m)
    assert titles(world, world.carol) == [] and titles(world, world.bob) == ["Review"]
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(alice_folder, m.object_id)
    assert titles(world, world.alice) == titles(world, world.bob) == []


def test_participant_delete_declines_and_leaves_only_their_view(world) -> None:  # type: ignore[no-untyped-def]
    m = create(world, world.alice, meeting(world))
    bob_folder = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as session:
        session.delete_object(bob_folder, m.object_id)
    assert titles(world, world.bob) == []
    with world.as_user(world.alice) as session:
        kept = session.get_object(world.default_folder(world.alice, Module.CALENDAR), m.object_id)
    assert {p.entity: p.confirmation for p in kept.participants}[world.bob] == Confirmation.DECLINE


def test_participant_can_move_it_to_another_folder(world) -> None:  # type: ignore[no-untyped-def]
    m = create(world, world.alice, meeting(world))
    bob_folder = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as session:
        work = session.create_folder(1, "Work", Module.CALENDAR).folder.id
        session.move_object(bob_folder, m.object_id, work)
    with world.as_user(world.bob) as session:
        assert [o.object_id for o in session.list_objects(work)] == [m.object_id]
        assert session.list_objects(bob_folder) == []
    assert titles(world, world.alice) == ["Review"]


# ---------------------------------------------------------------- resources and conflicts


def test_resource_double_booking_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room1", "room1@example.com").id
    create(world, world.alice, meeting(world, participants=[Participant(U, world.alice), Participant(ParticipantKind.RESOURCE, room)]))
    clash = meeting(world, "Other", at(4, 9, 1).replace(minute=30), at(4, 11), ignore_conflicts=True,
                    participants=[Participant(U, world.carol), Participant(ParticipantKind.RESOURCE, room)])
    with pytest.raises(AppointmentConflict) as err:
        create(world, world.carol, clash)
    assert err.value.hard and [i.title for i in err.value.items] == [""] or [i.title for i in err.value.items] == ["Review"]
    assert titles(world, world.carol) == []
    later = meeting(world, "Later", at(4, 10), at(4, 11), participants=[Participant(U, world.carol), Participant(ParticipantKind.RESOURCE, room)])
    create(world, world.carol, later)  # back to back is no overlap
    assert titles(world, world.carol) == ["Later"]


def test_soft_conflict_lists_items_and_can_be_overridden(world) -> None:  # type: ignore[no-untyped-def]
    create(world, world.bob, Appointment(title="Dentist", start_date=at(4, 9), end_date=at(4, 10)))
    create(world, world.bob, Appointment(title="Lunch", start_date=at(4, 9), end_date=at(4, 10), shown_as=ShownAs.FREE))
    with pytest.raises(AppointmentConflict) as err:
        create(world, world.alice, meeting(world))
    assert not err.value.hard
    assert [(i.title, i.start, i.end, i.full_time) for i in err.value.items] == [("Dentist", at(4, 9), at(4, 10), False)]
    assert titles(world, world.alice) == []
    create(world, world.alice, meeting(world, ignore_conflicts=True))
    assert titles(world, world.alice) == ["Review"]


def test_free_appointments_never_conflict_and_private_ones_hide_their_title(world) -> None:  # type: ignore[no-untyped-def]
    create(world, world.bob, Appointment(title="Secret", private_flag=True, start_date=at(5, 9), end_date=at(5, 10)))
    create(world, world.alice, meeting(world, "Free slot", at(5, 9), at(5, 10), shown_as=ShownAs.FREE))
    with pytest.raises(AppointmentConflict) as err:
        create(world, world.alice, meeting(world, "Clash", at(5, 9), at(5, 10)))
    assert [i.title for i in err.value.items] == [""]


def test_recurring_series_conflicts_with_a_later_occurrence(world) -> None:  # type: ignore[no-untyped-def]
    create(world, world.bob, Appointment(title="Standup", start_date=at(4, 9), end_date=at(4, 10), timezone="UTC",
                                         recurrence=Recurrence(RecurrenceType.WEEKLY, 1, days=2)))  # Mondays
    with pytest.raises(AppointmentConflict) as err:
        create(world, world.alice, meeting(world, start=at(25, 9), end=at(25, 10)))  # a Monday three weeks later
    assert [(i.title, i.start) for i in err.value.items] == [("Standup", at(25, 9))]
    create(world, world.alice, meeting(world, start=at(26, 9), end=at(26, 10)))  # Tuesday: free


# ---------------------------------------------------------------- series


def test_change_and_delete_single_occurrences_and_this_and_following(world) -> None:  # type: ignore[no-untyped-def]
    series = create(world, world.alice, meeting(world, "Weekly", uid="weekly-1", timezone="Europe/Paris",
                                                recurrence=Recurrence(RecurrenceType.WEEKLY, 1, days=2, occurrences=10)))
    alice_folder = world.default_folder(world.alice, Module.CALENDAR)
    bob_folder = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        moved = session.change_occurrence(alice_folder, series.object_id, date(2027, 1, 11),
                                          Appointment(title="Weekly (moved)", start_date=at(12, 14), end_date=at(12, 15)))
        session.delete_occurrence(alice_folder, series.object_id, date(2027, 1, 18))
    with world.as_user(world.bob) as session:  # the participant sees the exception as its own object
        items = {o.object_id: o for o in session.list_objects(bob_folder)}
    master = items[series.object_id]
    assert moved.object_id in items and items[moved.object_id].recurrence_id == series.object_id
    assert items[moved.object_id].recurrence_date_position == date(2027, 1, 11)
    assert items[moved.object_id].uid == "weekly-1"
    assert master.change_exceptions == [date(2027, 1, 11)] and master.delete_exceptions == [date(2027, 1, 18)]
    with world.as_user(world.alice, write=True) as session:
        ended = session.end_series_before(alice_folder, series.object_id, date(2027, 1, 11))
    assert ended.recurrence.until == date(2027, 1, 10) and ended.recurrence.occurrences is None
    with world.as_user(world.bob) as session:
        left = [o.object_id for o in session.list_objects(bob_folder)]
    assert left == [series.object_id]  # the later exception went with "this and following"


def test_deleting_a_series_removes_its_exceptions(world) -> None:  # type: ignore[no-untyped-def]
    series = create(world, world.alice, Appointment(title="Daily", start_date=at(4, 8), end_date=at(4, 9),
                                                    recurrence=Recurrence(RecurrenceType.DAILY, 1, occurrences=5)))
    folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        session.change_occurrence(folder, series.object_id, date(2027, 1, 5),
                                  Appointment(title="Daily late", start_date=at(5, 12), end_date=at(5, 13)))
        session.delete_object(folder, series.object_id)
    assert titles(world, world.alice) == []


# ---------------------------------------------------------------- tasks


def test_delegated_task_status_visible_to_delegator_and_reminders_per_user(world) -> None:  # type: ignore[no-untyped-def]
    task = create(world, world.alice, Task(title="Write report", alarm=datetime(2027, 1, 3, 8, tzinfo=UTC),
                                           participants=[Participant(U, world.bob)]), Module.TASK)
    bob_tasks = world.default_folder(world.bob, Module.TASK)
    with world.as_user(world.bob, write=True) as session:
        session.confirm(bob_tasks, task.object_id, Confirmation.ACCEPT)
        mine = session.get_object(bob_tasks, task.object_id)
        assert mine.alarm is None  # alice's reminder is hers
        mine.status, mine.percent_completed = TaskStatus.IN_PROGRESS, 60
        mine.alarm = datetime(2027, 1, 4, 9, tzinfo=UTC)
        session.update_object(bob_tasks, mine)
    alice_tasks = world.default_folder(world.alice, Module.TASK)
    with world.as_user(world.alice) as session:
        seen = session.get_object(alice_tasks, task.object_id)
    assert (seen.status, seen.percent_completed) == (TaskStatus.IN_PROGRESS, 60)
    assert {p.entity: p.confirmation for p in seen.participants}[world.bob] == Confirmation.ACCEPT
    assert seen.alarm == datetime(2027, 1, 3, 8, tzinfo=UTC)
    assert titles(world, world.carol, Module.TASK) == []


def test_task_delegate_can_decline(world) -> None:  # type: ignore[no-untyped-def]
    task = create(world, world.alice, Task(title="Chore", participants=[Participant(U, world.bob)]), Module.TASK)
    with world.as_user(world.bob, write=True) as session:
        session.confirm(world.default_folder(world.bob, Module.TASK), task.object_id, Confirmation.DECLINE, "no time")
    with world.as_user(world.alice) as session:
        seen = session.get_object(world.default_folder(world.alice, Module.TASK), task.object_id)
    assert {p.entity: (p.confirmation, p.message) for p in seen.participants}[world.bob] == (Confirmation.DECLINE, "no time")


# ---------------------------------------------------------------- address books


def test_group_distribution_list_is_visible_to_all_and_follows_membership(world) -> None:  # type: ignore[no-untyped-def]
    def team_list(user):  # type: ignore[no-untyped-def]
        with world.as_user(user) as session:
            lists = [c for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if c.is_distribution_list]
        return {c.display_name: sorted(m.email for m in c.distribution_list) for c in lists}

    assert team_list(world.carol) == {"Team": ["alice@example.com", "bob@example.com"]}
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.set_group_members(tx, world.team, [world.bob, world.carol])
    assert team_list(world.alice) == {"Team": ["bob@example.com", "carol@example.com"]}
    with world.as_user(world.bob, write=True) as session:  # nobody edits the system-maintained list
        listed = next(c for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if c.is_distribution_list)
        from oxsync.store.errors import PermissionDenied

        with pytest.raises(PermissionDenied):
            session.update_object(GLOBAL_ADDRESS_BOOK, listed)
    with world.store.transaction(world.tenant_id, write=True) as tx:
        removal.delete_group(tx, world.team)
    assert team_list(world.alice) == {}


def test_personal_distribution_list_references_contacts_and_free_addresses(world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.model.contact import DistributionListMember

    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        jane = session.create_object(folder, Contact(first_name="Jane", email2="jane@home.org"))
        dl = session.create_object(folder, Contact(display_name="Club", distribution_list=[
            DistributionListMember("jane@home.org", "Jane", jane.object_id, folder, 2),
            DistributionListMember("free@x.org")]))
    with world.as_user(world.alice) as session:
        members = session.get_object(folder, dl.object_id).distribution_list
    assert [(m.contact_id, m.email_field) for m in members] == [(jane.object_id, 2), (None, 0)]


# ---------------------------------------------------------------- free/busy


def test_free_busy_merges_by_type_and_hides_nothing_but_details(world) -> None:  # type: ignore[no-untyped-def]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room9", "room9@example.com").id
    create(world, world.bob, Appointment(title="A", start_date=at(6, 9), end_date=at(6, 10)))
    create(world, world.bob, Appointment(title="B", start_date=at(6, 9, 1).replace(minute=30), end_date=at(6, 11), private_flag=True,
                                         ignore_conflicts=True))
    create(world, world.bob, Appointment(title="Away", start_date=at(6, 13), end_date=at(6, 17), shown_as=ShownAs.ABSENT))
    create(world, world.bob, Appointment(title="Gym", start_date=at(6, 18), end_date=at(6, 19), shown_as=ShownAs.FREE))
    m = create(world, world.alice, meeting(world, "Maybe", at(7, 9), at(7, 10), participants=[
        Participant(U, world.alice), Participant(U, world.bob), Participant(ParticipantKind.RESOURCE, room)]))
    declined = create(world, world.alice, meeting(world, "No", at(7, 11), at(7, 12), ignore_conflicts=True))
    bob_folder = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as session:
        session.confirm(bob_folder, m.object_id, Confirmation.TENTATIVE)
        session.confirm(bob_folder, declined.object_id, Confirmation.DECLINE)
    create(world, world.bob, Appointment(title="Weekly", start_date=at(1, 7), end_date=at(1, 8), ignore_conflicts=True,
                                         recurrence=Recurrence(RecurrenceType.DAILY, 1, occurrences=10)))
    with world.as_user(world.carol) as session:  # anyone may ask, without rights on bob's calendar
        busy = session.free_busy(at(6, 0), at(8, 0), user_id=world.bob)
        room_busy = session.free_busy(at(6, 0), at(8, 0), resource_id=room)
    got = [(p.start, p.end, p.shown_as) for p in busy]
    assert got == [
        (at(6, 7), at(6, 8), ShownAs.RESERVED),
        (at(6, 9), at(6, 11), ShownAs.RESERVED),  # A and the private B merged
        (at(6, 13), at(6, 17), ShownAs.ABSENT),
        (at(6, 18), at(6, 19), ShownAs.FREE),
        (at(7, 7), at(7, 8), ShownAs.RESERVED),
        (at(7, 9), at(7, 10), ShownAs.TEMPORARY),  # bob said tentative; "No" was declined
    ]
    assert [(p.start, p.end) for p in room_busy] == [(at(7, 9), at(7, 10))]
