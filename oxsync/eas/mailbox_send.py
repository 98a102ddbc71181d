"""What SendMail/SmartReply/SmartForward do in the user's mailbox when a mail server is configured
(docs/outbound-mail.md): fetch the original (BODY.PEEK: it stays unread), and after the message is
queued, mark the original `\\Answered` / `$Forwarded` (also for a SendMail whose In-Reply-To names a
mail of the Inbox, as Outlook replies) and file exactly one copy in Sent (none when the relay files
one itself; none twice: a copy with the same Message-ID already there is not appended again).

All IMAP work runs on the mail pool through `MailService.run`, never on the reactor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed

from oxsync.eas import mailfolders
from oxsync.eas.request import EasRequest
from oxsync.eas.service import Eas
from oxsync.mail import gateway
from oxsync.mail.compose import Submission

log = logging.getLogger("oxsync.eas.mailbox_send")
ANSWERED, FORWARDED = b"\\Answered", b"$Forwarded"


@dataclass
class Source:
    folder_id: str
    item_id: str
    replace_mime: bool


@dataclass
class Original:
    folder: str
    uid: int
    raw: bytes


def source_of(req: EasRequest) -> Source | None:
    """The original a SmartReply/SmartForward names (14.0+: Source element; 12.x: query parameters)."""
    if req.cmd not in ("SmartReply", "SmartForward"):
        return None
    if req.body is None:
        item = req.params.get("ItemId", "")
        return Source(req.params.get("CollectionId", ""), item, False) if item else None
    src = req.body.find("ComposeMail:Source")
    if src is None:
        return None
    item = src.findtext("ComposeMail:ItemId", "") or src.findtext("ComposeMail:LongId", "")
    return Source(src.findtext("ComposeMail:FolderId", ""), item,
                  req.body.find("ComposeMail:ReplaceMime") is not None)


def save_in_sent(req: EasRequest) -> bool:
    if req.body is None:
        return req.params.get("SaveInSent", "").upper() == "T"
    return req.body.find("ComposeMail:SaveInSentItems") is not None


def fetch_original(eas: Eas, req: EasRequest, source: Source) -> Deferred[Original | None]:
    mail = eas.mail
    assert mail is not None
    account = req.principal.email
    limit = mail.settings.max_fetch_bytes

    def work(conn: Any) -> Original | None:
        folders = mail.list_folders_sync(conn, account)
        folder = (mailfolders.find(folders, source.folder_id) if source.folder_id
                  else mailfolders.special(folders, "inbox"))  # ItemId without FolderId: the Inbox
        if folder is None or not source.item_id.isdigit():
            return None
        found = gateway.fetch_messages(conn, folder.name, [int(source.item_id)], limit)
        got = found.get(int(source.item_id))
        return Original(folder.name, got.uid, got.raw) if got is not None else None

    return mail.run(account, work)


def after_queued(eas: Eas, req: EasRequest, submission: Submission, original: Original | None) -> Deferred[None]:
    """Flags on the original and the Sent copy; failures are logged, never undo the send."""
    mail = eas.mail
    if mail is None:
        return succeed(None)
    account = req.principal.email
    file_copy = save_in_sent(req) and not eas.settings.outbound.relay_files_sent_copy
    flag = FORWARDED if req.cmd == "SmartForward" else ANSWERED

    def work(conn: Any) -> None:
        folders = mail.list_folders_sync(conn, account)
        if original is not None:
            gateway.set_flags(conn, original.folder, original.uid, [flag], [])
        elif req.cmd == "SendMail" and submission.in_reply_to:
            inbox = mailfolders.special(folders, "inbox")
            if inbox is not None:
                conn.select_folder(inbox.name)
                for uid in conn.search(["HEADER", "Message-ID", submission.in_reply_to.strip()])[:5]:
                    conn.add_flags([uid], [ANSWERED], silent=True)
        if file_copy:
            sent = mailfolders.special(folders, "sent")
            if sent is None:
                log.warning("no Sent folder: copy not filed", extra={"event": "eas.sent_copy_missing"})
                return
            conn.select_folder(sent.name)
            if not conn.search(["HEADER", "Message-ID", submission.message_id]):
                gateway.append(conn, sent.name, submission.sent_copy, (b"\\Seen",))

    d = mail.run(account, work)
    d.addErrback(lambda failure: log.error("mailbox update after sending failed: %s", failure.getErrorMessage(),
                                           extra={"event": "eas.sent_mailbox_failed", "login": req.principal.login}))
    return d
