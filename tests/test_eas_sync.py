"""ActiveSync Sync: two-way contacts, windowing, replay, conflicts, filters, empty Sync, Fetch."""

from __future__ import annotations

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from oxsync.model import Contact, Module
from tests.eas_client import client, collection, items, server_ids


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install)


@pytest.fixture
def phone(running):  # type: ignore[no-untyped-def]
    c = client(running)
    c.provision()
    return c


def add_contacts(world, n: int, user=None) -> list[int]:  # type: ignore[no-untyped-def]
    user = user or world.alice
    folder = world.default_folder(user, Module.CONTACT)
    with world.as_user(user, write=True) as session:
        return [session.create_object(folder, Contact(first_name=f"F{i}", last_name=f"L{i:03d}",
                                                      email1=f"p{i}@example.org")).object_id for i in range(n)]


def contact_add(client_id: str, first: str, last: str) -> E:  # type: ignore[valid-type]
    return E("AirSync:Add", E("AirSync:ClientId", client_id), E("AirSync:ApplicationData",
                                                                 E("Contacts:FirstName", first), E("Contacts:LastName", last),
                                                                 E("Contacts:Email1Address", f'"{first}" <{first.lower()}@example.net>')))


def test_initial_windowed_sync_and_more_available(phone, world) -> None:  # type: ignore[no-untyped-def]
    ids = add_contacts(world, 7)
    folder = phone.folder_of_type(9)
    first = phone.sync(folder, "0")
    assert collection(first).findtext("AirSync:Status") == "1" and not items(first)
    seen: list[str] = []
    rounds = 0
    while True:
        reply = phone.sync(folder, window=3)
        rounds += 1
        got = items(reply)
        assert len(got) <= 3
        seen += list(got)
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    assert sorted(seen) == sorted(str(i) for i in ids) and rounds == 3
    with world.as_user(world.alice) as session:
        data = session.get_object(world.default_folder(world.alice, Module.CONTACT), ids[0])
    assert data.email1 == "p0@example.org"
    quiet = phone.sync(folder)
    assert not items(quiet) and collection(quiet).findtext("AirSync:SyncKey") == phone.keys[folder]


def test_client_add_change_delete_and_replayed_add(phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    phone.sync(folder)
    key_before = phone.keys[folder]
    reply = phone.sync(folder, commands=[contact_add("c1", "Grace", "Hopper")], get_changes=False)
    response = collection(reply).find("AirSync:Responses").find("AirSync:Add")
    assert response.findtext("AirSync:Status") == "1"
    server_id = response.findtext("AirSync:ServerId")
    with world.as_user(world.alice) as session:
        stored = session.get_object(int(folder), int(server_id))
    assert stored.first_name == "Grace" and stored.email1 == "grace@example.net"
    # the response was "lost": the client replays the previous key with the same Add
    replay = phone.sync(folder, key_before, commands=[contact_add("c1", "Grace", "Hopper")], get_changes=False)
    assert collection(replay).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId") == server_id
    assert collection(replay).findtext("AirSync:SyncKey") == phone.keys[folder]
    with world.as_user(world.alice) as session:
        assert len([o for o in session.list_objects(int(folder)) if o.first_name == "Grace"]) == 1
    # same ClientId again with the current key: still the same item
    again = phone.sync(folder, commands=[contact_add("c1", "Grace", "Hopper")], get_changes=False)
    assert collection(again).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId") == server_id
    # the device's own Add is not echoed back
    assert not items(phone.sync(folder))
    change = E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:ApplicationData",
                                                                      E("Contacts:FirstName", "Grace B."),
                                                                      E("Contacts:LastName", "Hopper")))
    reply = phone.sync(folder, commands=[change])
    assert collection(reply).find("AirSync:Responses") is None
    with world.as_user(world.alice) as session:
        stored = session.get_object(int(folder), int(server_id))
    assert stored.first_name == "Grace B." and stored.email1 == ""  # absent + no Supported = deleted
    reply = phone.sync(folder, commands=[E("AirSync:Delete", E("AirSync:ServerId", server_id))])
    with world.as_user(world.alice) as session:
        assert all(o.object_id != int(server_id) for o in session.list_objects(int(folder)))
    missing = phone.sync(folder, commands=[E("AirSync:Change", E("AirSync:ServerId", "99999999"),
                                             E("AirSync:ApplicationData", E("Contacts:FirstName", "x")))])
    assert collection(missing).find("AirSync:Responses").find("AirSync:Change").findtext("AirSync:Status") == "8"


