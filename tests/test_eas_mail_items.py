"""MoveItems, ItemOperations, Search, folder commands, UIDVALIDITY resets and poison mails on real IMAP folders."""

from __future__ import annotations

import base64

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.dovecot import make_message
from tests.eas_client import client, collection, items, server_ids
from tests.test_eas_mail import body_options, imap_uids, inbox_of


@pytest.fixture
def running(live_server, mail):  # type: ignore[no-untyped-def]
    return live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                       eas={"min_heartbeat_seconds": 1})


@pytest.fixture
def phone(running, mail):  # type: ignore[no-untyped-def]
    c = client(running, user=mail.alice_address)
    c.provision()
    return c


def synced(phone, folder: str) -> dict:  # type: ignore[no-untyped-def]
    phone.sync(folder, "0")
    out = {}
    while True:
        reply = phone.sync(folder, window=100, options=body_options((1, None)))
        out.update(items(reply))
        if collection(reply).find("AirSync:MoreAvailable") is None:
            return out


def folder_id(phone, name: str) -> str:  # type: ignore[no-untyped-def]
    _, folders = phone.folder_sync("0")
    return next(k for k, v in folders.items() if v["name"] == name)


def test_move_items_uses_the_copyuid_and_never_duplicates(phone, mail) -> None:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.create_folder("Archive")
    other.logout()
    mail.deliver(make_message("to archive"))
    inbox, archive = inbox_of(phone), folder_id(phone, "Archive")
    got = synced(phone, inbox)
    synced(phone, archive)
    uid = next(iter(got))
    reply = phone.post("MoveItems", E("Move:MoveItems", E("Move:Move", E("Move:SrcMsgId", uid),
                                                          E("Move:SrcFldId", inbox), E("Move:DstFldId", archive))))
    response = reply.body.find("Move:Response")
    assert response.findtext("Move:Status") == "3"
    new_uid = response.findtext("Move:DstMsgId")
    assert imap_uids(mail, "Archive") == [int(new_uid)]
    assert imap_uids(mail) == []
    source = phone.sync(inbox)
    assert collection(source).find("AirSync:Commands") is None  # the device moved it itself
    target = phone.sync(archive)
    assert collection(target).find("AirSync:Commands") is None  # never a second copy
    bad = phone.post("MoveItems", E("Move:MoveItems", E("Move:Move", E("Move:SrcMsgId", "999"),
                                                        E("Move:SrcFldId", inbox), E("Move:DstFldId", archive))))
    assert bad.body.find("Move:Response").findtext("Move:Status") == "1"


def test_moves_behind_the_phones_back_are_a_delete_and_an_add(phone, mail) -> None:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.create_folder("Later")
    other.logout()
    mail.deliver(make_message("moved elsewhere"))
    inbox, later = inbox_of(phone), folder_id(phone, "Later")
    uid = next(iter(synced(phone, inbox)))
    synced(phone, later)
    other = mail.imap()
    other.select_folder("INBOX")
    other.move([int(uid)], "Later")
    other.logout()
    assert server_ids(phone.sync(inbox), "Delete") == [uid]
    assert [d.findtext("Email:Subject") for d in items(phone.sync(later)).values()] == ["moved elsewhere"]


def test_item_operations_fetches_a_mail_and_an_attachment(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("with file", "see attached", attachment=("data.bin", bytes(range(256)))))
    inbox = inbox_of(phone)
    uid, data = next(iter(synced(phone, inbox).items()))
    reference = data.find("AirSyncBase:Attachments").find("AirSyncBase:Attachment").findtext(
        "AirSyncBase:FileReference")
    reply = phone.post("ItemOperations", E("ItemOperations:ItemOperations",
                                           E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                                             E("AirSync:CollectionId", inbox), E("AirSync:ServerId", uid),
                                             E("ItemOperations:Options", E("AirSync:MIMESupport", "2"),
                                               E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "4")))),
                                           E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                                             E("AirSyncBase:FileReference", reference))))
    fetched = reply.body.find("ItemOperations:Response").findall("ItemOperations:Fetch")
    assert fetched[0].findtext("ItemOperations:Status") == "1"
    body = fetched[0].find("ItemOperations:Properties").find("AirSyncBase:Body")
    assert body.findtext("AirSyncBase:Type") == "4" and "Subject: with file" in body.findtext("AirSyncBase:Data")
    assert fetched[1].findtext("ItemOperations:Status") == "1"
    raw = fetched[1].find("ItemOperations:Properties").findtext("ItemOperations:Data")
    assert base64.b64decode(raw) == bytes(range(256))
    other = mail.imap()
    other.select_folder("INBOX")
    assert b"\\Seen" not in other.get_flags([int(uid)])[int(uid)]  # fetching never marks it read
    other.logout()


