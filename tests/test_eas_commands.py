"""GetItemEstimate, MoveItems, ItemOperations, Search, ResolveRecipients, MeetingResponse, Settings,
ValidateCert and SendMail over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from oxsync.model import Appointment, Confirmation, Contact, Module, Participant, ParticipantKind
from oxsync.model.folder import PRIVATE_ROOT
from tests.eas_client import client, collection, items
from tests.live import wait_until


@pytest.fixture
def running(live_server, store, world, sink):  # type: ignore[no-untyped-def]
    # a poll period far beyond the test: mail goes out because queueing it wakes the worker
    return live_server(store, setup=install, eas={"smtp_smarthost": f"127.0.0.1:{sink.port}"},
                       outbound={"poll_seconds": 3600.0})


@pytest.fixture
def phone(running):  # type: ignore[no-untyped-def]
    c = client(running, version="16.1")
    c.provision()
    return c


def test_get_item_estimate_and_move_items(phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        ids = [session.create_object(folder, Contact(first_name=f"N{i}")).object_id for i in range(4)]
        other = session.create_folder(PRIVATE_ROOT, "Archive", Module.CONTACT).folder.id
    cid = phone.folder_of_type(9)
    def estimate(key: str) -> tuple[str, str | None]:  # noqa: E306
        reply = phone.post("GetItemEstimate", E("GetItemEstimate:GetItemEstimate", E("GetItemEstimate:Collections", E(
            "GetItemEstimate:Collection", E("AirSync:SyncKey", key), E("GetItemEstimate:CollectionId", cid)))))
        response = reply.body.find("GetItemEstimate:Response")
        coll = response.find("GetItemEstimate:Collection")
        return response.findtext("GetItemEstimate:Status"), coll.findtext("GetItemEstimate:Estimate") if coll else None
    assert estimate("0")[0] == "3"
    phone.sync(cid, "0")
    assert estimate(phone.keys[cid]) == ("1", "4")
    assert estimate(phone.keys[cid]) == ("1", "4")  # does not advance anything
    assert len(items(phone.sync(cid))) == 4
    phone.sync(str(other), "0")
    phone.sync(str(other))
    reply = phone.post("MoveItems", E("Move:MoveItems", E("Move:Move", E("Move:SrcMsgId", str(ids[0])),
                                                          E("Move:SrcFldId", cid), E("Move:DstFldId", str(other))),
                                      E("Move:Move", E("Move:SrcMsgId", "999999"), E("Move:SrcFldId", cid),
                                        E("Move:DstFldId", str(other)))))
    responses = reply.body.findall("Move:Response")
    assert responses[0].findtext("Move:Status") == "3" and responses[0].findtext("Move:DstMsgId") == str(ids[0])
    assert responses[1].findtext("Move:Status") == "1"
    dest = phone.sync(str(other))
    assert str(ids[0]) not in items(dest, "Add")  # the device already has it there
    src = phone.sync(cid)
    assert collection(src).find("AirSync:Commands") is None  # no Delete echo either


def test_item_operations_fetch_item_and_attachment(phone, world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        obj = session.create_object(folder, Contact(first_name="Ada", note="x" * 500))
        meta = session.add_attachment(folder, obj.object_id, "cv.pdf", "application/pdf", b"%PDF-1.4 data")
    cid = phone.folder_of_type(9)
    phone.sync(cid, "0")
    data = items(phone.sync(cid, options=[E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "1"),
                                            E("AirSyncBase:TruncationSize", "100"))]))[str(obj.object_id)]
    body = data.find("AirSyncBase:Body")
    assert body.findtext("AirSyncBase:Truncated") == "1" and len(body.findtext("AirSyncBase:Data")) == 100
    reference = data.find("AirSyncBase:Attachments").find("AirSyncBase:Attachment").findtext("AirSyncBase:FileReference")
    reply = phone.post("ItemOperations", E("ItemOperations:ItemOperations",
                                           E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                                             E("AirSync:CollectionId", cid), E("AirSync:ServerId", str(obj.object_id))),
                                           E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                                             E("AirSyncBase:FileReference", reference)),
                                           E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                                             E("AirSyncBase:FileReference", "1:2:3"))))
    fetches = reply.body.find("ItemOperations:Response").findall("ItemOperations:Fetch")
    props = fetches[0].find("ItemOperations:Properties")
    assert props.findtext("Contacts:FirstName") == "Ada" and len(props.find("AirSyncBase:Body").findtext("AirSyncBase:Data")) == 500
    import base64
    assert base64.b64decode(fetches[1].find("ItemOperations:Properties").findtext("ItemOperations:Data")) == b"%PDF-1.4 data"
    assert fetches[2].findtext("ItemOperations:Status") == "15"
    assert meta.id


def test_search_gal_and_resolve_recipients(phone, world) -> None:  # type: ignore[no-untyped-def]
    reply = phone.post("Search", E("Search:Search", E("Search:Store", E("Search:Name", "GAL"), E("Search:Query", "Durand"),
                                                      E("Search:Options", E("Search:Range", "0-9"), E("Search:Picture")))))
    store = reply.body.find("Search:Response").find("Search:Store")
    results = store.findall("Search:Result")
    assert store.findtext("Search:Status") == "1" and store.findtext("Search:Total") == "1"
    props = results[0].find("Search:Properties")
    assert props.findtext("GAL:LastName") == "Durand" and props.findtext("GAL:Alias") == "bob"
    assert props.find("GAL:Picture").findtext("GAL:Status") == "173"
    with world.as_user(world.bob, write=True) as session:  # bob sets his own photo in the address book
        entry = session.get_object(6, session.me().contact_id)
        entry.image1 = b"\xff\xd8\xffphoto-bytes"
        session.update_object(6, entry)
    def picture(max_size: str) -> E:  # noqa: E306
        reply = phone.post("Search", E("Search:Search", E("Search:Store", E("Search:Name", "GAL"), E("Search:Query", "Durand"),
                                                          E("Search:Options", E("Search:Range", "0-9"), E(
                                                              "Search:Picture", E("Search:MaxSize", max_size))))))
        return reply.body.find("Search:Response").find("Search:Store").find("Search:Result").find(
            "Search:Properties").find("GAL:Picture")
    import base64 as b64
    assert b64.b64decode(picture("1000").findtext("GAL:Data")) == b"\xff\xd8\xffphoto-bytes"
    assert picture("4").findtext("GAL:Status") == "174"
    none = phone.post("Search", E("Search:Search", E("Search:Store", E("Search:Name", "GAL"), E("Search:Query", "zzzz"))))
    assert none.body.find("Search:Response").find("Search:Store").findtext("Search:Total") == "0"
    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    start = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    with world.as_user(world.bob, write=True) as session:
        session.create_object(bob_cal, Appointment(title="busy", start_date=start + timedelta(hours=1),
                                                   end_date=start + timedelta(hours=2)))
    reply = phone.post("ResolveRecipients", E("ResolveRecipients:ResolveRecipients",
                                              E("ResolveRecipients:To", "bob@example.com"),
                                              E("ResolveRecipients:To", "nobody@nowhere.invalid"),
                                              E("ResolveRecipients:Options", E("ResolveRecipients:Availability",
                                                E("ResolveRecipients:StartTime", "2026-09-01T08:00:00.000Z"),
                                                E("ResolveRecipients:EndTime", "2026-09-01T11:00:00.000Z")))))
    first, second = reply.body.findall("ResolveRecipients:Response")
    recipient = first.find("ResolveRecipients:Recipient")
    assert recipient.findtext("ResolveRecipients:EmailAddress") == "bob@example.com"
    merged = recipient.find("ResolveRecipients:Availability").findtext("ResolveRecipients:MergedFreeBusy")
    assert merged == "002200"
    assert second.findtext("ResolveRecipients:Status") == "4"


def test_meeting_response_confirms_in_store(phone, world) -> None:  # type: ignore[no-untyped-def]
    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    start = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    with world.as_user(world.bob, write=True) as session:
        meeting = session.create_object(bob_cal, Appointment(
            title="Review", start_date=start, end_date=start + timedelta(hours=1), ignore_conflicts=True,
            participants=[Participant(ParticipantKind.USER, world.bob), Participant(ParticipantKind.USER, world.alice)]))
    cal = phone.folder_of_type(8)
    reply = phone.post("MeetingResponse", E("MeetingResponse:MeetingResponse", E(
        "MeetingResponse:Request", E("MeetingResponse:UserResponse", "2"), E("MeetingResponse:CollectionId", cal),
        E("MeetingResponse:RequestId", str(meeting.object_id)))))
    result = reply.body.find("MeetingResponse:Result")
    assert result.findtext("MeetingResponse:Status") == "1" and result.findtext("MeetingResponse:CalendarId") == str(meeting.object_id)
    with world.as_user(world.alice) as session:
        got = session.get_object(int(cal), meeting.object_id)
    mine = next(p for p in got.participants if p.kind == ParticipantKind.USER and p.entity == world.alice)
    assert mine.confirmation == Confirmation.TENTATIVE
    bad = phone.post("MeetingResponse", E("MeetingResponse:MeetingResponse", E(
        "MeetingResponse:Request", E("MeetingResponse:UserResponse", "1"), E("MeetingResponse:CollectionId", cal),
        E("MeetingResponse:RequestId", "987654"))))
    assert bad.body.find("MeetingResponse:Result").findtext("MeetingResponse:Status") == "2"


def test_settings_oof_device_and_user_information(phone, world) -> None:  # type: ignore[no-untyped-def]
    S = "Settings"
    set_oof = phone.post("Settings", E(f"{S}:Settings", E(f"{S}:Oof", E(f"{S}:Set", E(f"{S}:OofState", "1"),
        E(f"{S}:OofMessage", E(f"{S}:AppliesToInternal"), E(f"{S}:Enabled", "1"), E(f"{S}:ReplyMessage", "Away"),
          E(f"{S}:BodyType", "Text"))))))
    assert set_oof.body.find(f"{S}:Oof").findtext(f"{S}:Status") == "1"
    got = phone.post("Settings", E(f"{S}:Settings", E(f"{S}:Oof", E(f"{S}:Get", E(f"{S}:BodyType", "Text"))),
                                   E(f"{S}:DeviceInformation", E(f"{S}:Set", E(f"{S}:Model", "iPad13"))),
                                   E(f"{S}:UserInformation", E(f"{S}:Get"))))
    oof = got.body.find(f"{S}:Oof").find(f"{S}:Get")
    assert oof.findtext(f"{S}:OofState") == "1" and oof.find(f"{S}:OofMessage").findtext(f"{S}:ReplyMessage") == "Away"
    account = got.body.find(f"{S}:UserInformation").find(f"{S}:Get").find(f"{S}:Accounts").find(f"{S}:Account")
    assert account.find(f"{S}:EmailAddresses").findtext(f"{S}:PrimarySmtpAddress") == "alice@example.com"
    with world.as_user(world.alice) as session:
        assert session.get_settings()["eas_oof"]["state"] == "1"
        assert session.get_state(phone.device_id, "")["info"]["model"] == "iPad13"
    cert = phone.post("ValidateCert", E("ValidateCert:ValidateCert", E("ValidateCert:Certificates",
                                                                       E("ValidateCert:Certificate", "AAAA"))))
    assert cert.body.find("ValidateCert:Certificate").findtext("ValidateCert:Status") == "10"  # not a certificate


def test_sendmail_relay_idempotent_and_unconfigured(phone, sink, live_server, store) -> None:  # type: ignore[no-untyped-def]
    mime = (b"From: alice@example.com\r\nTo: friend@elsewhere.org\r\nBcc: hidden@elsewhere.org\r\n"
            b"Subject: hi\r\n\r\nHello\r\n")
    body = E("ComposeMail:SendMail", E("ComposeMail:ClientId", "m1"), E("ComposeMail:SaveInSentItems"),
             E("ComposeMail:Mime", mime))
    reply = phone.post("SendMail", body)
    assert reply.status == 200 and reply.raw == b""
    first = sink.wait_for(1)[0]
    assert sorted(first.recipients) == ["friend@elsewhere.org", "hidden@elsewhere.org"]
    assert first.sender == "alice@example.com"
    assert b"Bcc" not in first.data and b"Hello" in first.data and first.parsed()["Message-ID"]
    again = phone.post("SendMail", body)
    assert again.text("ComposeMail:Status") == "118"
    reply_body = E("ComposeMail:SmartReply", E("ComposeMail:ClientId", "r1"),
                   E("ComposeMail:Source", E("ComposeMail:FolderId", "m2"), E("ComposeMail:ItemId", "1")),
                   E("ComposeMail:Mime", mime.replace(b"Subject: hi", b"Subject: Re: hi")))
    assert phone.post("SmartReply", reply_body).raw == b""
    assert b"Re: hi" in sink.wait_for(2)[1].data
    nobody = phone.post("SendMail", E("ComposeMail:SendMail", E("ComposeMail:ClientId", "m2"),
                                      E("ComposeMail:Mime", b"Subject: x\r\n\r\nbody\r\n")))
    assert nobody.text("ComposeMail:Status") == "119"
    assert len(sink.messages) == 2  # the replayed m1 was never sent a second time
    # the relay has the mail before the worker records it as sent: wait (bounded) for the record
    assert wait_until(lambda: [m.state for m in store.outbound.list()] == ["sent", "sent"]), store.outbound.list()
    bare = live_server(store, setup=install)
    other = client(bare, version="14.1", device_id="other")
    other.provision()
    refused = other.post("SendMail", body)
    assert refused.text("ComposeMail:Status") == "120"
    old = client(bare, version="12.1", device_id="old")
    old.provision()
    assert old.post("SendMail", mime, params="&SaveInSent=T", headers={"Content-Type": "message/rfc822"}).status == 500

def test_send_as_aliases_over_eas(phone, sink, store, world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.store import sending

    S = "Settings"
    mime = b"From: Sales <sales@example.com>\r\nTo: client@elsewhere.org\r\nSubject: offer\r\n\r\nPrices\r\n"

    def send(client_id: str):  # type: ignore[no-untyped-def]
        return phone.post("SendMail", E("ComposeMail:SendMail", E("ComposeMail:ClientId", client_id),
                                        E("ComposeMail:Mime", mime)))

    def addresses() -> list[str]:
        got = phone.post("Settings", E(f"{S}:Settings", E(f"{S}:UserInformation", E(f"{S}:Get"))))
        emails = got.body.find(f"{S}:UserInformation").find(f"{S}:Get").find(f"{S}:Accounts").find(
            f"{S}:Account").find(f"{S}:EmailAddresses")
        return [e.text for e in emails.findall(f"{S}:SMTPAddress")]

    assert addresses() == ["alice@example.com"]
    assert send("s1").text("ComposeMail:Status") == "130"  # not declared: refused, nothing queued
    assert store.outbound.list() == []
    with store.transaction(world.tenant_id, write=True) as tx:
        sending.add_send_as(tx, world.alice, "sales@example.com")
    assert addresses() == ["alice@example.com", "sales@example.com"]
    assert send("s2").raw == b""
    got = sink.wait_for(1)[0]
    assert got.sender == "sales@example.com" and got.parsed()["From"].addresses[0].addr_spec == "sales@example.com"
