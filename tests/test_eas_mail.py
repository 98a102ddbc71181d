"""The Email class over real HTTP against a real Dovecot: folders, windowed sync, deltas, changes both ways."""

from __future__ import annotations

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.dovecot import make_message
from tests.eas_client import client, collection, items, server_ids


@pytest.fixture
def running(live_server, mail):  # type: ignore[no-untyped-def]
    return live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                       eas={"min_heartbeat_seconds": 1})


@pytest.fixture
def phone(running, mail):  # type: ignore[no-untyped-def]
    c = client(running, user=mail.alice_address)
    c.provision()
    return c


def inbox_of(phone) -> str:  # type: ignore[no-untyped-def]
    return phone.folder_of_type(2)


def body_options(*prefs: tuple[int, int | None], mime: int | None = None, filter_type: int | None = None) -> list:
    out = []
    if filter_type is not None:
        out.append(E("AirSync:FilterType", str(filter_type)))
    if mime is not None:
        out.append(E("AirSync:MIMESupport", str(mime)))
    for kind, size in prefs:
        pref = E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", str(kind)))
        if size is not None:
            pref.append(E("AirSyncBase:TruncationSize", str(size)))
        out.append(pref)
    return out


def imap_uids(mail, folder: str = "INBOX") -> list[int]:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.select_folder(folder)
    found = sorted(other.search())
    other.logout()
    return found


def test_folder_sync_lists_the_real_imap_folders_with_types(phone, mail) -> None:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.create_folder("Projects")
    other.create_folder("Projects/2026")
    other.logout()
    _, folders = phone.folder_sync("0")
    by_name = {v["name"]: (k, v) for k, v in folders.items()}
    assert by_name["Inbox"][1]["type"] == "2"
    assert by_name["Drafts"][1]["type"] == "3"
    assert by_name["Trash"][1]["type"] == "4"
    assert by_name["Sent"][1]["type"] == "5"
    assert by_name["Outbox"][1]["type"] == "6"
    assert by_name["Projects"][1]["type"] == "12"
    assert by_name["2026"][1]["parent"] == by_name["Projects"][0]
    assert any(v["type"] == "9" for v in folders.values())  # contacts are still there


def test_rename_behind_the_phones_back_keeps_the_folder_id(phone, mail) -> None:  # type: ignore[no-untyped-def]
    other = mail.imap()
    other.create_folder("Old")
    other.logout()
    key, folders = phone.folder_sync("0")
    old_id = next(k for k, v in folders.items() if v["name"] == "Old")
    other = mail.imap()
    other.rename_folder("Old", "New")
    other.logout()
    reply = phone.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", key)))
    updates = reply.body.find("FolderHierarchy:Changes").findall("FolderHierarchy:Update")
    assert [(u.findtext("FolderHierarchy:ServerId"), u.findtext("FolderHierarchy:DisplayName")) for u in updates] \
        == [(old_id, "New")]


def test_initial_sync_is_windowed_newest_first_then_deltas(phone, mail) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        mail.deliver(make_message(f"mail {i}", f"body {i}"))
    inbox = inbox_of(phone)
    first = phone.sync(inbox, "0")
    assert collection(first).findtext("AirSync:Status") == "1"
    page = phone.sync(inbox, window=2, options=body_options((1, None)))
    got = items(page)
    subjects = [d.findtext("Email:Subject") for d in got.values()]
    assert subjects == ["mail 4", "mail 3"]
    assert collection(page).find("AirSync:MoreAvailable") is not None
    rest = phone.sync(inbox, window=10)
    assert [d.findtext("Email:Subject") for d in items(rest).values()] == ["mail 2", "mail 1", "mail 0"]
    assert collection(rest).find("AirSync:MoreAvailable") is None
    data = next(iter(items(rest).values()))
    assert data.find("AirSyncBase:Body").findtext("AirSyncBase:Data").strip() == "body 2"
    assert data.findtext("Email:Read") == "0"
    # nothing changed: no new key, no commands
    quiet = phone.sync(inbox)
    assert collection(quiet).find("AirSync:Commands") is None
    # behind the phone's back: a flag, an expunge and a new mail
    uids = imap_uids(mail)
    other = mail.imap()
    other.select_folder("INBOX")
    other.add_flags([uids[0]], [b"\\Seen", b"\\Flagged"])
    other.delete_messages([uids[1]])
    other.expunge()
    other.logout()
    mail.deliver(make_message("late news"))
    delta = phone.sync(inbox)
    assert [d.findtext("Email:Subject") for d in items(delta).values()] == ["late news"]
    changed = items(delta, "Change")
    assert list(changed) == [str(uids[0])]
    assert changed[str(uids[0])].findtext("Email:Read") == "1"
    assert changed[str(uids[0])].find("Email:Flag").findtext("Email:Status") == "2"
    assert server_ids(delta, "Delete") == [str(uids[1])]


