"""The nine Outlook permission levels against every operation, granted to a user or to a group."""

from __future__ import annotations

import pytest

from oxsync.model import Contact, Module, Permission, Rights
from oxsync.model.folder import PUBLIC_ROOT
from oxsync.model.permissions import OUTLOOK_LEVELS, level_for_rights, rights_for_level
from oxsync.store.errors import NotFound, PermissionDenied

OPERATIONS = ("see", "create", "read_own", "read_other", "search_own", "search_other", "edit_own", "edit_other",
              "delete_own", "delete_other", "subfolder", "permissions", "delete_folder")
# Expected behaviour per level, written from the OXtender manual chapter 7.5 (not derived from the code).
# Searching follows reading (a search must not reveal what cannot be read); only the owner level may
# delete the folder itself.
EXPECTED = {
    0: "see",
    1: "see create",
    2: "see read_own read_other search_own search_other",
    3: "see create read_own read_other search_own search_other delete_own",
    4: "see create read_own read_other search_own search_other edit_own delete_own",
    5: "see create read_own read_other search_own search_other edit_own delete_own subfolder",
    6: "see create read_own read_other search_own search_other edit_own edit_other delete_own delete_other",
    7: "see create read_own read_other search_own search_other edit_own edit_other delete_own delete_other subfolder",
    8: "see create read_own read_other search_own search_other edit_own edit_other delete_own delete_other subfolder "
       "permissions delete_folder",
}


def test_levels_map_both_ways() -> None:
    for level in range(9):
        assert level_for_rights(rights_for_level(level)) == level
    assert level_for_rights(Rights(4, 2, 0, 0, False)) is None  # custom
    with pytest.raises(ValueError):
        rights_for_level(9)


def _attempt(world, folder: int, op: str, own_id: int, other_id: int) -> bool:  # type: ignore[no-untyped-def]
    bob = world.bob
    try:
        with world.as_user(bob, write=True) as session:
            if op == "see":
                session.get_folder(folder)
            elif op == "create":
                session.create_object(folder, Contact(last_name="by bob"))
            elif op in ("read_own", "read_other"):
                session.get_object(folder, own_id if op == "read_own" else other_id)
            elif op in ("search_own", "search_other"):  # "by alice" / "bob's": each found only by itself
                found = [o.object_id for o in session.search_objects(folder, "alice" if op == "search_other" else "bob's")]
                raise _Rollback((own_id if op == "search_own" else other_id) in found)
            elif op == "delete_folder":
                session.delete_folder(folder)
            elif op in ("edit_own", "edit_other"):
                target = own_id if op == "edit_own" else other_id
                session.update_object(folder, Contact(object_id=target, last_name="edited"))
            elif op in ("delete_own", "delete_other"):
                session.delete_object(folder, own_id if op == "delete_own" else other_id)
            elif op == "subfolder":
                session.create_folder(folder, "Sub", Module.CONTACT)
            elif op == "permissions":
                current = session.get_folder(folder).folder.permissions
                session.set_permissions(folder, current)
            raise _Rollback(True)
    except _Rollback as done:
        return done.allowed
    except (PermissionDenied, NotFound):
        return False