def test_supported_ghosting_keeps_unlisted_fields(phone, world) -> None:  # type: ignore[no-untyped-def]
    [cid] = add_contacts(world, 1)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0", extra=None)
    key0 = phone.post("Sync", E("AirSync:Sync", E("AirSync:Collections", E(
        "AirSync:Collection", E("AirSync:SyncKey", "0"), E("AirSync:CollectionId", folder),
        E("AirSync:Supported", E("Contacts:FirstName"), E("Contacts:LastName"))))))
    phone.keys[folder] = collection(key0).findtext("AirSync:SyncKey")
    phone.sync(folder)
    change = E("AirSync:Change", E("AirSync:ServerId", str(cid)), E("AirSync:ApplicationData",
                                                                     E("Contacts:FirstName", "Renamed")))
    phone.sync(folder, commands=[change])
    with world.as_user(world.alice) as session:
        stored = session.get_object(int(folder), cid)
    assert stored.first_name == "Renamed" and stored.last_name == "" and stored.email1 == "p0@example.org"


def test_server_changes_and_deletes_reach_the_device(phone, world) -> None:  # type: ignore[no-untyped-def]
    ids = add_contacts(world, 3)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    phone.sync(folder)
    with world.as_user(world.alice, write=True) as session:
        obj = session.get_object(int(folder), ids[0])
        obj.first_name = "Changed"
        session.update_object(int(folder), obj)
        session.delete_object(int(folder), ids[1])
    reply = phone.sync(folder)
    changed = items(reply, "Change")
    assert list(changed) == [str(ids[0])]
    assert changed[str(ids[0])].findtext("Contacts:FirstName") == "Changed"
    assert server_ids(reply, "Delete") == [str(ids[1])]


def test_conflict_server_wins_then_client_wins(phone, world) -> None:  # type: ignore[no-untyped-def]
    [cid] = add_contacts(world, 1)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    phone.sync(folder)
    with world.as_user(world.alice, write=True) as session:
        obj = session.get_object(int(folder), cid)
        obj.first_name = "ServerSide"
        session.update_object(int(folder), obj)
    change = E("AirSync:Change", E("AirSync:ServerId", str(cid)), E("AirSync:ApplicationData",
                                                                     E("Contacts:FirstName", "DeviceSide")))
    reply = phone.sync(folder, commands=[change])
    assert collection(reply).find("AirSync:Responses").find("AirSync:Change").findtext("AirSync:Status") == "7"
    assert items(reply, "Change")[str(cid)].findtext("Contacts:FirstName") == "ServerSide"
    with world.as_user(world.alice, write=True) as session:
        obj = session.get_object(int(folder), cid)
        obj.first_name = "ServerAgain"
        session.update_object(int(folder), obj)
    reply = phone.sync(folder, commands=[change], options=[E("AirSync:Conflict", "0")])
    with world.as_user(world.alice) as session:
        assert session.get_object(int(folder), cid).first_name == "DeviceSide"


