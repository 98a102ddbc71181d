"""Ping and hanging Sync: parked without threads, woken by commits, newest Ping per device wins."""

from __future__ import annotations

import threading

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from oxsync.model import Contact
from tests.eas_client import client, collection, items

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""Protocol-level behaviour that does not depend on the database: run once, on SQLite."""

@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install, eas={"min_heartbeat_seconds": 1})


@pytest.fixture
def phone(running):  # type: ignore[no-untyped-def]
    c = client(running)
    c.provision()
    return c


def ping_body(heartbeat: int | None, *folders: tuple[str, str]) -> E:  # type: ignore[valid-type]
    body = E("Ping:Ping")
    if heartbeat is not None:
        body.append(E("Ping:HeartbeatInterval", str(heartbeat)))
    if folders:
        body.append(E("Ping:Folders", *[E("Ping:Folder", E("Ping:Id", i), E("Ping:Class", c)) for i, c in folders]))
    return body


def in_thread(fn):  # type: ignore[no-untyped-def]
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn()))
    thread.start()
    return thread, result


def wait_parked(running, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    import time
    for _ in range(500):
        if len(running.service.eas.parked) >= n:
            return
        time.sleep(0.01)
    raise AssertionError("request was never parked")


def synced(phone, folder: str) -> None:  # type: ignore[no-untyped-def]
    phone.sync(folder, "0")
    phone.sync(folder)


def test_ping_woken_by_a_commit(running, phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    calendar = phone.folder_of_type(8)
    synced(phone, folder)
    synced(phone, calendar)
    thread, result = in_thread(lambda: phone.post("Ping", ping_body(600, (folder, "Contacts"), (calendar, "Calendar"))))
    wait_parked(running)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(int(folder), Contact(first_name="New"))
    thread.join(30)
    reply = result["value"]
    assert reply.text("Ping:Status") == "2"
    assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [folder]
    assert len(running.service.eas.parked) == 0


@SQLITE_ONLY
def test_ping_expiry_status_and_never_synced_folder(running, phone) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    reply = phone.post("Ping", ping_body(1, (folder, "Contacts")))
    assert reply.text("Ping:Status") == "2"  # never synced: the device must sync it first
    synced(phone, folder)
    assert phone.post("Ping", ping_body(1, (folder, "Contacts"))).text("Ping:Status") == "1"
    # empty Ping reuses the cached parameters
    assert phone.post("Ping", None).text("Ping:Status") == "1"


@SQLITE_ONLY
def test_ping_bad_parameters(running, phone) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    other = client(running, device_id="fresh")
    other.provision()
    assert other.post("Ping", None).text("Ping:Status") == "3"
    low = phone.post("Ping", ping_body(0, (folder, "Contacts")))
    assert low.text("Ping:Status") == "5" and low.text("Ping:HeartbeatInterval") == "1"
    high = phone.post("Ping", ping_body(99999, (folder, "Contacts")))
    assert high.text("Ping:Status") == "5" and high.text("Ping:HeartbeatInterval") == "3540"
    assert phone.post("Ping", ping_body(60, ("777777", "Contacts"))).text("Ping:Status") == "7"
    many = phone.post("Ping", ping_body(60, *[(str(i), "Contacts") for i in range(400)]))
    assert many.text("Ping:Status") == "6" and many.text("Ping:MaxFolders") == "300"


@SQLITE_ONLY
def test_newest_ping_per_device_wins(running, phone) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    synced(phone, folder)
    first, first_result = in_thread(lambda: phone.post("Ping", ping_body(600, (folder, "Contacts"))))
    wait_parked(running)
    second, second_result = in_thread(lambda: phone.post("Ping", ping_body(2, (folder, "Contacts"))))
    first.join(30)
    assert first_result["value"].text("Ping:Status") == "1"
    second.join(30)
    assert second_result["value"].text("Ping:Status") == "1"


def test_hanging_sync_woken_and_limits(running, phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = phone.folder_of_type(9)
    synced(phone, folder)
    thread, result = in_thread(lambda: phone.sync(folder, extra=[E("AirSync:HeartbeatInterval", "600")]))
    wait_parked(running)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(int(folder), Contact(first_name="Late"))
    thread.join(30)
    got = items(result["value"])
    assert [d.findtext("Contacts:FirstName") for d in got.values()] == ["Late"]
    expired = phone.sync(folder, extra=[E("AirSync:HeartbeatInterval", "1")])
    assert expired.status == 200 and expired.raw == b""
    both = phone.sync(folder, extra=[E("AirSync:Wait", "5"), E("AirSync:HeartbeatInterval", "60")])
    assert both.text("AirSync:Status") == "4"
    limit = phone.sync(folder, extra=[E("AirSync:Wait", "90")])
    assert limit.text("AirSync:Status") == "14" and limit.text("AirSync:Limit") == "59"
    assert collection(phone.sync(folder)).findtext("AirSync:Status") == "1"


@SQLITE_ONLY
def test_tenant_wide_bus_event_wakes_every_ping_of_the_tenant(running, phone, world) -> None:  # type: ignore[no-untyped-def]
    """A re-check after a lost bus connection names no folders: every waiter of that tenant must answer."""
    folder = phone.folder_of_type(9)
    synced(phone, folder)
    thread, result = in_thread(lambda: phone.post("Ping", ping_body(600, (folder, "Contacts"))))
    wait_parked(running)
    running.call(running.service.bus.publish, world.tenant_id + 1000, frozenset(), 10**6)  # another tenant
    assert len(running.service.eas.parked) == 1
    running.call(running.service.bus.publish, world.tenant_id, frozenset(), 10**6)
    thread.join(30)
    assert result["value"].text("Ping:Status") == "2"
    assert len(running.service.eas.parked) == 0