def test_empty_trash(phone, mail) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        mail.deliver(make_message(f"junk {i}"))
    other = mail.imap()
    other.select_folder("INBOX")
    other.move(other.search(), "Trash")
    other.logout()
    trash = phone.folder_of_type(4)
    reply = phone.post("ItemOperations", E("ItemOperations:ItemOperations", E(
        "ItemOperations:EmptyFolderContents", E("AirSync:CollectionId", trash))))
    assert reply.body.find("ItemOperations:Response").find("ItemOperations:EmptyFolderContents").findtext(
        "ItemOperations:Status") == "1"
    assert imap_uids(mail, "Trash") == []


def test_search_mailbox_by_subject_and_sender_newest_first(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("quarterly report", sender="Carl <carl@example.net>"))
    mail.deliver(make_message("lunch"))
    mail.deliver(make_message("report again"))
    inbox = inbox_of(phone)

    def search(text: str, rng: str = "0-9") -> list[str]:
        reply = phone.post("Search", E("Search:Search", E("Search:Store", E("Search:Name", "Mailbox"), E(
            "Search:Query", E("Search:And", E("AirSync:Class", "Email"), E("AirSync:CollectionId", inbox),
                              E("Search:FreeText", text))),
            E("Search:Options", E("Search:Range", rng)))))
        store = reply.body.find("Search:Response").find("Search:Store")
        assert store.findtext("Search:Status") == "1"
        return [r.find("Search:Properties").findtext("Email:Subject") for r in store.findall("Search:Result")]

    assert search("report") == ["report again", "quarterly report"]
    assert search("report", "1-1") == ["quarterly report"]
    assert search("carl") == ["quarterly report"]
    assert search("nothing-like-this") == []


def test_folder_create_rename_delete_reach_imap(phone, mail) -> None:  # type: ignore[no-untyped-def]
    inbox = inbox_of(phone)
    key, _ = phone.folder_sync("0")
    created = phone.post("FolderCreate", E("FolderHierarchy:FolderCreate", E("FolderHierarchy:SyncKey", key),
                                           E("FolderHierarchy:ParentId", "0"),
                                           E("FolderHierarchy:DisplayName", "Receipts"),
                                           E("FolderHierarchy:Type", "12")))
    assert created.text("FolderHierarchy:Status") == "1"
    server_id, key = created.text("FolderHierarchy:ServerId"), created.text("FolderHierarchy:SyncKey")
    other = mail.imap()
    assert "Receipts" in [name for _, _, name in other.list_folders()]
    other.logout()
    again = phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    assert again.text("FolderHierarchy:Changes/FolderHierarchy:Count") == "0"  # not echoed
    key = again.text("FolderHierarchy:SyncKey")
    renamed = phone.post("FolderUpdate", E("FolderHierarchy:FolderUpdate", E("FolderHierarchy:SyncKey", key),
                                           E("FolderHierarchy:ServerId", server_id),
                                           E("FolderHierarchy:ParentId", "0"),
                                           E("FolderHierarchy:DisplayName", "Invoices")))
    assert renamed.text("FolderHierarchy:Status") == "1"
    key = renamed.text("FolderHierarchy:SyncKey")
    other = mail.imap()
    names = [name for _, _, name in other.list_folders()]
    other.logout()
    assert "Invoices" in names and "Receipts" not in names
    refused = phone.post("FolderDelete", E("FolderHierarchy:FolderDelete", E("FolderHierarchy:SyncKey", key),
                                           E("FolderHierarchy:ServerId", inbox)))
    assert refused.text("FolderHierarchy:Status") == "3"
    key, _ = phone.folder_sync("0")
    deleted = phone.post("FolderDelete", E("FolderHierarchy:FolderDelete", E("FolderHierarchy:SyncKey", key),
                                           E("FolderHierarchy:ServerId", server_id)))
    assert deleted.text("FolderHierarchy:Status") == "1"
    other = mail.imap()
    assert "Invoices" not in [name for _, _, name in other.list_folders()]
    other.logout()


