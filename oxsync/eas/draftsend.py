"""Sending a draft from Sync (EAS 16.x Email2:Send in a Drafts Add/Change), after phase C of mailsync.

What must hold: the draft goes through the same outbound queue as SendMail (From checked by the store,
idempotent on the key: a replayed Sync queues nothing twice); only once it is queued is it removed from
Drafts and a copy filed in Sent (unless the relay files one); without a relay, or when the store refuses
it, the draft stays where it is and a log line says why.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.defer import Deferred, succeed

from oxsync.eas import mailfolders
from oxsync.eas.maildrafts import DraftSend
from oxsync.eas.request import EasRequest
from oxsync.eas.service import Eas
from oxsync.mail import gateway
from oxsync.mail.compose import NoRecipient, Submission, prepare
from oxsync.mail.outbound import relay_of
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.draftsend")


def send_drafts(eas: Eas, req: EasRequest, sends: list[DraftSend]) -> Deferred[None]:
    if not sends or eas.mail is None:
        return succeed(None)
    mail = eas.mail
    if not relay_of(eas.settings):
        log.error("draft not sent: no SMTP relay configured ([outbound] smtp_relay)",
                  extra={"event": "eas.draft_send_unconfigured", "login": req.principal.login})
        return succeed(None)
    prepared: list[tuple[DraftSend, Submission]] = []
    for send in sends:
        try:
            prepared.append((send, prepare(send.raw, req.principal.email, req.principal.display_name)))
        except NoRecipient:
            log.warning("draft not sent: no recipient", extra={"event": "eas.draft_send_no_recipient",
                                                               "login": req.principal.login})
    account = req.principal.email
    file_copy = not eas.settings.outbound.relay_files_sent_copy

    def queue(session: UserSession) -> list[tuple[DraftSend, Submission]]:
        for send, sub in prepared:
            key = f"eas:{req.tenant_id}:{req.user_id}:{req.device_id[:64]}:{send.key}"
            session.send_mail(key, sub.from_address, sub.recipients, sub.message, sub.subject, sub.names)
        return prepared

    def file_and_remove(conn: Any, done: list[tuple[DraftSend, Submission]]) -> None:
        sent = mailfolders.special(mail.list_folders_sync(conn, account), "sent")
        for send, sub in done:
            if file_copy and sent is not None:
                conn.select_folder(sent.name)
                if not conn.search(["HEADER", "Message-ID", sub.message_id]):
                    gateway.append(conn, sent.name, sub.sent_copy, (b"\\Seen",))
            gateway.expunge(conn, send.folder_name, [send.uid])

    def failed(failure: Any) -> None:
        log.error("draft not sent: %s", failure.getErrorMessage(),
                  extra={"event": "eas.draft_send_failed", "login": req.principal.login})

    queued = eas.write(req, queue)
    return queued.addCallback(lambda done: mail.run(account, lambda conn: file_and_remove(conn, done))).addErrback(failed)
