"""SendMail / SmartReply / SmartForward with the mailbox in a real Dovecot and a real SMTP relay: the
original fetched without marking it read, quoted or forwarded, ReplaceMime respected, \\Answered and
$Forwarded set, exactly one copy in Sent."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.dovecot import make_message
from tests.eas_client import client

HTML = "<html><head></head><body><p>Numbers <b>attached</b></p></body></html>"


def start(live_server, mail, sink, **outbound):  # type: ignore[no-untyped-def]
    running = live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                          outbound={"smtp_relay": f"127.0.0.1:{sink.port}", "poll_seconds": 3600.0, **outbound})
    phone = client(running, user=mail.alice_address, version="16.1")
    phone.provision()
    phone.folder_sync("0")
    return phone


@pytest.fixture
def phone(live_server, mail, sink):  # type: ignore[no-untyped-def]
    return start(live_server, mail, sink)


def original(mail) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Deliver the original; returns (its UID = ServerId, its Message-ID)."""
    raw = make_message("Quarterly", "Numbers attached", html=HTML, to=mail.alice_address,
                       attachment=("q.xlsx", b"PK\x03\x04 sheet"))
    mail.deliver(raw)
    imap = mail.imap()
    imap.select_folder("INBOX")
    uid = max(imap.search())
    imap.logout()
    msg_id = BytesParser(policy=policy.default).parsebytes(raw)["Message-ID"]
    return uid, msg_id


def flags_of(mail, uid: int, folder: str = "INBOX") -> set[bytes]:  # type: ignore[no-untyped-def]
    imap = mail.imap()
    imap.select_folder(folder, readonly=True)
    flags = set(imap.get_flags([uid])[uid])
    imap.logout()
    return flags


def sent_copies(mail, message_id: str) -> list[set[bytes]]:  # type: ignore[no-untyped-def]
    imap = mail.imap()
    imap.select_folder("Sent", readonly=True)
    uids = imap.search(["HEADER", "Message-ID", message_id])
    flags = [set(f) for f in imap.get_flags(uids).values()] if uids else []
    imap.logout()
    return flags


def compose(cmd: str, client_id: str, mime: bytes, folder: str, uid: int, *extra):  # type: ignore[no-untyped-def]
    return E(f"ComposeMail:{cmd}", E("ComposeMail:ClientId", client_id), E("ComposeMail:SaveInSentItems"),
             E("ComposeMail:Source", E("ComposeMail:FolderId", folder), E("ComposeMail:ItemId", str(uid))),
             *extra, E("ComposeMail:Mime", mime))


