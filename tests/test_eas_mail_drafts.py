"""Drafts over ActiveSync 16.x against a real Dovecot: Sync Add in Drafts is an IMAP APPEND with \\Draft,
a Change of its content replaces the message while the device keeps its ServerId."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.eas_client import client, collection, items


@pytest.fixture
def running(live_server, mail):  # type: ignore[no-untyped-def]
    return live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                       eas={"min_heartbeat_seconds": 1})


@pytest.fixture
def phone(running, mail):  # type: ignore[no-untyped-def]
    c = client(running, user=mail.alice_address, version="16.1")
    c.provision()
    return c


def drafts_in_imap(mail) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.select_folder("Drafts")
    got = other.fetch(other.search(), ["RFC822", "FLAGS"])
    other.logout()
    return {uid: (row[b"RFC822"], tuple(row[b"FLAGS"])) for uid, row in got.items()}


def body(kind: str, text: str) -> E:
    return E("AirSyncBase:Body", E("AirSyncBase:Type", kind), E("AirSyncBase:Data", text))


def test_draft_add_and_change_reach_imap(phone, mail) -> None:  # type: ignore[no-untyped-def]
    drafts = phone.folder_of_type(3)
    phone.sync(drafts, "0")
    phone.sync(drafts)
    reply = phone.sync(drafts, commands=[E("AirSync:Add", E("AirSync:ClientId", "c-1"), E(
        "AirSync:ApplicationData", E("Email:To", "bob@example.net"), E("Email:Subject", "plan"),
        body("1", "first words")))])
    added = collection(reply).find("AirSync:Responses").find("AirSync:Add")
    assert added.findtext("AirSync:ClientId") == "c-1" and added.findtext("AirSync:Status") == "1"
    server_id = added.findtext("AirSync:ServerId")
    stored = drafts_in_imap(mail)
    assert list(stored) == [int(server_id)]
    raw, flags = stored[int(server_id)]
    msg = message_from_bytes(raw)
    assert b"\\Draft" in flags and msg["Subject"] == "plan" and msg["To"] == "bob@example.net"
    assert mail.alice_address in msg["From"] and "first words" in msg.get_payload(decode=True).decode()
    assert items(reply) == {} and items(phone.sync(drafts)) == {}  # the device wrote it: no Add of it comes back

    reply = phone.sync(drafts, commands=[E("AirSync:Change", E("AirSync:ServerId", server_id), E(
        "AirSync:ApplicationData", body("1", "second thoughts")))])
    assert collection(reply).find("AirSync:Commands") is None and collection(reply).find("AirSync:Responses") is None
    stored = drafts_in_imap(mail)
    assert len(stored) == 1 and int(server_id) not in stored  # IMAP replaced it
    msg = message_from_bytes(next(iter(stored.values()))[0])
    assert msg["Subject"] == "plan" and "second thoughts" in msg.get_payload(decode=True).decode()
    assert items(phone.sync(drafts)) == {}  # no Add of the new version, no Delete of the old one
    assert collection(phone.sync(drafts)).find("AirSync:Commands") is None

    phone.sync(drafts, commands=[E("AirSync:Change", E("AirSync:ServerId", server_id), E(
        "AirSync:ApplicationData", E("Email:Subject", "plan B")))])  # the ServerId the device knows still works
    assert [message_from_bytes(raw)["Subject"] for raw, _ in drafts_in_imap(mail).values()] == ["plan B"]
    phone.sync(drafts, commands=[E("AirSync:Delete", E("AirSync:ServerId", server_id))])
    assert drafts_in_imap(mail) == {}


def test_draft_add_outside_drafts_or_before_16_is_refused(phone, mail) -> None:  # type: ignore[no-untyped-def]
    inbox = phone.folder_of_type(2)
    phone.sync(inbox, "0")
    reply = phone.sync(inbox, commands=[E("AirSync:Add", E("AirSync:ClientId", "c-2"), E(
        "AirSync:ApplicationData", E("Email:Subject", "nope")))])
    assert collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:Status") == "6"
    phone.version = "14.1"
    drafts = phone.folder_of_type(3)
    phone.sync(drafts, "0")
    reply = phone.sync(drafts, commands=[E("AirSync:Add", E("AirSync:ClientId", "c-3"), E(
        "AirSync:ApplicationData", E("Email:Subject", "nope")))])
    assert collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:Status") == "6"
    assert drafts_in_imap(mail) == {}


def test_draft_send_queues_it_files_it_in_sent_and_removes_it(live_server, mail) -> None:  # type: ignore[no-untyped-def]
    from tests.smtp_sink import SmtpSink

    sink = SmtpSink()
    try:
        running = live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                              outbound={"smtp_relay": f"127.0.0.1:{sink.port}", "poll_seconds": 3600.0})
        phone = client(running, user=mail.alice_address, version="16.1")
        phone.provision()
        drafts = phone.folder_of_type(3)
        phone.sync(drafts, "0")
        phone.sync(drafts)
        reply = phone.sync(drafts, commands=[E("AirSync:Add", E("AirSync:ClientId", "c-9"), E(
            "AirSync:ApplicationData", E("Email:To", "bob@example.net"), E("Email:Subject", "draft to go"),
            body("1", "written on the train")))])
        server_id = collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId")
        assert list(drafts_in_imap(mail)) == [int(server_id)]
        phone.sync(drafts, commands=[E("AirSync:Change", E("AirSync:ServerId", server_id), E(
            "AirSync:ApplicationData", E("Email2:Send")))])
        msg = sink.wait_for(1)[0].parsed()
        assert msg["Subject"] == "draft to go" and "written on the train" in msg.get_body().get_content()
        assert drafts_in_imap(mail) == {}
        other = mail.imap()
        other.select_folder("Sent", readonly=True)
        assert other.search(["SUBJECT", "draft to go"])
        other.logout()
        assert [c.findtext("AirSync:ServerId") for c in collection(phone.sync(drafts)).find(
            "AirSync:Commands").findall("AirSync:Delete")] == [server_id]
        phone.sync(drafts, commands=[E("AirSync:Change", E("AirSync:ServerId", server_id), E(
            "AirSync:ApplicationData", E("Email2:Send")))])  # gone: nothing sent twice
        assert len(sink.messages) == 1
    finally:
        sink.close()