def test_bogus_key_unknown_collection_and_duplicate_key0(phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    assert collection(phone.sync(folder, "{abc}3")).findtext("AirSync:Status") == "3"
    assert collection(phone.sync("424242", "0")).findtext("AirSync:Status") == "12"
    assert collection(phone.sync("../etc", "0")).findtext("AirSync:Status") == "12"
    first = collection(phone.sync(folder, "0")).findtext("AirSync:SyncKey")
    second = collection(phone.sync(folder, "0")).findtext("AirSync:SyncKey")
    assert first and second == first  # a duplicate SyncKey 0 joins the first one
    add_contacts(world, 2)
    assert len(items(phone.sync(folder, second))) == 2
    current = phone.keys[folder]
    third = collection(phone.sync(folder, "0")).findtext("AirSync:SyncKey")
    assert third not in (first, current)  # after items were sent, 0 really starts over
    assert len(items(phone.sync(folder, third))) == 2


def test_empty_and_partial_sync_reuse_cached_request(phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    fresh = client(type("R", (), {"port": phone.port})(), device_id="nocache")
    fresh.provision()
    reply = fresh.post("Sync", b"")
    assert reply.text("AirSync:Status") == "13"
    phone.sync(folder, "0")
    phone.sync(folder)
    add_contacts(world, 2)
    reply = phone.post("Sync", b"")
    assert len(items(reply)) == 2
    partial = phone.post("Sync", E("AirSync:Sync", E("AirSync:Partial")))
    assert collection(partial).findtext("AirSync:Status") == "1"


def test_fetch_and_private_items_of_others(phone, world, store) -> None:  # type: ignore[no-untyped-def]
    from oxsync.model import Permission, Rights
    [cid] = add_contacts(world, 1)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    reply = phone.sync(folder, commands=[E("AirSync:Fetch", E("AirSync:ServerId", str(cid)))], get_changes=False)
    fetched = collection(reply).find("AirSync:Responses").find("AirSync:Fetch")
    assert fetched.findtext("AirSync:Status") == "1"
    assert fetched.find("AirSync:ApplicationData").findtext("Contacts:FirstName") == "F0"
    # bob shares his contacts with alice; his private contact must never reach alice's phone
    bob_folder = world.default_folder(world.bob, Module.CONTACT)
    with world.as_user(world.bob, write=True) as session:
        perms = session.get_folder(bob_folder).folder.permissions
        session.set_permissions(bob_folder, perms + [Permission(world.alice, False, Rights(folder=2, read=4))])
        session.create_object(bob_folder, Contact(first_name="Public", last_name="Bob"))
        session.create_object(bob_folder, Contact(first_name="Secret", last_name="Bob", private_flag=True))
    _, folders = phone.folder_sync("0")
    assert str(bob_folder) in folders and folders[str(bob_folder)]["type"] == "14"
    phone.sync(str(bob_folder), "0")
    names = [d.findtext("Contacts:FirstName") for d in items(phone.sync(str(bob_folder))).values()]
    assert names == ["Public"]


def test_second_device_of_same_user_sees_first_devices_writes(running, phone, world) -> None:  # type: ignore[no-untyped-def]
    tablet = client(running, device_id="tablet01", device_type="iPad")
    tablet.provision()
    folder = phone.folder_of_type(9)
    for device in (phone, tablet):
        device.sync(folder, "0")
        device.sync(folder)
    reply = phone.sync(folder, commands=[contact_add("p1", "Linus", "Torvalds")])
    server_id = collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId")
    assert not items(phone.sync(folder))
    assert list(items(tablet.sync(folder))) == [server_id]


def test_change_during_a_windowed_pass_is_never_sent_stale(phone, world) -> None:  # type: ignore[no-untyped-def]
    ids = add_contacts(world, 5)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    first = phone.sync(folder, window=2)
    assert collection(first).find("AirSync:MoreAvailable") is not None
    with world.as_user(world.alice, write=True) as session:
        obj = session.get_object(int(folder), ids[-1])
        obj.first_name = "Edited mid-pass"
        session.update_object(int(folder), obj)
    names = {}
    for _ in range(5):
        reply = phone.sync(folder, window=2)
        names.update({k: v.findtext("Contacts:FirstName") for k, v in items(reply).items()})
        names.update({k: v.findtext("Contacts:FirstName") for k, v in items(reply, "Change").items()})
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    assert names[str(ids[-1])] == "Edited mid-pass"