def test_phone_changes_reach_imap_and_are_not_echoed(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("flag me"))
    mail.deliver(make_message("delete me"))
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    got = items(phone.sync(inbox))
    ids = {d.findtext("Email:Subject"): k for k, d in got.items()}
    change = E("AirSync:Change", E("AirSync:ServerId", ids["flag me"]), E(
        "AirSync:ApplicationData", E("Email:Read", "1"),
        E("Email:Flag", E("Email:Status", "2"), E("Email:FlagType", "for Follow Up")),
        E("Email:Categories", E("Email:Category", "Work"))))
    delete = E("AirSync:Delete", E("AirSync:ServerId", ids["delete me"]))
    reply = phone.sync(inbox, commands=[change, delete], extra=[])
    assert collection(reply).findtext("AirSync:Status") == "1"
    assert collection(reply).find("AirSync:Commands") is None  # own changes are not echoed back
    other = mail.imap()
    other.select_folder("INBOX")
    flags = other.get_flags([int(ids["flag me"])])[int(ids["flag me"])]
    assert {b"\\Seen", b"\\Flagged", b"Work"} <= set(flags)
    assert int(ids["delete me"]) not in other.search()
    other.select_folder("Trash")
    assert len(other.search()) == 1  # DeletesAsMoves: in Trash, not gone
    other.logout()
    quiet = phone.sync(inbox)
    assert collection(quiet).find("AirSync:Commands") is None


def test_replayed_sync_key_gets_the_identical_answer(phone, mail) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        mail.deliver(make_message(f"m{i}"))
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    key = phone.keys[inbox]
    first = phone.sync(inbox, key, window=2)
    mail.deliver(make_message("meanwhile"))
    again = phone.sync(inbox, key, window=2)
    assert again.raw == first.raw


def test_body_preferences_truncation_and_mime(phone, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("rich", "plain words " * 50, html="<p>html words</p>",
                              attachment=("report.pdf", b"%PDF-1.4 data")))
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    data = next(iter(items(phone.sync(inbox, options=body_options((2, None), (1, 20), mime=0))).values()))
    body = data.find("AirSyncBase:Body")
    assert body.findtext("AirSyncBase:Type") == "2" and "html words" in body.findtext("AirSyncBase:Data")
    att = data.find("AirSyncBase:Attachments").find("AirSyncBase:Attachment")
    assert att.findtext("AirSyncBase:DisplayName") == "report.pdf"
    assert att.findtext("AirSyncBase:FileReference")
    phone.device_id = "secondphone01"
    phone.keys = {}
    phone.provision()
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    data = next(iter(items(phone.sync(inbox, options=body_options((1, 20)))).values()))
    body = data.find("AirSyncBase:Body")
    assert body.findtext("AirSyncBase:Truncated") == "1" and len(body.findtext("AirSyncBase:Data")) == 20
    phone.device_id = "thirdphone01"
    phone.keys = {}
    phone.provision()
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    data = next(iter(items(phone.sync(inbox, options=body_options((4, None), mime=2))).values()))
    body = data.find("AirSyncBase:Body")
    assert body.findtext("AirSyncBase:Type") == "4" and "Subject: rich" in body.findtext("AirSyncBase:Data")


def test_a_delta_costs_the_same_imap_commands_whatever_the_folder_size(running, phone, mail) -> None:  # type: ignore[no-untyped-def]
    pool = running.service.eas.mail.pool
    inbox = inbox_of(phone)
    costs = []
    for batch in (3, 40):
        for i in range(batch):
            mail.deliver(make_message(f"bulk {i}"))
        phone.sync(inbox, "0")
        while collection(phone.sync(inbox, window=100)).find("AirSync:MoreAvailable") is not None:
            pass
        uids = imap_uids(mail)
        other = mail.imap()
        other.select_folder("INBOX")
        other.add_flags([uids[-1]], [b"\\Seen"])
        other.logout()
        before = pool.commands
        delta = phone.sync(inbox)
        assert list(items(delta, "Change")) == [str(uids[-1])]
        costs.append(pool.commands - before)
        before = pool.commands
        phone.sync(inbox)
        assert pool.commands - before == 1  # nothing moved: EXAMINE only
    assert costs[0] == costs[1] == 2  # EXAMINE + one UID FETCH (CHANGEDSINCE, VANISHED)


def ping_body(heartbeat: int, *folders: str) -> E:  # type: ignore[valid-type]
    return E("Ping:Ping", E("Ping:HeartbeatInterval", str(heartbeat)),
             E("Ping:Folders", *[E("Ping:Folder", E("Ping:Id", f), E("Ping:Class", "Email")) for f in folders]))


