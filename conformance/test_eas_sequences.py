"""Scripted first-contact sequences of real clients (MS-ASCMD; iOS, Android, Outlook), over real HTTP.

Each step checks what the client would act on; both sequences end in a push loop (Ping, change,
Ping answers, Sync fetches the change, Ping again).
"""

from __future__ import annotations

import threading
import time

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from oxsync.model import Contact, Module
from tests.eas_client import EasClient, collection, items
from tests.live import http_request

EAS = "/Microsoft-Server-ActiveSync"


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        for i in range(60):
            session.create_object(folder, Contact(first_name=f"C{i:02d}", last_name="Seed"))
    return live_server(store, setup=install, eas={"min_heartbeat_seconds": 1})


def parked(running, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    for _ in range(1000):
        if len(running.service.eas.parked) >= n:
            return
        time.sleep(0.01)
    raise AssertionError("Ping never parked")


def ping_loop(running, phone: EasClient, world, folder: str, heartbeat: int) -> None:  # type: ignore[no-untyped-def]
    body = E("Ping:Ping", E("Ping:HeartbeatInterval", str(heartbeat)),
             E("Ping:Folders", E("Ping:Folder", E("Ping:Id", folder), E("Ping:Class", "Contacts"))))
    out: dict[str, object] = {}
    t = threading.Thread(target=lambda: out.setdefault("r", phone.post("Ping", body)))
    t.start()
    parked(running)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(int(folder), Contact(first_name="Pushed"))
    t.join(30)
    assert out["r"].text("Ping:Status") == "2"
    got = items(phone.sync(folder))
    assert [d.findtext("Contacts:FirstName") for d in got.values()] == ["Pushed"]
    # next Ping: nothing changed since, parks again; a newer Ping from the device replaces it
    first: dict[str, object] = {}
    t1 = threading.Thread(target=lambda: first.setdefault("r", phone.post("Ping", None)))
    t1.start()
    parked(running)
    short = E("Ping:Ping", E("Ping:HeartbeatInterval", "1"),
              E("Ping:Folders", E("Ping:Folder", E("Ping:Id", folder), E("Ping:Class", "Contacts"))))
    assert phone.post("Ping", short).text("Ping:Status") == "1"
    t1.join(30)
    assert first["r"].text("Ping:Status") == "1"


def test_ios_first_contact(running, world) -> None:  # type: ignore[no-untyped-def]
    phone = EasClient(running.port, "alice", "alice-pw", device_id="ab12cd34ef56ab12cd34ef56ab", device_type="iPhone",
                      version="16.1", user_agent="Apple-iPhone15C3/2101.51")
    status, headers, _ = http_request(running.port, "OPTIONS", EAS, auth=("alice", "alice-pw"))
    assert status == 200 and "16.1" in headers["ms-asprotocolversions"].split(",")
    gate = phone.post("Settings", E("Settings:Settings", E("Settings:UserInformation", E("Settings:Get"))))
    assert gate.text("Settings:Status") == "142"
    phone.provision()
    key, folders = phone.folder_sync("0")
    contacts = next(k for k, v in folders.items() if v["type"] == "9")
    calendar = next(k for k, v in folders.items() if v["type"] == "8")
    info = phone.post("Settings", E("Settings:Settings",
                                    E("Settings:DeviceInformation", E("Settings:Set", E("Settings:Model", "iPhone15,3"))),
                                    E("Settings:UserInformation", E("Settings:Get"))))
    assert info.text("Settings:DeviceInformation/Settings:Status") == "1"
    # Sync 0 for two collections in one request, then the duplicate SyncKey 0 iOS sends seconds later
    both = E("AirSync:Sync", E("AirSync:Collections", *[
        E("AirSync:Collection", E("AirSync:SyncKey", "0"), E("AirSync:CollectionId", c)) for c in (contacts, calendar)]))
    first = phone.post("Sync", both)
    second = phone.post("Sync", both)
    keys = {c.findtext("AirSync:CollectionId"): c.findtext("AirSync:SyncKey")
            for c in second.body.find("AirSync:Collections")}
    assert len(first.body.find("AirSync:Collections").children) == 2 and all(keys.values())
    phone.keys.update(keys)
    seen = 0
    for _ in range(10):
        reply = phone.sync(contacts, window=25, options=[E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "1"),
                                                             E("AirSyncBase:TruncationSize", "200"))])
        seen += len(items(reply))
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    assert seen == 60
    empty = phone.post("Sync", b"")
    assert empty.status == 200 and all(c.findtext("AirSync:Status") == "1"
                                       for c in empty.body.find("AirSync:Collections"))
    ping_loop(running, phone, world, contacts, 900)
    assert key


def test_android_first_contact(running, world) -> None:  # type: ignore[no-untyped-def]
    status, headers, _ = http_request(running.port, "OPTIONS", EAS, auth=("alice", "alice-pw"))
    assert headers.get("ms-asprotocolcommands") and headers.get("ms-asprotocolversions")
    validate = EasClient(running.port, "alice", "alice-pw", device_id="validate", device_type="Android",
                         version="14.1", user_agent="Android-Mail/2023.01")
    reply = validate.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")))
    assert reply.text("FolderHierarchy:Status") == "142"
    validate.provision()
    assert validate.folder_sync("0")[1]
    with world.as_user(world.alice) as session:
        assert "validate" not in session.device_ids()  # never persisted
    legacy = EasClient(running.port, "alice", "alice-pw", device_id="androidc1234", device_type="Android", version="12.1")
    assert legacy.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0"))).status == 449
    phone = EasClient(running.port, "alice", "alice-pw", device_id="androidc1234", device_type="Android",
                      version="14.1", user_agent="Android-Mail/2023.01")
    phone.provision()
    _, folders = phone.folder_sync("0")
    contacts = next(k for k, v in folders.items() if v["type"] == "9")
    phone.sync(contacts, "0")
    rounds = 0
    total = 0
    while True:
        reply = phone.sync(contacts, window=5)
        total += len(items(reply))
        rounds += 1
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    assert total == 60 and rounds == 12
    ping_loop(running, phone, world, contacts, 470)
