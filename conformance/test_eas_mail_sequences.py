"""Scripted first contacts of iOS Mail and Outlook on the mail folders, over real HTTP, against a real Dovecot.

iOS: Sync 0 of Inbox, Sent and Contacts in one request and the duplicate SyncKey 0 seconds later, a
one-week window with HTML bodies truncated and MIME for S/MIME, an empty Sync reusing the cached
request, then the push loop (Ping on Inbox, LMTP delivery, Ping answers, Sync fetches it).
Outlook (16.1): FolderSync, all-or-nothing HTML bodies with a preview, a Read change and a move to a
folder it created, then a hanging Sync woken by new mail.
Android (AOSP Exchange, 14.1 and 16.0): FolderSync, Sync 0 of Inbox, GetItemEstimate with the one-week
window, windows of plain-text bodies truncated, the estimate drained to 0, then Ping woken by new mail.
"""

from __future__ import annotations

import threading
import time

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.dovecot import make_message
from tests.eas_client import EasClient, collection, items


@pytest.fixture
def running(live_server, mail):  # type: ignore[no-untyped-def]
    for i in range(30):
        mail.deliver(make_message(f"seed {i:02d}", "text " * 40))
    return live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                       eas={"min_heartbeat_seconds": 1})


def parked(running) -> None:  # type: ignore[no-untyped-def]
    for _ in range(1000):
        if len(running.service.eas.parked):
            return
        time.sleep(0.01)
    raise AssertionError("never parked")


def test_ios_mail_first_contact(running, mail) -> None:  # type: ignore[no-untyped-def]
    phone = EasClient(running.port, mail.alice_address, "alice-pw", device_id="ios0123456789abcdef",
                      device_type="iPhone", version="16.1", user_agent="Apple-iPhone15C3/2101.51")
    phone.provision()
    _, folders = phone.folder_sync("0")
    inbox = next(k for k, v in folders.items() if v["type"] == "2")
    sent = next(k for k, v in folders.items() if v["type"] == "5")
    contacts = next(k for k, v in folders.items() if v["type"] == "9")
    both = E("AirSync:Sync", E("AirSync:Collections", *[
        E("AirSync:Collection", E("AirSync:SyncKey", "0"), E("AirSync:CollectionId", c)) for c in (inbox, sent, contacts)]))
    phone.post("Sync", both)
    second = phone.post("Sync", both)
    keys = {c.findtext("AirSync:CollectionId"): c.findtext("AirSync:SyncKey")
            for c in second.body.find("AirSync:Collections")}
    assert all(keys.values()) and len(keys) == 3
    phone.keys.update(keys)
    options = [E("AirSync:FilterType", "3"), E("AirSync:MIMESupport", "1"),
               E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "2"), E("AirSyncBase:TruncationSize", "200")),
               E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "4"))]
    seen: list[str] = []
    for _ in range(10):
        reply = phone.sync(inbox, window=10, options=options)
        got = items(reply)
        seen += [d.findtext("Email:Subject") for d in got.values()]
        for data in got.values():
            body = data.find("AirSyncBase:Body")
            assert body.findtext("AirSyncBase:Type") == "2" and body.findtext("AirSyncBase:Truncated") == "1"
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    assert seen == [f"seed {i:02d}" for i in reversed(range(30))]  # newest first
    while collection(phone.sync(contacts, window=100)).find("AirSync:MoreAvailable") is not None:
        pass
    empty = phone.post("Sync", b"")
    assert empty.status == 200
    ping = E("Ping:Ping", E("Ping:HeartbeatInterval", "900"), E("Ping:Folders", *[
        E("Ping:Folder", E("Ping:Id", f), E("Ping:Class", c)) for f, c in ((inbox, "Email"), (contacts, "Contacts"))]))
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", phone.post("Ping", ping, timeout=60)))
    thread.start()
    parked(running)
    mail.deliver(make_message("pushed to ios"))
    thread.join(30)
    reply = out["r"]
    assert reply.text("Ping:Status") == "2"
    assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [inbox]
    assert [d.findtext("Email:Subject") for d in items(phone.sync(inbox, options=options)).values()] == ["pushed to ios"]