def test_new_mail_wakes_a_parked_ping_which_holds_no_imap_connection(running, phone, mail) -> None:  # type: ignore[no-untyped-def]
    from tests.test_eas_push import in_thread, wait_parked

    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    phone.sync(inbox)
    pool = running.service.eas.mail.pool
    thread, result = in_thread(lambda: phone.post("Ping", ping_body(30, inbox), timeout=60))
    wait_parked(running)
    import time
    for _ in range(200):  # the Ping's own STATUS check has returned its connection
        if running.service.eas.mail_watcher.watched:
            break
        time.sleep(0.01)
    busy = pool.open_connections() - sum(len(c) for c in pool.idle.values())
    assert busy == 0
    mail.deliver(make_message("wake up"))
    thread.join(20)
    reply = result["value"]
    assert reply.text("Ping:Status") == "2"
    assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [inbox]
    assert not running.service.eas.mail_watcher.watched  # the answered Ping no longer costs a STATUS per round
    assert [d.findtext("Email:Subject") for d in items(phone.sync(inbox)).values()] == ["wake up"]


def test_ping_answers_at_once_when_mail_came_since_the_last_sync(running, phone, mail) -> None:  # type: ignore[no-untyped-def]
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    phone.sync(inbox)
    mail.deliver(make_message("while away"))
    reply = phone.post("Ping", ping_body(30, inbox), timeout=20)
    assert reply.text("Ping:Status") == "2"


def test_hanging_sync_on_a_mail_folder_wakes_with_the_new_mail(running, phone, mail) -> None:  # type: ignore[no-untyped-def]
    from tests.test_eas_push import in_thread, wait_parked

    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    phone.sync(inbox)
    thread, result = in_thread(lambda: phone.sync(inbox, extra=[E("AirSync:Wait", "1")]))
    wait_parked(running)
    mail.deliver(make_message("pushed"))
    thread.join(20)
    assert [d.findtext("Email:Subject") for d in items(result["value"]).values()] == ["pushed"]


def test_mail_responses_read_the_same_through_libwbxml2(phone, mail) -> None:  # type: ignore[no-untyped-def]
    from tests.test_wbxml import from_lib_xml, libwbxml_view, wbxml2xml

    mail.deliver(make_message("cross-checked", "body", html="<b>x</b>", attachment=("a.txt", b"abc"),
                              extra={"References": "<root@example.net>"}))
    inbox = inbox_of(phone)
    phone.version = "14.1"
    phone.sync(inbox, "0")
    reply = phone.sync(inbox, options=body_options((2, 100), (1, None)))
    assert items(reply)
    assert from_lib_xml(wbxml2xml(reply.raw)) == libwbxml_view(reply.body)


def test_only_new_mail_wakes_a_ping_not_flag_changes_elsewhere(running, phone, mail) -> None:  # type: ignore[no-untyped-def]
    import time

    from tests.test_eas_push import in_thread, wait_parked

    mail.deliver(make_message("already here"))
    inbox = inbox_of(phone)
    phone.sync(inbox, "0")
    phone.sync(inbox)
    thread, result = in_thread(lambda: phone.post("Ping", ping_body(60, inbox), timeout=90))
    wait_parked(running)
    watcher = running.service.eas.mail_watcher
    for _ in range(500):
        if watcher.seen:
            break
        time.sleep(0.01)
    other = mail.imap()
    other.select_folder("INBOX")
    other.add_flags(other.search(), [b"\\Seen"])  # read in another client: no push for that
    other.logout()
    rounds = watcher.rounds
    for _ in range(1000):  # two full watcher rounds saw the flag change
        if watcher.rounds >= rounds + 2 and watcher._running is None:
            break
        time.sleep(0.01)
    assert len(running.service.eas.parked) == 1 and "value" not in result
    mail.deliver(make_message("new one"))
    thread.join(20)
    assert result["value"].text("Ping:Status") == "2"
    changes = phone.sync(inbox)
    assert [d.findtext("Email:Subject") for d in items(changes).values()] == ["new one"]
    assert len(items(changes, "Change")) == 1  # the flag change comes with the next Sync


def test_mime_truncation_cuts_a_12x_mime_body_to_the_asked_size(running, mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("big", "long line of words\n" * 600))  # ~11 KB of MIME
    phone = client(running, user=mail.alice_address, version="12.1")
    phone.provision()
    inbox = inbox_of(phone)
    sizes = {}
    for level in ("1", "4", "8"):
        phone.sync(inbox, "0")
        options = body_options((4, None), mime=2) + [E("AirSync:MIMETruncation", level)]
        data = next(iter(items(phone.sync(inbox, options=options)).values()))
        body = data.find("AirSyncBase:Body")
        assert body.findtext("AirSyncBase:Type") == "4"
        sizes[level] = (len(body.findtext("AirSyncBase:Data").encode()), body.findtext("AirSyncBase:Truncated"),
                        int(body.findtext("AirSyncBase:EstimatedDataSize")))
    assert sizes["1"][:2] == (4096, "1") and sizes["4"][:2] == (10240, "1")
    assert sizes["8"][1] is None and sizes["8"][0] == sizes["8"][2] > 10240
