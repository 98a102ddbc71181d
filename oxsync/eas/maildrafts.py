"""Drafts over ActiveSync 16.x (MS-ASCMD Sync Add/Change in the Drafts folder; MS-ASEMAIL 16.0 drafts).

What must hold:
- an Add in the Drafts folder becomes an IMAP APPEND with `\\Draft` (and `\\Seen`) there; the new UID
  (APPENDUID, UIDPLUS) is the ServerId answered with the device's ClientId, and the device's state holds
  it with its flags' fingerprint, so the draft never comes back to it as a second Add;
- IMAP cannot edit a message: a Change of a draft's content appends the new version and expunges the
  old one; the device keeps the ServerId it knows (state ``drafts``: its ServerId -> current UID), and the
  old UID's disappearance is no Delete for it;
- elements the Change leaves out keep their old values (To, Cc, Bcc, Subject, Body);
- Email2:Send in an Add or Change queues the draft on the outbound queue (eas/draftsend.py) and only then
  removes it from Drafts and files a copy in Sent: a failed queue loses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from typing import Any

from oxsync.eas.wbxml import E, Element
from oxsync.mail import gateway

DRAFT_FLAGS = (b"\\Draft", b"\\Seen")
APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")
MAX_DRAFT_CHARS = 1_000_000
"""Largest body a device may store as a draft (characters); longer ones are refused with Status 6."""

FIELDS = (("Email:To", "to"), ("Email:Cc", "cc"), ("Email2:Bcc", "bcc"), ("Email:Subject", "subject"))
"""ApplicationData element -> Draft attribute (the body is read from AirSyncBase:Body)."""


@dataclass(frozen=True)
class DraftSend:
    """A draft to send: where it is, its MIME, and the queue's idempotency key (ClientId or draft UID)."""

    folder_name: str
    uid: int
    raw: bytes
    key: str


@dataclass(frozen=True)
class Draft:
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    html: bool = False


def is_content(data: Element) -> bool:
    """Does this ApplicationData change a draft's content (not only Read/Flag/Categories)?"""
    return any(data.find(tag) is not None for tag, _ in FIELDS) or data.find("AirSyncBase:Body") is not None


def wants_send(cmd: Element) -> bool:
    data = cmd.find("AirSync:ApplicationData")
    return data is not None and data.find("Email2:Send") is not None


def from_eas(data: Element, base: Draft) -> Draft:
    changes: dict[str, Any] = {attr: data.findtext(tag, "") for tag, attr in FIELDS if data.find(tag) is not None}
    body = data.find("AirSyncBase:Body")
    if body is not None:
        text = body.findtext("AirSyncBase:Data", "")
        if len(text) > MAX_DRAFT_CHARS:
            raise ValueError("draft body too large")
        changes["body"], changes["html"] = text, body.findtext("AirSyncBase:Type", "1") == "2"
    return replace(base, **changes)


def from_message(raw: bytes) -> Draft:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    part = msg.get_body(("plain", "html")) if isinstance(msg, EmailMessage) else None
    content = part.get_content() if part is not None else ""
    return Draft(str(msg.get("To", "")), str(msg.get("Cc", "")), str(msg.get("Bcc", "")), str(msg.get("Subject", "")),
                 content if isinstance(content, str) else "", part is not None and part.get_content_subtype() == "html")


def to_mime(draft: Draft, sender: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    for header, value in (("To", draft.to), ("Cc", draft.cc), ("Bcc", draft.bcc), ("Subject", draft.subject)):
        if value:
            msg[header] = value
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(draft.body, subtype="html" if draft.html else "plain")
    return msg.as_bytes(policy=policy.SMTP)


def append(conn: Any, folder_name: str, raw: bytes) -> int | None:
    """APPEND as a draft; the new UID from APPENDUID (None if the server gave none)."""
    answer = conn.append(folder_name, raw, DRAFT_FLAGS)
    found = APPENDUID.search(answer if isinstance(answer, bytes) else str(answer).encode())
    return int(found.group(1)) if found else None


def add(conn: Any, folder: Any, sender: str, cmd: Element) -> tuple[Element, int | None]:
    """One Sync Add in the Drafts folder: the response and the new UID (None when refused)."""
    client_id = cmd.findtext("AirSync:ClientId", "")[:64]
    data = cmd.find("AirSync:ApplicationData")
    try:
        draft = from_eas(data if data is not None else E("AirSync:ApplicationData"), Draft())
    except ValueError:
        return E("AirSync:Add", E("AirSync:ClientId", client_id), E("AirSync:Status", "6")), None
    uid = append(conn, folder.name, to_mime(draft, sender))
    if uid is None:
        return E("AirSync:Add", E("AirSync:ClientId", client_id), E("AirSync:Status", "5")), None
    return E("AirSync:Add", E("AirSync:ClientId", client_id), E("AirSync:ServerId", str(uid)),
             E("AirSync:Status", "1")), uid


def replace_draft(conn: Any, folder: Any, sender: str, uid: int, data: Element, max_bytes: int) -> int | None:
    """A Change of a draft's content: the new version appended, the old one expunged; its UID (None: gone)."""
    got = gateway.fetch_messages(conn, folder.name, [uid], max_bytes)
    if uid not in got:
        return None
    new_uid = append(conn, folder.name, to_mime(from_eas(data, from_message(got[uid].raw)), sender))
    if new_uid is not None:
        gateway.expunge(conn, folder.name, [uid])
    return new_uid
