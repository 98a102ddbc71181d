"""Turn the MIME a client submits into what the queue sends: recipients, From, Bcc removed.

Shared by every dialect that sends a user's mail (today ActiveSync SendMail/SmartReply/SmartForward).
The client's message is kept as sent except for the headers a submission must have: Bcc is removed
(its addresses stay in the envelope), and a missing From, Date or Message-ID is added. Parsing uses the
stdlib `email` package with the SMTP policy (CRLF line ends on output).
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr


class NoRecipient(ValueError):
    """The message names nobody in To, Cc or Bcc."""


@dataclass
class Submission:
    from_address: str
    recipients: list[str]
    message: bytes
    subject: str
    message_id: str
    in_reply_to: str
    names: dict[str, str]
    """Display names given to recipients, by lower-cased address."""


def prepare(raw: bytes, account_email: str, display_name: str = "") -> Submission:
    msg: EmailMessage = BytesParser(policy=policy.SMTP).parsebytes(raw)  # type: ignore[assignment]
    pairs = getaddresses([str(v) for name in ("To", "Cc", "Bcc") for v in msg.get_all(name, [])])
    recipients = sorted({addr.strip() for _, addr in pairs if "@" in addr})
    if not recipients:
        raise NoRecipient("no recipients")
    del msg["Bcc"]
    if msg["From"] is None:
        msg["From"] = formataddr((display_name, account_email)) if display_name else account_email
    from_address = parseaddr(str(msg["From"]))[1] or account_email
    if msg["Date"] is None:
        msg["Date"] = formatdate(localtime=False)
    if msg["Message-ID"] is None:
        msg["Message-ID"] = make_msgid(domain=from_address.rpartition("@")[2] or None)
    names = {addr.strip().lower(): name for name, addr in pairs if "@" in addr and name}
    return Submission(from_address, recipients, msg.as_bytes(policy=policy.SMTP), str(msg["Subject"] or ""),
                      str(msg["Message-ID"]), str(msg["In-Reply-To"] or ""), names)
