"""Device state, collection revisions, DAV resource names, search, directory and settings."""

from __future__ import annotations

import pytest

from oxsync.model import Contact, Module
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.store import accounts, principals, removal
from oxsync.store.errors import InvalidData


def test_device_state_is_per_user_and_rolls_back_with_the_transaction(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        session.put_state("iphone1", "", {"model": "iPhone"})
        session.put_state("iphone1", "21", {"key": 3})
        session.put_state("iphone1", "21", {"key": 4})
    with pytest.raises(RuntimeError), world.as_user(world.alice, write=True) as session:
        session.put_state("iphone1", "21", {"key": 5})
        raise RuntimeError("request failed after writing state")
    with world.as_user(world.alice) as session:
        assert session.get_state("iphone1", "21") == {"key": 4}
        assert session.device_ids() == ["iphone1"]
    with world.as_user(world.bob) as session:
        assert session.get_state("iphone1", "21") is None and session.device_ids() == []
    with world.as_user(world.alice, write=True) as session:
        assert session.delete_state("iphone1") == 2
    with pytest.raises(InvalidData), world.as_user(world.alice, write=True) as session:
        session.put_state("x" * 65, "", {})


def test_folder_revision_moves_on_every_change(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    other = world.default_folder(world.alice, Module.TASK)
    with world.as_user(world.alice) as session:
        first = session.folder_revision(folder)
        untouched = session.folder_revision(other)
    with world.as_user(world.alice, write=True) as session:
        c = session.create_object(folder, Contact(last_name="x"))
    with world.as_user(world.alice) as session:
        second = session.folder_revision(folder)
        assert session.folder_revision(other) == untouched
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(folder, c.object_id)
        session.update_folder(folder, color="#ff0000")
    with world.as_user(world.alice) as session:
        third = session.folder_revision(folder)
    assert first < second < third


def test_resource_names_are_kept_and_found(world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        created = session.create_object(folder, Contact(last_name="Href", resource_name="ABC-123.vcf"))
    with world.as_user(world.alice) as session:
        found = session.find_by_resource_name(folder, "ABC-123.vcf")
        assert found.object_id == created.object_id and found.resource_name == "ABC-123.vcf"
        assert session.find_by_resource_name(folder, "other.vcf") is None
    with world.as_user(world.bob) as session:  # not visible to bob
        from oxsync.store.errors import NotFound

        with pytest.raises(NotFound):
            session.find_by_resource_name(folder, "ABC-123.vcf")


def test_search_respects_rights_and_limit(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.carol) as session:
        hits = session.search_objects(GLOBAL_ADDRESS_BOOK, "MART")
        assert [c.display_name for c in hits] == ["Alice Martin"]
        assert len(session.search_objects(GLOBAL_ADDRESS_BOOK, "example.com", limit=2)) == 2
        assert session.search_objects(GLOBAL_ADDRESS_BOOK, "%") == []  # wildcards are literal
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="Hidden", private_flag=True))
        session.create_object(folder, Contact(last_name="Shown"))
    with world.as_user(world.alice) as session:
        assert sorted(c.last_name for c in session.search_objects(folder, "n")) == ["Hidden", "Shown"]


def test_directory_and_deleted_principals(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.carol) as session:
        assert [u.login for u in session.users()] == ["alice", "bob", "carol"]
        assert session.me().login == "carol"
        assert [g.name for g in session.groups()] == ["team"]
        assert session.find_principal("bob@example.com") == ("user", world.bob)
        since = session.revision()[1]
    with world.store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room1", "room1@example.com")
        removal.delete_user(tx, world.bob)
    with world.as_user(world.carol) as session:
        assert session.find_principal("room1@example.com") == ("resource", room.id)
        deleted = session.deleted_principals(since)
    assert [(kind, ident) for kind, ident, _, _ in deleted] == [("user", world.bob)]


def test_find_principals_answers_as_find_principal(world) -> None:  # type: ignore[no-untyped-def]
    """The batched lookup a CalDAV PUT makes of its ORGANIZER/ATTENDEE addresses (one statement) answers
    every key as the one-by-one lookup does: logins before addresses, users before resources."""
    with world.store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room1", "room1@example.com")
    keys = ["bob@example.com", "BOB", " carol ", "room1", "Room1@Example.com", "nobody@elsewhere.test", "alice"]
    with world.as_user(world.carol) as session:
        one_by_one = {k.strip().lower(): session.find_principal(k) for k in keys}
        assert session.find_principals(keys) == one_by_one
        assert session.find_principals(keys, uid="no-such-uid") == one_by_one  # with a write's UID: the same answers
        assert one_by_one["room1@example.com"] == ("resource", room.id) and one_by_one["bob"] == ("user", world.bob)
        assert one_by_one["nobody@elsewhere.test"] is None and session.find_principals([]) == {}
    with world.store.transaction(world.tenant_id) as tx:
        fresh = {k: accounts.find_user_id(tx, k) for k in keys}
    with world.store.transaction(world.tenant_id) as tx:  # the iTIP step asks after the parse resolved them
        principals.find_principals(tx, keys)
        assert {k: accounts.find_user_id(tx, k) for k in keys} == fresh
        assert fresh["room1"] is None and fresh["BOB"] == world.bob


def test_user_settings(world) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        session.put_settings({"oof": {"state": 1, "message": "Away"}})
    with world.as_user(world.alice) as session:
        assert session.get_settings()["oof"]["message"] == "Away"
    with world.as_user(world.bob) as session:
        assert session.get_settings() == {}
