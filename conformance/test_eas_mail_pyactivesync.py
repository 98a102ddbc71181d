"""pyactivesync (EAS 16.1, from PyPI) on mail folders kept in a real Dovecot: folders, sync, flags, move,
fetch, attachment, Find (mailbox and GAL) and a Ping woken by an LMTP delivery."""

from __future__ import annotations

import threading
import time

import pytest

try:
    import pyactivesync
except ImportError as exc:  # a conformance client missing is a failure, not a skip
    raise ImportError("pyactivesync is not installed: run `make test` or pip install -e '.[conformance]'") from exc

from oxsync.eas import install  # noqa: E402
from tests.dovecot import make_message  # noqa: E402


@pytest.fixture
def running(live_server, mail):  # type: ignore[no-untyped-def]
    return live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                       eas={"min_heartbeat_seconds": 1})


def make_client(running, mail, device: str = "pyasmail01"):  # type: ignore[no-untyped-def]
    client = pyactivesync.Client(server=f"127.0.0.1:{running.port}", username=mail.alice_address,
                                 password="alice-pw", device_id=device, timeout=30)
    client._transport.base_url = f"http://127.0.0.1:{running.port}/Microsoft-Server-ActiveSync"
    return client


def test_pyactivesync_reads_flags_moves_fetches_and_searches_mail(running, mail) -> None:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.create_folder("Archive")
    other.logout()
    mail.deliver(make_message("first", "hello there", attachment=("notes.txt", b"pyactivesync was here")))
    mail.deliver(make_message("second", "more"))
    client = make_client(running, mail)
    folders = {int(f.type): f for f in client.list_folders()}
    assert {2, 3, 4, 5, 6} <= set(folders)
    inbox = folders[2].id
    archive = next(f.id for f in client.list_folders() if f.name == "Archive")
    first = client.sync_folder(inbox)
    result = client.sync_folder(inbox, sync_key=first.sync_key)
    subjects = {item.fields.get("Email.Subject"): item.server_id for item in result.added}
    assert set(subjects) == {"first", "second"}
    changed = client.apply_email_changes(inbox, result.sync_key, [
        pyactivesync.EmailChange(server_id=subjects["first"], read=True, flagged=True)])
    other = mail.imap()
    other.select_folder("INBOX")
    uid = int(subjects["first"])
    assert {b"\\Seen", b"\\Flagged"} <= set(other.get_flags([uid])[uid])
    other.logout()
    fetched = client.fetch_item(inbox, subjects["first"])
    assert fetched.body is not None and "hello there" in str(fetched.body)
    assert [a.display_name for a in fetched.attachments] == ["notes.txt"]
    assert client.fetch_attachment(fetched.attachments[0].file_reference) == b"pyactivesync was here"
    found = client.find_mailbox("first")  # Find (16.1) over every mail folder
    assert [(i.server_id, i.collection_id) for i in found.items] == [(subjects["first"], inbox)]
    assert found.items[0].fields.get("Email.Subject") == "first"
    assert found.items[0].fields.get("Find.HasAttachments") == "1"
    assert [i.fields.get("Email.Subject") for i in client.find_mailbox("bob", folder_id=inbox).items] == [
        "second", "first"]
    assert client.find_mailbox("nothing-like-this").items == []
    gal = client.find_gal("Durand")
    assert [i.fields.get("GAL.LastName") for i in gal.items] == ["Durand"]
    new_id = client.move_item(subjects["second"], inbox, archive)
    other = mail.imap()
    other.select_folder("Archive")
    assert other.search() == [int(new_id)]
    other.logout()
    assert changed.sync_key


def test_pyactivesync_ping_woken_by_delivery(running, mail) -> None:  # type: ignore[no-untyped-def]
    client = make_client(running, mail, device="pyasmail02")
    inbox = next(f.id for f in client.list_folders() if int(f.type) == 2)
    key = client.sync_folder(inbox).sync_key
    client.sync_folder(inbox, sync_key=key)
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", client.ping(inbox, heartbeat=60, timeout=90)))
    thread.start()
    for _ in range(500):
        if len(running.service.eas.parked):
            break
        time.sleep(0.01)
    mail.deliver(make_message("pinged"))
    thread.join(60)
    result = out["r"]
    assert result.status == "2" and result.changed_folder_ids == [inbox]
