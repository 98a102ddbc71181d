"""SendMail / SmartReply / SmartForward: relay the device's MIME message through the smarthost.

Never silently dropped: without `[eas] smtp_smarthost` the answer is Status 120 (14.0+) or HTTP 500
(<= 12.1) and a log line says the relay is not configured. The ClientId is the idempotency key: a
ClientId already sent gets Status 118 and is not sent again. Recipients come from To/Cc/Bcc (Bcc is
removed from the relayed headers); the envelope sender is the account's address. smtplib runs on
the reactor's thread pool (never on the store pool, never on the reactor).
"""

from __future__ import annotations

import logging
import smtplib
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from oxsync.eas import protocol, state
from oxsync.eas.request import EasRequest, EasResponse, command
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.mail")
SENT = "sent"
MAX_REMEMBERED = 200


class SendFailed(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _failure(req: EasRequest, status: int) -> EasResponse:
    if req.v < 14.0:
        return EasResponse(None, code=500)
    return EasResponse(E(f"ComposeMail:{req.cmd}", E("ComposeMail:Status", str(status))))


def _message(req: EasRequest) -> tuple[str, bytes]:
    if req.body is None:
        return req.params.get("ClientId", "") or f"raw-{time.time_ns()}", req.raw
    mime = req.body.find("ComposeMail:Mime")
    data = (mime.opaque if mime.opaque is not None else (mime.text or "").encode()) if mime is not None else b""
    return req.body.findtext("ComposeMail:ClientId", "")[:64], data


def relay(host: str, timeout: float, sender: str, raw: bytes) -> int:
    """Parse, check recipients and hand to the smarthost; returns the number of recipients."""
    msg: EmailMessage = BytesParser(policy=policy.SMTP).parsebytes(raw)  # type: ignore[assignment]
    recipients = [addr for _, addr in getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []) +
                                                   msg.get_all("Bcc", [])) if "@" in addr]
    if not recipients:
        raise SendFailed(protocol.MESSAGE_HAS_NO_RECIPIENT, "no recipients")
    del msg["Bcc"]
    if msg["From"] is None:
        msg["From"] = sender
    name, _, port = host.rpartition(":") if ":" in host else (host, "", "25")
    try:
        with smtplib.SMTP(name or host, int(port or 25), timeout=timeout) as smtp:
            smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(protocol.MAIL_SUBMISSION_FAILED, f"smarthost refused: {exc}") from exc
    return len(recipients)


def send(eas: Eas, req: EasRequest) -> Deferred[EasResponse] | EasResponse:
    client_id, raw = _message(req)
    host = eas.config.smtp_smarthost
    if not host:
        log.error("SendMail refused: no SMTP smarthost configured ([eas] smtp_smarthost)",
                  extra={"event": "eas.sendmail_unconfigured", "login": req.principal.login, "device": req.device_id})
        return _failure(req, protocol.MAIL_SUBMISSION_FAILED)
    if not raw.strip():
        return _failure(req, protocol.INVALID_CONTENT)

    def claim(session: UserSession) -> bool:
        sent = session.get_state(req.device_id, SENT) or {"ids": []}
        if client_id in sent["ids"]:
            return False
        sent["ids"] = (sent["ids"] + [client_id])[-MAX_REMEMBERED:]
        session.put_state(req.device_id, SENT, sent)
        return True

    def release(session: UserSession) -> None:
        sent = session.get_state(req.device_id, SENT) or {"ids": []}
        session.put_state(req.device_id, SENT, {"ids": [i for i in sent["ids"] if i != client_id]})

    def claimed(fresh: bool) -> Any:
        if not fresh:
            return _failure(req, protocol.MESSAGE_PREVIOUSLY_SENT)
        d = deferToThread(relay, host, eas.config.smtp_timeout_seconds, req.principal.email, raw)
        d.addCallbacks(sent, failed)
        return d

    def sent(count: int) -> EasResponse:
        log.info("mail relayed", extra={"event": "eas.sendmail", "login": req.principal.login, "recipients": count})
        return EasResponse(None)

    def failed(failure: Any) -> Any:
        status = failure.value.status if failure.check(SendFailed) else protocol.MAIL_SUBMISSION_FAILED
        log.warning("SendMail failed: %s", failure.getErrorMessage(), extra={"event": "eas.sendmail_failed",
                                                                          "login": req.principal.login})
        d = eas.write(req, release) if req.device_id not in state.NOT_PERSISTED_DEVICES else None
        response = _failure(req, status)
        return d.addCallback(lambda _: response) if d is not None else response

    if req.device_id in state.NOT_PERSISTED_DEVICES:
        return claimed(True)
    return eas.write(req, claim).addCallback(claimed)


for _name in ("SendMail", "SmartReply", "SmartForward"):
    command(_name)(send)
