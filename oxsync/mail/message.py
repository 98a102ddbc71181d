"""One IMAP message read for a device: headers, bodies, attachments, conversation ids, as plain data.

Parsing never raises on bad MIME (8-bit headers, broken multiparts): the stdlib parser records defects
and we take what it could read; `read_message` only fails on something it cannot even split into
headers, and the caller then skips that one mail with a reason (poison mail).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

FLAG_SEEN = b"\\Seen"
FLAG_FLAGGED = b"\\Flagged"
FLAG_ANSWERED = b"\\Answered"
FLAG_FORWARDED = b"$Forwarded"
SYSTEM_FLAGS = frozenset({b"\\Seen", b"\\Flagged", b"\\Answered", b"\\Deleted", b"\\Draft", b"\\Recent",
                          b"$Forwarded", b"$MDNSent", b"$Junk", b"$NotJunk", b"NonJunk", b"Junk"})


@dataclass
class Attachment:
    index: int
    """Position among the message's leaf parts (the FileReference suffix)."""
    name: str
    size: int
    content_type: str
    content_id: str | None
    inline: bool


@dataclass
class MailItem:
    uid: int
    subject: str
    sender: str
    to: str
    cc: str
    reply_to: str
    display_to: str
    date: datetime
    received: datetime
    message_id: str
    importance: int
    text: str | None
    html: str | None
    size: int
    raw: bytes
    attachments: list[Attachment] = field(default_factory=list)
    conversation_id: bytes = b""
    conversation_index: bytes = b""
    flags: tuple[bytes, ...] = ()

    @property
    def native_type(self) -> int:
        return 2 if self.html is not None and self.text is None else 1 if self.text is not None else 2

    @property
    def categories(self) -> list[str]:
        return sorted(f.decode("utf-8", "replace") for f in self.flags
                      if f not in SYSTEM_FLAGS and not f.startswith(b"\\"))

    def plain(self) -> str:
        if self.text is not None:
            return self.text
        return html_to_text(self.html or "")


TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.S | re.I)
SPACES = re.compile(r"[ \t\r\f\v]+")


def html_to_text(markup: str) -> str:
    return SPACES.sub(" ", html.unescape(TAGS.sub(" ", markup))).strip()


def _decoded(value: object) -> str:
    """A raw header value with its RFC 2047 words decoded (compat32 parsing: the header registry of
    policy.default cost ~10 ms a message, most of an initial sync); undecodable parts stay as they are."""
    text = value if isinstance(value, str) else str(value)
    with contextlib.suppress(Exception):  # unknown charset or a broken encoded word: keep the raw text
        text = str(make_header(decode_header(text)))
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def _addresses(msg: Message, name: str) -> str:
    return ", ".join(_decoded(v) for v in msg.get_all(name, []))


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return _decoded(value) if value is not None else ""


def _content(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(payload or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", "replace")


def conversation_ids(msg: Message, message_id: str, date: datetime) -> tuple[bytes, bytes]:
    """ConversationId: 16 bytes from the References root, else In-Reply-To, else Message-ID (as SOGo);
    ConversationIndex: the 22-byte header block (reserved byte + 5 bytes of FILETIME + the id's 16)."""
    references = _header(msg, "References").split()
    root = references[0] if references else (_header(msg, "In-Reply-To").strip() or message_id)
    conv = hashlib.md5(root.encode("utf-8", "replace"), usedforsecurity=False).digest()
    filetime = int((date.timestamp() + 11644473600) * 10_000_000)
    index = b"\x01" + filetime.to_bytes(8, "big")[:5] + conv
    return conv, index


def read_message(uid: int, raw: bytes, flags: tuple[bytes, ...], received: datetime | None,
                 size: int | None = None) -> MailItem:
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    text_body: str | None = None
    html_body: str | None = None
    attachments: list[Attachment] = []
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    for index, part in enumerate(leaves):
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if disposition != "attachment" and not filename and ctype == "text/plain" and text_body is None:
            text_body = _content(part)
        elif disposition != "attachment" and not filename and ctype == "text/html" and html_body is None:
            html_body = _content(part)
        elif part is not msg or filename:
            payload = part.get_payload(decode=True)
            cid = _header(part, "Content-ID").strip("<> ") or None
            attachments.append(Attachment(index, _decoded(filename) if filename else f"part{index}", len(payload or b""), ctype, cid,
                                          disposition == "inline"))
    when = received or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        sent = parsedate_to_datetime(_header(msg, "Date")) if _header(msg, "Date") else when
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError):
        sent = when
    message_id = _header(msg, "Message-ID").strip()
    priority = _header(msg, "Importance").lower() or _header(msg, "X-Priority")[:1]
    importance = 2 if priority in ("high", "1", "2") else 0 if priority in ("low", "4", "5") else 1
    to = _addresses(msg, "To")
    display = ", ".join(name or addr for name, addr in getaddresses([to])) if to else ""
    conv, conv_index = conversation_ids(msg, message_id, sent)
    return MailItem(uid, _header(msg, "Subject"), _addresses(msg, "From"), to, _addresses(msg, "Cc"),
                    _addresses(msg, "Reply-To"), display, sent.astimezone(UTC), when.astimezone(UTC), message_id,
                    importance, text_body, html_body, size if size is not None else len(raw), raw, attachments,
                    conv, conv_index, flags)


def attachment_bytes(raw: bytes, index: int) -> tuple[str, bytes] | None:
    """(content type, decoded bytes) of leaf part `index`, or None."""
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    if not 0 <= index < len(leaves):
        return None
    payload = leaves[index].get_payload(decode=True)
    return leaves[index].get_content_type(), payload if isinstance(payload, bytes) else b""
