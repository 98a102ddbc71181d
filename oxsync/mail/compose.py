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
    sent_copy: bytes
    """What the Sent folder keeps (with its Bcc header)."""


def prepare(raw: bytes, account_email: str, display_name: str = "") -> Submission:
    msg: EmailMessage = BytesParser(policy=policy.SMTP).parsebytes(raw)
    pairs = getaddresses([str(v) for name in ("To", "Cc", "Bcc") for v in msg.get_all(name, [])])
    recipients = sorted({addr.strip() for _, addr in pairs if "@" in addr})
    if not recipients:
        raise NoRecipient("no recipients")
    if msg["From"] is None:
        msg["From"] = formataddr((display_name, account_email)) if display_name else account_email
    from_address = parseaddr(str(msg["From"]))[1] or account_email
    if msg["Date"] is None:
        msg["Date"] = formatdate(localtime=False)
    if msg["Message-ID"] is None:
        msg["Message-ID"] = make_msgid(domain=from_address.rpartition("@")[2] or None)
    sent_copy = msg.as_bytes(policy=policy.SMTP)  # the Sent folder keeps the Bcc line
    del msg["Bcc"]
    names = {addr.strip().lower(): name for name, addr in pairs if "@" in addr and name}
    return Submission(from_address, recipients, msg.as_bytes(policy=policy.SMTP), str(msg["Subject"] or ""),
                      str(msg["Message-ID"]), str(msg["In-Reply-To"] or ""), names, sent_copy)


# ------------------------------------------------------------------------------ SmartReply / SmartForward

def _parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def _bodies(msg: EmailMessage) -> tuple[str, str]:
    """(plain text, html) of a message's main body ("" when absent)."""
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return (plain.get_content() if plain is not None else "", html.get_content() if html is not None else "")


def _html_escape(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "<br>\n")


def _header_block(original: EmailMessage) -> list[tuple[str, str]]:
    return [(name, str(original[name])) for name in ("From", "Date", "Subject", "To", "Cc") if original[name]]


def _insert_html(html: str, addition: str) -> str:
    """Put `addition` inside the body (before </body>, never after </html>)."""
    lower = html.lower()
    at = lower.rfind("</body>")
    if at < 0:
        at = lower.rfind("</html>")
    return html[:at] + addition + html[at:] if at >= 0 else html + addition


def _extend_text_parts(msg: EmailMessage, plain_add: str, html_add: str) -> None:
    """Append to every text/plain and text/html body part of the client's message, in place."""
    targets = [p for p in msg.walk() if p.get_content_maintype() == "text" and not p.is_attachment()
               and p.get_content_subtype() in ("plain", "html")]
    if not targets:
        msg.set_content(plain_add.lstrip("\n"))
        return
    for part in targets:
        text = part.get_content()
        charset = "utf-8"
        if part.get_content_subtype() == "html":
            part.set_content(_insert_html(text, html_add), subtype="html", charset=charset)
        else:
            part.set_content(text.rstrip("\n") + "\n" + plain_add, charset=charset)


def with_original(client_raw: bytes, original_raw: bytes, *, forward: bool, as_attachment: bool = False) -> bytes:
    """The client's reply or forward completed with the original: a reply quotes its text (HTML inside
    the body); a forward carries its text and attachments inline, or the whole original as
    message/rfc822 when `as_attachment`."""
    msg = _parse(client_raw)
    original = _parse(original_raw)
    plain, html = _bodies(original)
    if not plain and html:
        import re

        plain = re.sub(r"<[^>]+>", "", html)
    headers = _header_block(original)
    if forward and as_attachment:
        _mixed(msg)
        msg.attach(_rfc822(original_raw))
        return msg.as_bytes(policy=policy.SMTP)
    if forward:
        plain_add = "\n---------- Forwarded message ----------\n" + "".join(f"{k}: {v}\n" for k, v in headers) + \
            "\n" + plain
        html_add = ("<div><br>---------- Forwarded message ----------<br>" +
                    "".join(f"{_html_escape(k)}: {_html_escape(v)}<br>" for k, v in headers) + "<br></div>" +
                    (_body_inner(html) if html else _html_escape(plain)))
    else:
        who = str(original["From"] or "someone")
        when = str(original["Date"] or "")
        intro = f"On {when}, {who} wrote:" if when else f"{who} wrote:"
        plain_add = "\n" + intro + "\n" + "".join(f"> {line}\n" if line else ">\n" for line in plain.splitlines())
        html_add = (f"<div>{_html_escape(intro)}</div><blockquote type=\"cite\" style=\"margin:0 0 0 .8ex;"
                    f"border-left:1px solid #ccc;padding-left:1ex\">"
                    f"{_body_inner(html) if html else _html_escape(plain)}</blockquote>")
    _extend_text_parts(msg, plain_add, html_add)
    if forward:
        for attachment in original.iter_attachments():
            _mixed(msg)
            msg.attach(attachment)
    return msg.as_bytes(policy=policy.SMTP)


def _mixed(msg: EmailMessage) -> None:
    """Make `msg` multipart/mixed, its own body (headers made explicit first) becoming the first part."""
    if msg.get_content_type() == "multipart/mixed":
        return
    if not msg.is_multipart() and msg.get("Content-Type") is None:
        msg.set_content(msg.get_content())
    msg.make_mixed()


def _body_inner(html: str) -> str:
    import re

    found = re.search(r"(?is)<body[^>]*>(.*)</body>", html)
    return found.group(1) if found else html


def _rfc822(raw: bytes) -> EmailMessage:
    part = EmailMessage()
    part.set_content(_parse(raw), disposition="attachment", filename="forwarded.eml")
    return part