def test_outlook_mail_first_contact(running, mail) -> None:  # type: ignore[no-untyped-def]
    outlook = EasClient(running.port, mail.alice_address, "alice-pw", device_id="OUTLOOK0123456789",
                        device_type="WindowsOutlook15", version="16.1", user_agent="Outlook/16.0 (16.0.17928; x86)")
    outlook.provision()
    key, folders = outlook.folder_sync("0")
    inbox = next(k for k, v in folders.items() if v["type"] == "2")
    created = outlook.post("FolderCreate", E("FolderHierarchy:FolderCreate", E("FolderHierarchy:SyncKey", key),
                                             E("FolderHierarchy:ParentId", inbox),
                                             E("FolderHierarchy:DisplayName", "Done"),
                                             E("FolderHierarchy:Type", "12")))
    assert created.text("FolderHierarchy:Status") == "1"
    done = created.text("FolderHierarchy:ServerId")
    outlook.sync(inbox, "0")
    options = [E("AirSync:FilterType", "0"),
               E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "2"), E("AirSyncBase:TruncationSize", "51200"),
                 E("AirSyncBase:AllOrNone", "1"), E("AirSyncBase:Preview", "255"))]
    got = items(outlook.sync(inbox, window=100, options=options))
    assert len(got) == 30
    first_id, first = next(iter(got.items()))
    assert first.find("AirSyncBase:Body").findtext("AirSyncBase:Preview").startswith("text text")
    assert first.find("Email2:ConversationId") is not None
    outlook.sync(inbox, commands=[E("AirSync:Change", E("AirSync:ServerId", first_id),
                                    E("AirSync:ApplicationData", E("Email:Read", "1")))])
    moved = outlook.post("MoveItems", E("Move:MoveItems", E("Move:Move", E("Move:SrcMsgId", first_id),
                                                            E("Move:SrcFldId", inbox), E("Move:DstFldId", done))))
    assert moved.body.find("Move:Response").findtext("Move:Status") == "3"
    other = mail.imap()
    other.select_folder("INBOX/Done")
    uid = int(moved.body.find("Move:Response").findtext("Move:DstMsgId"))
    assert b"\\Seen" in other.get_flags([uid])[uid]
    other.logout()
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", outlook.sync(
        inbox, options=options, extra=[E("AirSync:Wait", "5")])))
    thread.start()
    parked(running)
    mail.deliver(make_message("for outlook"))
    thread.join(30)
    assert [d.findtext("Email:Subject") for d in items(out["r"]).values()] == ["for outlook"]


def estimate(phone, folder: str) -> str:  # type: ignore[no-untyped-def]
    reply = phone.post("GetItemEstimate", E("GetItemEstimate:GetItemEstimate", E("GetItemEstimate:Collections", E(
        "GetItemEstimate:Collection", E("AirSync:SyncKey", phone.keys[folder]), E("GetItemEstimate:CollectionId", folder),
        E("AirSync:Options", E("AirSync:FilterType", "3"))))))
    response = reply.body.find("GetItemEstimate:Response")
    assert response.findtext("GetItemEstimate:Status") == "1", reply.body
    return response.find("GetItemEstimate:Collection").findtext("GetItemEstimate:Estimate")


@pytest.mark.parametrize("version", ["14.1", "16.0"])
def test_android_mail_first_contact(running, mail, version: str) -> None:  # type: ignore[no-untyped-def]
    phone = EasClient(running.port, mail.alice_address, "alice-pw", device_id=f"androidm{version.replace('.', '')}",
                      device_type="Android", version=version, user_agent="Android-Mail/2023.01")
    phone.provision()
    _, folders = phone.folder_sync("0")
    assert {"2", "3", "4", "5", "6"} <= {v["type"] for v in folders.values()}
    inbox = next(k for k, v in folders.items() if v["type"] == "2")
    assert phone.sync(inbox, "0").status == 200 and phone.keys[inbox] != "0"
    options = [E("AirSync:FilterType", "3"),
               E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "1"), E("AirSyncBase:TruncationSize", "50"))]
    assert estimate(phone, inbox) == "30"
    seen: list[str] = []
    for _ in range(10):
        reply = phone.sync(inbox, window=10, options=options)
        got = items(reply)
        assert len(got) <= 10
        for data in got.values():
            body = data.find("AirSyncBase:Body")
            assert body.findtext("AirSyncBase:Type") == "1" and body.findtext("AirSyncBase:Truncated") == "1"
            assert len(body.findtext("AirSyncBase:Data")) <= 50
        seen += [d.findtext("Email:Subject") for d in got.values()]
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    assert seen == [f"seed {i:02d}" for i in reversed(range(30))]  # newest first, each once
    assert estimate(phone, inbox) == "0"
    ping = E("Ping:Ping", E("Ping:HeartbeatInterval", "470"), E("Ping:Folders", E(
        "Ping:Folder", E("Ping:Id", inbox), E("Ping:Class", "Email"))))
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", phone.post("Ping", ping, timeout=60)))
    thread.start()
    parked(running)
    mail.deliver(make_message("pushed to android"))
    thread.join(30)
    reply = out["r"]
    assert reply.text("Ping:Status") == "2"
    assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [inbox]
    assert [d.findtext("Email:Subject") for d in items(phone.sync(inbox, options=options)).values()] == [
        "pushed to android"]