def test_smart_reply_quotes_the_original_inside_the_html_and_files_one_sent_copy(phone, mail, sink) -> None:  # type: ignore[no-untyped-def]
    uid, _ = original(mail)
    inbox = phone.folder_of_type(2)
    mime = (f"From: {mail.alice_address}\r\nTo: bob@example.net\r\nSubject: Re: Quarterly\r\n"
            "Message-ID: <reply-1@client>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            "<html><body><p>Thanks!</p></body></html>\r\n").encode()
    reply = phone.post("SmartReply", compose("SmartReply", "r1", mime, inbox, uid))
    assert reply.status == 200 and reply.raw == b""
    [sent] = sink.wait_for(1)
    html = sent.parsed().get_body(("html",)).get_content()
    assert html.index("Thanks!") < html.index("Numbers <b>attached</b>") < html.index("</body>")
    assert "<blockquote" in html and html.rstrip().endswith("</html>")
    flags = flags_of(mail, uid)
    assert b"\\Answered" in flags and b"\\Seen" not in flags  # fetched with BODY.PEEK
    assert sent_copies(mail, "<reply-1@client>") == [{b"\\Seen"}]
    again = phone.post("SmartReply", compose("SmartReply", "r1", mime, inbox, uid))
    assert again.text("ComposeMail:Status") == "118"
    assert len(sink.messages) == 1 and len(sent_copies(mail, "<reply-1@client>")) == 1


def test_smart_forward_carries_body_and_attachments(phone, mail, sink) -> None:  # type: ignore[no-untyped-def]
    uid, _ = original(mail)
    inbox = phone.folder_of_type(2)
    mime = (f"From: {mail.alice_address}\r\nTo: carol@elsewhere.org\r\nSubject: Fwd: Quarterly\r\n"
            "Message-ID: <fwd-1@client>\r\n\r\nFYI\r\n").encode()
    assert phone.post("SmartForward", compose("SmartForward", "f1", mime, inbox, uid)).raw == b""
    msg = sink.wait_for(1)[0].parsed()
    text = msg.get_body(("plain",)).get_content()
    assert text.startswith("FYI") and "Forwarded message" in text and "Numbers attached" in text
    assert [(a.get_filename(), a.get_content()) for a in msg.iter_attachments()] == [("q.xlsx", b"PK\x03\x04 sheet")]
    assert b"$Forwarded" in flags_of(mail, uid) and b"\\Seen" not in flags_of(mail, uid)


def test_replace_mime_adds_nothing_and_in_reply_to_marks_answered(phone, mail, sink) -> None:  # type: ignore[no-untyped-def]
    uid, message_id = original(mail)
    inbox = phone.folder_of_type(2)
    mime = (f"From: {mail.alice_address}\r\nTo: carol@elsewhere.org\r\nSubject: Fwd: Quarterly\r\n\r\n"
            "My own full text\r\n").encode()
    assert phone.post("SmartForward", compose("SmartForward", "f2", mime, inbox, uid,
                                              E("ComposeMail:ReplaceMime"))).raw == b""
    msg = sink.wait_for(1)[0].parsed()
    assert msg.get_content().strip() == "My own full text" and not list(msg.iter_attachments())
    # Outlook replies with SendMail and In-Reply-To instead of SmartReply
    uid2, message_id2 = original(mail)
    outlook = (f"From: {mail.alice_address}\r\nTo: bob@example.net\r\nSubject: Re: Quarterly\r\n"
               f"In-Reply-To: {message_id2}\r\n\r\nok\r\n").encode()
    assert phone.post("SendMail", E("ComposeMail:SendMail", E("ComposeMail:ClientId", "o1"),
                                    E("ComposeMail:Mime", outlook))).raw == b""
    assert b"\\Answered" in flags_of(mail, uid2) and b"\\Answered" not in flags_of(mail, uid)
    assert message_id != message_id2


def test_no_sent_copy_when_the_relay_files_one(live_server, mail, sink) -> None:  # type: ignore[no-untyped-def]
    phone = start(live_server, mail, sink, relay_files_sent_copy=True)
    mime = (f"From: {mail.alice_address}\r\nTo: bob@example.net\r\nSubject: hi\r\n"
            "Message-ID: <relay-files@client>\r\n\r\nhi\r\n").encode()
    assert phone.post("SendMail", E("ComposeMail:SendMail", E("ComposeMail:ClientId", "s1"),
                                    E("ComposeMail:SaveInSentItems"), E("ComposeMail:Mime", mime))).raw == b""
    sink.wait_for(1)
    assert sent_copies(mail, "<relay-files@client>") == []


def test_forward_as_attachment_setting(live_server, mail, sink) -> None:  # type: ignore[no-untyped-def]
    phone = start(live_server, mail, sink, forward_as_attachment=True)
    uid, message_id = original(mail)
    mime = f"From: {mail.alice_address}\r\nTo: carol@elsewhere.org\r\nSubject: Fwd\r\n\r\nSee attached\r\n".encode()
    assert phone.post("SmartForward", compose("SmartForward", "fa", mime, phone.folder_of_type(2), uid)).raw == b""
    msg = sink.wait_for(1)[0].parsed()
    [attached] = list(msg.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert attached.get_content()["Message-ID"] == message_id


def test_local_recipients_over_lmtp_once_even_when_the_relay_retries(mail, sink) -> None:  # type: ignore[no-untyped-def]
    """`[outbound] lmtp_local` (the demo's set-up): accounts here get the mail from Dovecot's LMTP directly,
    the others through the relay; a relay retry does not deliver the local copy again."""
    from dataclasses import replace

    from oxsync.mail.outbound import process_one
    from oxsync.store.tx import now_ms

    store = mail.store
    settings = replace(store.settings, outbound=replace(
        store.settings.outbound, lmtp_local=f"127.0.0.1:{mail.dovecot.listeners.lmtp}",
        smtp_relay=f"127.0.0.1:{sink.port}"))
    message = (f"From: {mail.alice_address}\r\nTo: {mail.bob_address}, out@elsewhere.org\r\n"
               "Subject: lunch local\r\nMessage-ID: <lmtp-1@x>\r\n\r\nlunch?\r\n").encode()
    with store.session(mail.tenant_id, mail.alice, write=True) as session:
        session.send_mail("lmtp-1", mail.alice_address, [mail.bob_address, "out@elsewhere.org"], message, "lunch")
    sink.refuse.append("451 4.3.0 later")
    first = process_one(store, "n", settings=settings)
    assert first is not None and first.state == "queued"
    assert process_one(store, "n", now=now_ms() + 10**8, settings=settings).state == "sent"
    imap = mail.imap("bob")
    imap.select_folder("INBOX", readonly=True)
    assert len(imap.search(["HEADER", "Message-ID", "<lmtp-1@x>"])) == 1  # once, despite the retry
    imap.logout()
    assert [m.recipients for m in sink.messages] == [["out@elsewhere.org"]]
