"""Tenants, accounts, authentication, groups, resources and account deletion (both backends)."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from oxsync.config import AuthSettings
from oxsync.model import Contact, Module, Permission, Protocol, ResourceKind
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.contact import DistributionListMember
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.model.permissions import rights_for_level
from oxsync.store import accounts, removal
from oxsync.store import schema as s
from oxsync.store.errors import (
    AccessRefused,
    AuthenticationFailed,
    Conflict,
    InvalidData,
    NotFound,
    PermissionDenied,
)
from tests.fixtures import raw_write


def test_password_is_hashed_with_argon2(world) -> None:  # type: ignore[no-untyped-def]
    with world.store.engine.connect() as conn:
        stored = conn.execute(select(s.users.c.password_hash).where(s.users.c.login == "alice")).scalar_one()
    assert stored.startswith("$argon2") and "alice-pw" not in stored
    auth = world.store.settings.auth  # the cost is a setting (cheap in tests, OWASP's argon2id otherwise)
    assert f"m={auth.password_hash_memory_kib},t={auth.password_hash_time_cost},p={auth.password_hash_parallelism}" in stored
    assert accounts.hash_password("x", AuthSettings()).split("$")[1:4] == ["argon2id", "v=19", "m=19456,t=2,p=1"]


# OWASP Password Storage Cheat Sheet: argon2id configurations of equal strength (memory KiB, passes)
OWASP_ARGON2ID = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))


def test_default_password_cost_is_not_below_owasp() -> None:
    """The default may be cheap enough for a login storm, never cheaper than OWASP's minimum."""
    auth = AuthSettings()
    assert any(auth.password_hash_memory_kib >= memory and auth.password_hash_time_cost >= passes
               for memory, passes in OWASP_ARGON2ID)
    assert auth.hash_pool_size() >= 1


@pytest.mark.parametrize("login", ["alice", "alice@example.com", "ALICE@Example.com"])
def test_login_forms_authenticate(world, login: str) -> None:  # type: ignore[no-untyped-def]
    principal = world.store.authenticate(login, "alice-pw", Protocol.MOBILE)
    assert (principal.tenant_id, principal.user_id) == (world.tenant_id, world.alice)


def test_alias_authenticates_and_wrong_password_fails(world) -> None:  # type: ignore[no-untyped-def]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.add_alias(tx, world.alice, "a.martin@example.com")
    assert world.store.authenticate("a.martin@example.com", "alice-pw", Protocol.DAV).user_id == world.alice
    with pytest.raises(AuthenticationFailed):
        world.store.authenticate("alice", "wrong", Protocol.DAV)
    with pytest.raises(AuthenticationFailed):
        world.store.authenticate("nobody", "alice-pw", Protocol.DAV)


def test_suspension_refuses_and_keeps_data(world) -> None:  # type: ignore[no-untyped-def]
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(contacts, Contact(last_name="Kept"))
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.alice, active=False)
    with pytest.raises(AccessRefused, match="suspended"):
        world.store.authenticate("alice", "alice-pw", Protocol.OUTLOOK)
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.alice, active=True)
    world.store.authenticate("alice", "alice-pw", Protocol.OUTLOOK)
    with world.as_user(world.alice) as session:
        assert [c.last_name for c in session.list_objects(contacts)] == ["Kept"]


def test_protocol_rights_are_per_account(world) -> None:  # type: ignore[no-untyped-def]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.bob, protocols=[Protocol.DAV])
    world.store.authenticate("bob", "bob-pw", Protocol.DAV)
    for protocol in (Protocol.MOBILE, Protocol.OUTLOOK):
        with pytest.raises(AccessRefused, match=protocol.value):
            world.store.authenticate("bob", "bob-pw", protocol)