def test_uidvalidity_reset_is_status_3_then_a_clean_resync(phone, mail) -> None:  # type: ignore[no-untyped-def]
    import glob
    import os
    from pathlib import Path

    mail.deliver(make_message("before reset"))
    inbox = inbox_of(phone)
    synced(phone, inbox)
    other = mail.imap()
    other.select_folder("INBOX")
    uidvalidity = other.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    other.logout()
    # behind everyone's back: Dovecot's UID list is rewritten with a new UIDVALIDITY (as a restore does)
    home = Path(mail.dovecot.dir) / "mail" / str(mail.tenant_id) / str(mail.alice) / "Maildir"
    uidlist = home / "dovecot-uidlist"
    lines = uidlist.read_text().splitlines()
    lines[0] = lines[0].replace(f"V{uidvalidity}", f"V{uidvalidity + 7}")
    uidlist.write_text("\n".join(lines) + "\n")
    for index in glob.glob(str(home / "dovecot.index*")):
        os.unlink(index)
    reply = phone.sync(inbox)
    assert collection(reply).findtext("AirSync:Status") == "3"
    got = synced(phone, inbox)
    assert [d.findtext("Email:Subject") for d in got.values()] == ["before reset"]


def test_a_poison_mail_is_skipped_with_a_reason_and_not_retried(running, phone, mail, monkeypatch,
                                                                capsys) -> None:  # type: ignore[no-untyped-def]
    from oxsync.eas import mailsync

    mail.deliver(make_message("good one"))
    mail.deliver(make_message("POISON"))
    real = mailsync.to_eas

    def exploding(item, *args):  # type: ignore[no-untyped-def]
        if item.subject == "POISON":
            raise ValueError("cannot render this one")
        return real(item, *args)

    monkeypatch.setattr(mailsync, "to_eas", exploding)
    inbox = inbox_of(phone)
    got = synced(phone, inbox)
    assert [d.findtext("Email:Subject") for d in got.values()] == ["good one"]
    from oxsync.cli import main

    capsys.readouterr()
    assert main(["--db", mail.store.settings.store.url, "--tenant", mail.domain, "device", "show",
                 mail.alice_address, phone.device_id]) == 0
    shown = capsys.readouterr().out
    assert "ValueError: cannot render this one" in shown  # visible to support staff
    other = mail.imap()
    other.select_folder("INBOX")
    other.add_flags(other.search(), [b"\\Flagged"])
    other.logout()
    delta = phone.sync(inbox)
    assert len(items(delta, "Change")) == 1 and not items(delta)  # the poison mail is not retried


def test_malformed_and_8bit_mail_still_syncs(phone, mail) -> None:  # type: ignore[no-untyped-def]
    raw = (b"From: =?bogus?Q?x?= <a@b>\r\nSubject: caf\xe9 \xff 8-bit\r\nContent-Type: multipart/mixed; "
           b"boundary=\"nope\"\r\n\r\nno boundary at all\r\n")
    mail.deliver(raw)
    mail.deliver(make_message("normal"))
    got = synced(phone, inbox_of(phone))
    assert len(got) == 2


def test_ios_second_early_sync_key_0_joins(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("one"))
    inbox = inbox_of(phone)
    first = collection(phone.sync(inbox, "0")).findtext("AirSync:SyncKey")
    second = collection(phone.sync(inbox, "0")).findtext("AirSync:SyncKey")
    assert first == second
    assert len(items(phone.sync(inbox, first))) == 1


def test_cross_client_flags_both_ways(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("shared"))
    inbox = inbox_of(phone)
    uid = next(iter(synced(phone, inbox)))
    other = mail.imap()  # the user's own IMAP client (Outlook / Thunderbird)
    other.select_folder("INBOX")
    assert other.search() == [int(uid)]
    phone.sync(inbox, commands=[E("AirSync:Change", E("AirSync:ServerId", uid),
                                  E("AirSync:ApplicationData", E("Email:Read", "1")))])
    assert b"\\Seen" in other.get_flags([int(uid)])[int(uid)]
    other.remove_flags([int(uid)], [b"\\Seen"])
    other.logout()
    changed = items(phone.sync(inbox), "Change")
    assert changed[uid].findtext("Email:Read") == "0"


def test_get_attachment_for_12x_clients(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("old phone", "x", attachment=("old.bin", b"twelve-one")))
    phone.version = "12.1"
    inbox = inbox_of(phone)
    _, data = next(iter(synced(phone, inbox).items()))
    reference = data.find("AirSyncBase:Attachments").find("AirSyncBase:Attachment").findtext(
        "AirSyncBase:FileReference")
    reply = phone.post("GetAttachment", None, params=f"&AttachmentName={reference}")
    assert reply.status == 200 and reply.raw == b"twelve-one"
    missing = phone.post("GetAttachment", None, params=f"&AttachmentName={inbox}:999:1")
    assert missing.status == 500


