"""One store, three dialects: what Outlook (OX WebDAV/XML), a phone (ActiveSync) and a DAV client write
is seen by the other two, and every change reaches them within one push (Ping answer / UDP packet)."""

from __future__ import annotations

import threading

import pytest

from oxsync.dialects import install_all
from oxsync.eas.wbxml import E
from oxsync.model import Module
from tests.davhelp import Dav, event, sync_body, vcard
from tests.eas_client import client, items
from tests.oxclient import OxClient, UdpClient

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, ox={"push_coalesce_seconds": 0.0},
                          eas={"min_heartbeat_seconds": 1})
    outlook = OxClient(running.port, "alice", "alice-pw")
    outlook.propfind("folders", {"lastsync": 0})  # logs in over HTTP, so the UDP registration counts
    udp = UdpClient(running.service.ox_push.bound_port)
    assert udp.register(world.alice, world.tenant_id) == b"OK\x01"
    phone = client(running)
    phone.provision()
    phone.folder_sync()
    yield running, world, outlook, udp, phone, Dav(running.port, world)
    udp.close()


def parked_ping(running, phone, *folders: tuple[str, str]):  # type: ignore[no-untyped-def]
    """Sync the folders to a key, then park a Ping on them; returns (thread, result)."""
    for folder, _ in folders:
        phone.sync(folder, "0")
        phone.sync(folder)
    body = E("Ping:Ping", E("Ping:HeartbeatInterval", "600"), E("Ping:Folders", *[
        E("Ping:Folder", E("Ping:Id", f), E("Ping:Class", c)) for f, c in folders]))
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("reply", phone.post("Ping", body)))
    thread.start()
    for _ in range(500):
        if len(running.service.eas.parked):
            break
        threading.Event().wait(0.01)
    return thread, result


def woken_folders(thread, result) -> list[str]:  # type: ignore[no-untyped-def]
    thread.join(30)
    reply = result["reply"]
    assert reply.text("Ping:Status") == "2"
    return [f.value_text() for f in reply.body.find("Ping:Folders")]


def test_outlook_contact_reaches_phone_and_carddav(env) -> None:  # type: ignore[no-untyped-def]
    running, world, outlook, udp, phone, dav = env
    contacts = str(world.default_folder(world.alice, Module.CONTACT))
    thread, result = parked_ping(running, phone, (contacts, "Contacts"))
    [saved] = outlook.proppatch("contacts", {"folder_id": int(contacts), "first_name": "Ada", "last_name": "Lovelace",
                                             "email1": "ada@analytical.example", "company": "Analytical Engines",
                                             "phone_business": "+44 20 1234 5678"})
    assert saved.status == "200"
    assert woken_folders(thread, result) == [contacts]  # the phone's push
    assert udp.recv() == f"{contacts}\x01".encode()  # Outlook's own push
    [data] = items(phone.sync(contacts)).values()
    assert (data.findtext("Contacts:FirstName"), data.findtext("Contacts:LastName")) == ("Ada", "Lovelace")
    assert data.findtext("Contacts:Email1Address") == "ada@analytical.example"
    assert data.findtext("Contacts:CompanyName") == "Analytical Engines"
    assert data.findtext("Contacts:BusinessPhoneNumber") == "+44 20 1234 5678"
    cards = dav.report(dav.addressbook(), sync_body(props="<D:getetag/><CR:address-data/>")).text
    assert "FN:Ada Lovelace" in cards and "ada@analytical.example" in cards and "Analytical Engines" in cards


def test_caldav_event_reaches_outlook_and_phone(env) -> None:  # type: ignore[no-untyped-def]
    running, world, outlook, udp, phone, dav = env
    calendar = str(world.default_folder(world.alice, Module.CALENDAR))
    thread, result = parked_ping(running, phone, (calendar, "Calendar"))
    put = dav.put(dav.calendar() + "launch.ics", event("launch-1", "Product launch", "20270310T090000Z", "20270310T100000Z",
                                                       extra="LOCATION:Hall B\r\n"))
    assert put.status == 201
    assert woken_folders(thread, result) == [calendar]
    assert udp.recv() == f"{calendar}\x01".encode()
    [appointment] = [r for r in outlook.sync("calendar", int(calendar)) if r.text("title") == "Product launch"]
    assert appointment.text("location") == "Hall B" and appointment.text("uid") == "launch-1"
    assert appointment.int("start_date") == 1804669200000  # 2027-03-10 09:00 UTC
    [data] = items(phone.sync(calendar)).values()  # the phone speaks 14.1: Location and UID in the Calendar page
    assert (data.findtext("Calendar:Subject"), data.findtext("Calendar:Location")) == ("Product launch", "Hall B")
    assert (data.findtext("Calendar:UID"), data.findtext("Calendar:StartTime")) == ("launch-1", "20270310T090000Z")


def test_phone_task_reaches_outlook_and_caldav(env) -> None:  # type: ignore[no-untyped-def]
    running, world, outlook, udp, phone, dav = env
    tasks = str(world.default_folder(world.alice, Module.TASK))
    phone.sync(tasks, "0")
    phone.sync(tasks)
    reply = phone.sync(tasks, commands=[E("AirSync:Add", E("AirSync:ClientId", "c-1"), E("AirSync:ApplicationData",
                                         E("Tasks:Subject", "Call the bank"), E("Tasks:Importance", "2"),
                                         E("Tasks:Complete", "0")))])
    assert reply.status == 200
    assert udp.recv() == f"{tasks}\x01".encode()  # Outlook hears about the phone's write
    [task] = [r for r in outlook.sync("tasks", int(tasks)) if r.text("title") == "Call the bank"]
    assert task.int("priority") == 3
    todos = dav.report(dav.tasks(), sync_body(props="<D:getetag/><C:calendar-data/>")).text
    assert "SUMMARY:Call the bank" in todos


def test_vcard_from_dav_reaches_outlook_with_its_fields(env) -> None:  # type: ignore[no-untyped-def]
    running, world, outlook, udp, phone, dav = env
    contacts = world.default_folder(world.alice, Module.CONTACT)
    put = dav.put(dav.addressbook() + "grace.vcf", vcard("grace-1", "Grace Hopper", extra="ORG:US Navy\r\nTEL;TYPE=CELL:+1 555 0100\r\n"))
    assert put.status == 201
    assert udp.recv() == f"{contacts}\x01".encode()
    [grace] = [r for r in outlook.sync("contacts", contacts) if r.text("last_name") == "Hopper"]
    assert (grace.text("first_name"), grace.text("company"), grace.text("mobile1")) == ("Grace", "US Navy", "+1 555 0100")
