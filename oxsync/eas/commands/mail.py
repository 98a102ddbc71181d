"""SendMail / SmartReply / SmartForward: the device's MIME message goes into the outbound queue.

Never silently dropped: without an SMTP relay (`[outbound] smtp_relay`, or the older `[eas]
smtp_smarthost`) the answer is Status 120 (14.0+) or HTTP 500 (<= 12.1) and a log line says so. The
message is queued in one store transaction (From checked against the account's primary and send-as
addresses: Status 130 / HTTP 403 otherwise) and sent by the queue workers (oxsync/mail/outbound.py),
retried until the relay takes it. The ClientId (12.x: the message's digest) is the queue's
idempotency key: a ClientId already queued gets Status 118 and nothing is sent again.
With a mail server (`[mail]`), SmartReply/SmartForward complete the message with the original
(unless ReplaceMime), the original is flagged and one copy is filed in Sent (eas/mailbox_send.py).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from twisted.internet.defer import Deferred

from oxsync.eas import mailbox_send, protocol
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E
from oxsync.mail.compose import NoRecipient, prepare
from oxsync.mail.compose import with_original as with_original_text
from oxsync.mail.outbound import relay_of
from oxsync.store.errors import InvalidData, PermissionDenied
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.mail")
HTTP_FOR_STATUS = {protocol.ACCESS_DENIED: 403}


def _failure(req: EasRequest, status: int) -> EasResponse:
    if req.v < 14.0:
        return EasResponse(None, code=HTTP_FOR_STATUS.get(status, 500))
    return EasResponse(E(f"ComposeMail:{req.cmd}", E("ComposeMail:Status", str(status))))


def _message(req: EasRequest) -> tuple[str, bytes]:
    """(ClientId, MIME); 12.x sends raw MIME and no ClientId, so its digest stands in for one."""
    if req.body is None:
        client_id = req.params.get("ClientId", "")[:64]
        return client_id or "sha256:" + hashlib.sha256(req.raw).hexdigest()[:40], req.raw
    mime = req.body.find("ComposeMail:Mime")
    data = (mime.opaque if mime.opaque is not None else (mime.text or "").encode()) if mime is not None else b""
    client_id = req.body.findtext("ComposeMail:ClientId", "")[:64]
    return client_id or "sha256:" + hashlib.sha256(data).hexdigest()[:40], data


def send(eas: Eas, req: EasRequest) -> Deferred[EasResponse] | EasResponse:
    client_id, raw = _message(req)
    if not relay_of(eas.settings):
        log.error("SendMail refused: no SMTP relay configured ([outbound] smtp_relay)",
                  extra={"event": "eas.sendmail_unconfigured", "login": req.principal.login, "device": req.device_id})
        return _failure(req, protocol.MAIL_SUBMISSION_FAILED)
    if not raw.strip():
        return _failure(req, protocol.INVALID_CONTENT)
    source = mailbox_send.source_of(req)
    if eas.mail is None or source is None or source.replace_mime:
        return _send(eas, req, client_id, raw, None)

    def with_original(original: mailbox_send.Original | None) -> Any:
        if original is None:
            return _failure(req, protocol.ITEM_NOT_FOUND)
        completed = with_original_text(raw, original.raw, forward=req.cmd == "SmartForward",
                                       as_attachment=eas.settings.outbound.forward_as_attachment)
        return _send(eas, req, client_id, completed, original)

    fetched = mailbox_send.fetch_original(eas, req, source)
    return fetched.addCallback(with_original).addErrback(lambda failure: _failure(req, protocol.MAIL_SUBMISSION_FAILED))


def _send(eas: Eas, req: EasRequest, client_id: str, raw: bytes,
          original: mailbox_send.Original | None) -> Deferred[EasResponse] | EasResponse:
    try:
        submission = prepare(raw, req.principal.email, req.principal.display_name)
    except NoRecipient:
        return _failure(req, protocol.MESSAGE_HAS_NO_RECIPIENT)
    key = f"eas:{req.tenant_id}:{req.user_id}:{req.device_id[:64]}:{client_id}"

    def queue(session: UserSession) -> bool:
        return session.send_mail(key, submission.from_address, submission.recipients, submission.message,
                                 submission.subject, submission.names)

    def queued(fresh: bool) -> Any:
        if not fresh:
            return _failure(req, protocol.MESSAGE_PREVIOUSLY_SENT)
        log.info("mail queued", extra={"event": "eas.sendmail", "login": req.principal.login,
                                       "recipients": len(submission.recipients), "command": req.cmd})
        return mailbox_send.after_queued(eas, req, submission, original).addCallback(lambda _: EasResponse(None))

    def refused(failure: Any) -> EasResponse:
        if failure.check(PermissionDenied):
            log.warning("SendMail refused: may not send as %s", submission.from_address,
                        extra={"event": "eas.sendmail_from_refused", "login": req.principal.login})
            return _failure(req, protocol.ACCESS_DENIED)
        if failure.check(InvalidData):
            return _failure(req, protocol.INVALID_CONTENT)
        log.error("SendMail failed: %s", failure.getErrorMessage(), extra={"event": "eas.sendmail_failed",
                                                                         "login": req.principal.login})
        return _failure(req, protocol.SERVER_ERROR if req.v >= 14.0 else protocol.MAIL_SUBMISSION_FAILED)

    return eas.write(req, queue).addCallbacks(queued, refused)