def test_bare_logins_are_unique_across_tenants(world) -> None:  # type: ignore[no-untyped-def]
    """Adding `alice` to a second tenant used to make the first tenant's `alice` get 401 with a bare
    login. The rule: a bare login names one account; `user add` says so; the database enforces it."""
    other = world.store.create_tenant("other.org")
    with pytest.raises(Conflict, match="already used in tenant example.com"), \
            world.store.transaction(other.id, write=True) as tx:
        accounts.create_user(tx, "alice", "other-pw")
    assert world.store.authenticate("alice", "alice-pw", Protocol.DAV).tenant_id == world.tenant_id
    with world.store.transaction(other.id, write=True) as tx:
        olivia = accounts.create_user(tx, "olivia", "olivia-pw")
    # an alias may not take another account's `login@domain` either (it would shadow that login) ...
    with pytest.raises(Conflict, match="login of another account"), \
            world.store.transaction(other.id, write=True) as tx:
        accounts.add_alias(tx, olivia.id, "bob@example.com")
    with pytest.raises(Conflict, match="login of another account"), \
            world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.add_alias(tx, world.carol, "olivia@other.org")
    assert world.store.authenticate("bob@example.com", "bob-pw", Protocol.DAV).user_id == world.bob
    # ... and the database refuses a duplicate written behind the store's back (migration 0006)
    with pytest.raises(IntegrityError), raw_write(world.store.engine) as conn:
        conn.execute(insert(s.users).values(
            tenant_id=other.id, id=999, login="alice", password_hash="x", display_name="", first_name="",
            last_name="", email="a@other.org", protocols="dav", active=True, usage_bytes=0, last_ms=0,
            settings="{}"))


def test_max_accounts_and_duplicates(world) -> None:  # type: ignore[no-untyped-def]
    world.store.update_tenant(world.tenant_id, max_accounts=3)
    with pytest.raises(Conflict, match="maximum"), world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.create_user(tx, "dave", "pw")
    world.store.update_tenant(world.tenant_id, max_accounts=None)
    with pytest.raises(Conflict), world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.create_user(tx, "bob", "pw")
    with pytest.raises(InvalidData), world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.create_user(tx, "Bad Login!", "pw")


def test_default_folders_exist_and_cannot_be_deleted_or_renamed(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice) as session:
        defaults = {f.folder.module: f.folder for f in session.list_folders() if f.folder.default_folder}
    assert set(defaults) == {Module.CALENDAR, Module.CONTACT, Module.TASK}
    calendar = defaults[Module.CALENDAR]
    with pytest.raises(PermissionDenied), world.as_user(world.alice, write=True) as session:
        session.delete_folder(calendar.id)
    with pytest.raises(PermissionDenied), world.as_user(world.alice, write=True) as session:
        session.update_folder(calendar.id, title="Renamed")
    with world.as_user(world.alice) as session:
        assert session.get_folder(calendar.id).folder.title == "Calendar"


def test_global_address_book_follows_accounts(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.carol) as session:
        names = sorted(c.display_name for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if c.user_id)
    assert names == ["Alice Martin", "Bob Durand", "Carol Petit"]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.update_user(tx, world.bob, display_name="Robert Durand")
        accounts.create_user(tx, "dave", "pw", display_name="Dave")
    with world.as_user(world.carol) as session:
        names = sorted(c.display_name for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if c.user_id)
    assert names == ["Alice Martin", "Carol Petit", "Dave", "Robert Durand"]


def test_users_edit_only_their_own_gab_entry(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice) as session:
        entries = {c.user_id: c for c in session.list_objects(GLOBAL_ADDRESS_BOOK)}
    mine, bobs = entries[world.alice], entries[world.bob]
    mine.phone_business = "+33 1 23 45 67 89"
    with world.as_user(world.alice, write=True) as session:
        session.update_object(GLOBAL_ADDRESS_BOOK, mine)
    bobs.phone_business = "forged"
    with pytest.raises(PermissionDenied), world.as_user(world.alice, write=True) as session:
        session.update_object(GLOBAL_ADDRESS_BOOK, bobs)
    with world.as_user(world.bob) as session:
        seen = {c.user_id: c for c in session.list_objects(GLOBAL_ADDRESS_BOOK)}
    assert seen[world.alice].phone_business == "+33 1 23 45 67 89"
    assert seen[world.bob].phone_business == ""