def test_mail_that_ages_out_of_the_filter_window_is_soft_deleted(phone, mail, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from oxsync.eas import mailsync

    other = mail.imap()
    other.append("INBOX", make_message("two days old"), msg_time=datetime.now(UTC) - timedelta(days=2))
    other.append("INBOX", make_message("fresh"))
    other.logout()
    inbox = inbox_of(phone)
    week = [E("AirSync:FilterType", "3")]
    phone.sync(inbox, "0", options=week)
    got = items(phone.sync(inbox, options=week))
    ids = {d.findtext("Email:Subject"): k for k, d in got.items()}
    assert set(ids) == {"two days old", "fresh"}
    assert collection(phone.sync(inbox, options=week)).find("AirSync:Commands") is None

    class SixDaysLater(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return datetime.now(tz) + timedelta(days=6)

    monkeypatch.setattr(mailsync, "datetime", SixDaysLater)
    mail.deliver(make_message("today"))
    reply = phone.sync(inbox, options=week)
    assert server_ids(reply, "SoftDelete") == [ids["two days old"]]
    assert [d.findtext("Email:Subject") for d in items(reply).values()] == ["today"]


def unpack_multipart(raw: bytes) -> list[bytes]:
    import struct

    (count,) = struct.unpack_from("<i", raw, 0)
    parts = []
    for n in range(count):
        offset, length = struct.unpack_from("<ii", raw, 4 + 8 * n)
        parts.append(raw[offset:offset + length])
    assert 4 + 8 * count + sum(len(p) for p in parts) == len(raw)
    return parts


@pytest.mark.parametrize("how", ["header", "query"])
def test_item_operations_multipart_carries_the_same_bytes(phone, mail, how) -> None:  # type: ignore[no-untyped-def]
    from oxsync.eas.wbxml import decode

    payload = bytes(range(256)) * 9
    mail.deliver(make_message("parts", "see attached", attachment=("data.bin", payload)))
    inbox = inbox_of(phone)
    uid, data = next(iter(synced(phone, inbox).items()))
    reference = data.find("AirSyncBase:Attachments").find("AirSyncBase:Attachment").findtext(
        "AirSyncBase:FileReference")
    request = E("ItemOperations:ItemOperations",
                E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                  E("AirSync:CollectionId", inbox), E("AirSync:ServerId", uid),
                  E("ItemOperations:Options", E("AirSync:MIMESupport", "2"),
                    E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "4")))),
                E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"),
                  E("AirSyncBase:FileReference", reference)))
    plain = phone.post("ItemOperations", request)
    fetched = plain.body.find("ItemOperations:Response").findall("ItemOperations:Fetch")
    mime = fetched[0].find("ItemOperations:Properties").find("AirSyncBase:Body").findtext("AirSyncBase:Data")
    attachment = base64.b64decode(fetched[1].find("ItemOperations:Properties").findtext("ItemOperations:Data"))
    assert attachment == payload and "Subject: parts" in mime
    if how == "header":
        reply = phone.post("ItemOperations", request, headers={"MS-ASAcceptMultiPart": "T"})
    else:
        reply = phone.post("ItemOperations", request, params="&AcceptMultiPart=T")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/vnd.ms-sync.multipart")
    parts = unpack_multipart(reply.raw)
    assert len(parts) == 3
    body = decode(parts[0])
    fetched = body.find("ItemOperations:Response").findall("ItemOperations:Fetch")
    mail_body = fetched[0].find("ItemOperations:Properties").find("AirSyncBase:Body")
    assert mail_body.find("AirSyncBase:Data") is None
    assert parts[int(mail_body.findtext("ItemOperations:Part"))] == mime.encode("utf-8")
    props = fetched[1].find("ItemOperations:Properties")
    assert props.find("ItemOperations:Data") is None
    assert parts[int(props.findtext("ItemOperations:Part"))] == attachment


def test_mailbox_search_matches_the_body_only_when_configured(live_server, mail) -> None:  # type: ignore[no-untyped-def]
    """Search of the mailbox matches subject and sender by default; `[eas] search_mail_body` adds the text."""
    mail.deliver(make_message("invoice", body="the secret word is marmalade"))

    def hits(search_mail_body: bool) -> int:
        running = live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                              eas={"search_mail_body": search_mail_body})
        device = client(running, user=mail.alice_address)
        device.provision()
        reply = device.post("Search", E("Search:Search", E("Search:Store", E("Search:Name", "Mailbox"), E(
            "Search:Query", E("Search:And", E("AirSync:Class", "Email"), E("AirSync:CollectionId", inbox_of(device)),
                              E("Search:FreeText", "marmalade"))), E("Search:Options", E("Search:Range", "0-9")))))
        store = reply.body.find("Search:Response").find("Search:Store")
        assert store.findtext("Search:Status") == "1"
        return len(store.findall("Search:Result"))

    assert hits(False) == 0
    assert hits(True) == 1