class _Rollback(Exception):
    """Raised inside the session so each attempt is rolled back and the next starts from the same state."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed


def _public_folder_with_items(world, grant_as_group: bool):  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        folder = session.create_folder(PUBLIC_ROOT, "Shared contacts", Module.CONTACT).folder.id
        owner = session.get_folder(folder).folder.permissions
        other = session.create_object(folder, Contact(last_name="by alice")).object_id
        session.set_permissions(folder, owner + [Permission(world.bob, False, rights_for_level(8))])
    with world.as_user(world.bob, write=True) as session:
        own = session.create_object(folder, Contact(last_name="bob's")).object_id
    return folder, owner, own, other


@pytest.mark.parametrize("grant_as_group", [False, True], ids=["user", "group"])
def test_permission_matrix(world, grant_as_group: bool) -> None:  # type: ignore[no-untyped-def]
    folder, owner, own, other = _public_folder_with_items(world, grant_as_group)
    failures = []
    for level in range(9):
        entity = Permission(world.team, True, rights_for_level(level)) if grant_as_group else \
            Permission(world.bob, False, rights_for_level(level))
        with world.as_user(world.alice, write=True) as session:
            session.set_permissions(folder, owner + [entity])
        allowed = set(EXPECTED[level].split())
        for op in OPERATIONS:
            got = _attempt(world, folder, op, own, other)
            if got != (op in allowed):
                failures.append((level, op, got))
    assert failures == []


def test_no_entry_means_invisible(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CALENDAR)
    with pytest.raises(NotFound), world.as_user(world.carol) as session:
        session.get_folder(folder)
    with world.as_user(world.carol) as session:
        assert folder not in [f.folder.id for f in session.list_folders()]


def test_user_and_group_entries_combine_to_maximum(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        owner = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, owner + [
            Permission(world.bob, False, Rights(2, 4, 0, 0)),
            Permission(world.team, True, Rights(4, 2, 2, 4)),
        ])
    with world.as_user(world.bob) as session:
        assert session.get_folder(folder).rights == Rights(4, 4, 2, 4)
        shared = session.get_folder(folder)
    assert shared.shared and level_for_rights(shared.rights) is None


def test_admin_cannot_drop_last_admin_or_owner_of_default(world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.store.errors import InvalidData

    folder = world.default_folder(world.alice, Module.CONTACT)
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.set_permissions(folder, [Permission(world.bob, False, rights_for_level(7))])
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.set_permissions(folder, [Permission(world.alice, False, Rights(128, 128, 128, 128, True)),
                                         Permission(world.bob, False, Rights(3, 0, 0, 0))])
    assert set(OUTLOOK_LEVELS) == set(range(9))


def test_search_never_finds_another_users_private_object(world) -> None:  # type: ignore[no-untyped-def]
    """Bob may read everything in alice's contacts, but her private contact is not his to find."""
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        owner = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, owner + [Permission(world.bob, False, rights_for_level(6))])
        secret = session.create_object(folder, Contact(last_name="Zanzibar-secret", private_flag=True)).object_id
        public = session.create_object(folder, Contact(last_name="Zanzibar-public")).object_id
    with world.as_user(world.alice) as session:
        assert sorted(o.object_id for o in session.search_objects(folder, "zanzibar")) == sorted([secret, public])
    with world.as_user(world.bob) as session:
        assert [o.object_id for o in session.search_objects(folder, "zanzibar")] == [public]
    with world.as_user(world.carol) as session, pytest.raises((PermissionDenied, NotFound)):
        session.search_objects(folder, "zanzibar")  # no right at all: no answer, not an empty one


def test_deleting_a_folder_without_the_right_changes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        folder = session.create_folder(PUBLIC_ROOT, "Keep me", Module.CONTACT).folder.id
        owner = session.get_folder(folder).folder.permissions
        session.set_permissions(folder, owner + [Permission(world.bob, False, rights_for_level(7))])
        item = session.create_object(folder, Contact(last_name="inside")).object_id
    with pytest.raises(PermissionDenied), world.as_user(world.bob, write=True) as session:
        session.delete_folder(folder)  # level 7 may create subfolders, not delete the folder
    with pytest.raises((PermissionDenied, NotFound)), world.as_user(world.carol, write=True) as session:
        session.delete_folder(folder)
    with world.as_user(world.alice) as session:
        assert session.get_folder(folder).folder.title == "Keep me"
        assert [o.object_id for o in session.list_objects(folder)] == [item]


def test_a_folder_without_group_entries_reads_no_groups(store, world) -> None:  # type: ignore[no-untyped-def]
    """The rights on a private folder whose permissions name no group come from its own entries: the
    user's groups and account rights are not read (a Sync window of one's own folder, one statement fewer
    on PostgreSQL). A folder shared with a group still reads them, and a member gets the group's rights."""
    from tests.fixtures import recorded_statements

    own = world.default_folder(world.bob, Module.CONTACT)
    shared = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        folder = session.get_folder(shared).folder
        session.set_permissions(shared, [*folder.permissions, Permission(world.team, True, rights_for_level(2))])

    def group_reads(folder_id: int) -> tuple[int, Rights]:
        with recorded_statements(store, lambda q: "group_members" in q) as seen, world.as_user(world.bob) as session:
            rights = session.get_folder(folder_id).rights
        return len(seen), rights
    reads, rights = group_reads(own)
    assert reads == 0 and rights.can_see_folder and rights.can_read(False)
    reads, rights = group_reads(shared)
    assert reads == 1 and rights == rights_for_level(2)
    with world.as_user(world.carol) as session, pytest.raises(NotFound):  # not in the team: hidden
        session.get_folder(shared)