def test_groups_and_resources(world) -> None:  # type: ignore[no-untyped-def]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.set_group_members(tx, world.team, [world.alice, world.carol])
        room = accounts.create_resource(tx, "room1", "room1@example.com", display_name="Room 1")
        beamer = accounts.create_resource(tx, "beamer", "beamer@example.com", kind=ResourceKind.EQUIPMENT)
        assert accounts.get_group(tx, world.team).members == [world.alice, world.carol]
        assert [r.name for r in accounts.list_resources(tx)] == ["room1", "beamer"]
        assert accounts.find_resource_id(tx, "ROOM1@example.com") == room.id
        assert beamer.kind is ResourceKind.EQUIPMENT
    with pytest.raises(Conflict), world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.create_resource(tx, "room2", "alice@example.com")


def test_group_grant_applies_to_members_only(world) -> None:  # type: ignore[no-untyped-def]
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        owner = session.get_folder(contacts).folder.permissions
        session.set_permissions(contacts, owner + [Permission(world.team, True, rights_for_level(2))])
    with world.as_user(world.bob) as session:
        assert session.get_folder(contacts).rights == rights_for_level(2)
    with pytest.raises(NotFound), world.as_user(world.carol) as session:
        session.get_folder(contacts)
    with world.store.transaction(world.tenant_id, write=True) as tx:
        accounts.set_group_members(tx, world.team, [world.alice, world.carol])
    with world.as_user(world.carol) as session:
        assert session.get_folder(contacts).rights.can_read(False)
    with pytest.raises(NotFound), world.as_user(world.bob) as session:
        session.get_folder(contacts)


def test_deleting_a_user_removes_data_and_references(world) -> None:  # type: ignore[no-untyped-def]
    store, t = world.store, world.tenant_id
    alice_contacts = world.default_folder(world.alice, Module.CONTACT)
    bob_calendar = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob) as session:
        bob_gab = next(c for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if c.user_id == world.bob)
    with world.as_user(world.alice, write=True) as session:
        owner = session.get_folder(alice_contacts).folder.permissions
        session.set_permissions(alice_contacts, owner + [Permission(world.bob, False, rights_for_level(4))])
        dlist = session.create_object(alice_contacts, Contact(display_name="Friends", distribution_list=[
            DistributionListMember(email="bob@example.com", display_name="Bob", contact_id=bob_gab.object_id,
                                   folder_id=GLOBAL_ADDRESS_BOOK, email_field=1),
            DistributionListMember(email="x@y.org"),
        ]))
    from datetime import datetime

    from oxsync.model import Appointment

    with world.as_user(world.alice, write=True) as session:
        meeting = session.create_object(world.default_folder(world.alice, Module.CALENDAR), Appointment(
            title="Sync", start_date=datetime(2026, 12, 1, 9, tzinfo=UTC),
            end_date=datetime(2026, 12, 1, 10, tzinfo=UTC),
            participants=[Participant(ParticipantKind.USER, world.alice), Participant(ParticipantKind.USER, world.bob)],
        ))
    with world.as_user(world.bob, write=True) as session:
        session.create_object(bob_calendar, Appointment(title="Bob's own"))

    with store.transaction(t, write=True) as tx:
        removal.delete_user(tx, world.bob)

    with store.engine.connect() as conn:
        def count(table, *cond):  # type: ignore[no-untyped-def]
            return conn.execute(select(func.count()).select_from(table).where(*cond)).scalar_one()
        assert count(s.folders, s.folders.c.owner_id == world.bob) == 0
        assert count(s.objects, s.objects.c.id == bob_gab.object_id) == 0
        assert count(s.permissions, s.permissions.c.is_group.is_(False), s.permissions.c.entity == world.bob) == 0
        assert count(s.group_members, s.group_members.c.user_id == world.bob) == 0
        assert count(s.participants, s.participants.c.kind == 1, s.participants.c.entity == world.bob) == 0
        assert count(s.addresses, s.addresses.c.user_id == world.bob) == 0
    with world.as_user(world.alice) as session:
        kept = session.get_object(alice_contacts, dlist.object_id)
        assert [(m.email, m.contact_id) for m in kept.distribution_list] == [("bob@example.com", None), ("x@y.org", None)]
        assert [p.entity for p in session.get_object(meeting.folder_id, meeting.object_id).participants] == [world.alice]
        assert world.bob not in {c.user_id for c in session.list_objects(GLOBAL_ADDRESS_BOOK)}
    with pytest.raises(AuthenticationFailed):
        store.authenticate("bob", "bob-pw", Protocol.DAV)
