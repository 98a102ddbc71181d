"""Email class (MS-ASEMAIL, MS-ASAIRS): an IMAP message as ApplicationData, and a device's flag changes.

Body selection follows the device's BodyPreference list in order: type 1 plain, 2 HTML, 4 MIME (only
with MIMESupport 2 — or 1 for S/MIME — as MS-ASCMD says); a TruncationSize cuts the data and sets
Truncated, unless AllOrNone asks for all or nothing, in which case the next preference is tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oxsync.eas.mapping import meeting
from oxsync.eas.wbxml import E, Element
from oxsync.mail.invitation import find_invitation
from oxsync.mail.message import FLAG_ANSWERED, FLAG_FLAGGED, FLAG_FORWARDED, FLAG_SEEN, MailItem


@dataclass(frozen=True)
class BodyPref:
    kind: int
    truncation: int | None = None
    all_or_none: bool = False
    preview: int = 0


@dataclass(frozen=True)
class Rendering:
    version: float
    prefs: tuple[BodyPref, ...] = (BodyPref(1),)
    mime_support: int = 0
    mime_truncation: int | None = None
    """AirSync MIMETruncation as bytes: caps a MIME (type 4) body that has no TruncationSize of its own."""


def eas_date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def file_reference(collection_id: str, uid: int, index: int) -> str:
    """`<collection>:<uid>:<part>`: enough to fetch the part again, meaningless to anyone else's mailbox."""
    return f"{collection_id}:{uid}:{index}"


def parse_file_reference(ref: str) -> tuple[str, int, int] | None:
    parts = ref.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def _is_smime(item: MailItem) -> bool:
    return any(a.content_type in ("application/pkcs7-mime", "application/x-pkcs7-mime",
                                  "application/pkcs7-signature") for a in item.attachments)


def _body_data(item: MailItem, kind: int) -> str:
    if kind == 4:
        return item.raw.decode("utf-8", "replace")
    if kind == 2:
        if item.html is not None:
            return item.html
        return "<html><body><pre>" + (item.text or "").replace("&", "&amp;").replace("<", "&lt;") + \
            "</pre></body></html>"
    return item.plain()


def body_element(item: MailItem, rendering: Rendering) -> Element:
    chosen: Element | None = None
    for pref in rendering.prefs:
        kind = pref.kind
        if kind == 4 and not (rendering.mime_support == 2 or (rendering.mime_support == 1 and _is_smime(item))):
            kind = 2 if item.html is not None else 1
        if kind not in (1, 2, 4):
            continue
        data = _body_data(item, kind)
        encoded = data.encode("utf-8")
        limit = pref.truncation
        if kind == 4 and limit is None:
            limit = rendering.mime_truncation
        truncated = limit is not None and len(encoded) > limit
        if truncated and pref.all_or_none:
            if chosen is None:
                chosen = E("AirSyncBase:Body", E("AirSyncBase:Type", str(kind)),
                           E("AirSyncBase:EstimatedDataSize", str(len(encoded))), E("AirSyncBase:Truncated", "1"))
            continue
        if truncated:
            data = encoded[:limit].decode("utf-8", "ignore")
        body = E("AirSyncBase:Body", E("AirSyncBase:Type", str(kind)),
                 E("AirSyncBase:EstimatedDataSize", str(len(encoded))))
        if truncated:
            body.append(E("AirSyncBase:Truncated", "1"))
        body.append(E("AirSyncBase:Data", data))
        if pref.preview and rendering.version >= 14.0:
            body.append(E("AirSyncBase:Preview", " ".join(item.plain().split())[:pref.preview]))
        return body
    return chosen or E("AirSyncBase:Body", E("AirSyncBase:Type", "1"), E("AirSyncBase:EstimatedDataSize", "0"),
                       E("AirSyncBase:Data", ""))


def flag_element(flags: tuple[bytes, ...]) -> Element:
    if FLAG_FLAGGED in flags:
        return E("Email:Flag", E("Email:Status", "2"), E("Email:FlagType", "for Follow Up"))
    return E("Email:Flag")


def last_verb(flags: tuple[bytes, ...]) -> str | None:
    if FLAG_FORWARDED in flags:
        return "3"
    if FLAG_ANSWERED in flags:
        return "1"
    return None


def flag_elements(flags: tuple[bytes, ...], version: float, categories: list[str]) -> list[Element]:
    """What a flag change alone sends (Sync Change): Read, Flag, Categories, LastVerbExecuted."""
    out = [E("Email:Read", "1" if FLAG_SEEN in flags else "0"), flag_element(flags)]
    if version >= 14.0:
        out.append(E("Email:Categories", *[E("Email:Category", c) for c in categories]))
        verb = last_verb(flags)
        if verb is not None:
            out.append(E("Email2:LastVerbExecuted", verb))
    return out


def to_eas(item: MailItem, collection_id: str, rendering: Rendering) -> Element:
    v = rendering.version
    data = E("AirSync:ApplicationData")
    for tag, value in (("Email:To", item.to), ("Email:Cc", item.cc), ("Email:From", item.sender),
                       ("Email:Subject", item.subject), ("Email:ReplyTo", item.reply_to)):
        if value:
            data.append(E(tag, value))
    data.append(E("Email:DateReceived", eas_date(item.received)))
    if item.display_to:
        data.append(E("Email:DisplayTo", item.display_to))
    data.append(E("Email:ThreadTopic", item.subject))
    data.append(E("Email:Importance", str(item.importance)))
    data.append(E("Email:Read", "1" if FLAG_SEEN in item.flags else "0"))
    if item.attachments:
        data.append(E("AirSyncBase:Attachments", *[E(
            "AirSyncBase:Attachment", E("AirSyncBase:DisplayName", a.name),
            E("AirSyncBase:FileReference", file_reference(collection_id, item.uid, a.index)),
            E("AirSyncBase:Method", "1"), E("AirSyncBase:EstimatedDataSize", str(a.size)),
            *([E("AirSyncBase:ContentId", a.content_id)] if a.content_id else []),
            *([E("AirSyncBase:IsInline", "1")] if a.inline else [])) for a in item.attachments]))
    data.append(body_element(item, rendering))
    invitation = find_invitation(item.raw)
    if invitation is not None:  # an iMIP mail: shown as a meeting request / answer (mapping/meeting.py)
        data.append(E("Email:MessageClass", meeting.message_class(invitation)))
        request = meeting.meeting_request(invitation, v)
        if request is not None:
            data.append(request)
    else:
        data.append(E("Email:MessageClass", "IPM.Note.SMIME" if _is_smime(item) else "IPM.Note"))
    data.append(E("Email:InternetCPID", "65001"))
    data.append(flag_element(item.flags))
    data.append(E("Email:ContentClass", "urn:content-classes:message"))
    data.append(E("AirSyncBase:NativeBodyType", str(item.native_type)))
    if v >= 14.0:
        data.append(E("Email2:ConversationId", item.conversation_id))
        data.append(E("Email2:ConversationIndex", item.conversation_index))
        verb = last_verb(item.flags)
        if verb is not None:
            data.append(E("Email2:LastVerbExecuted", verb))
        data.append(E("Email:Categories", *[E("Email:Category", c) for c in item.categories]))
    return data


@dataclass
class FlagChange:
    add: list[bytes]
    remove: list[bytes]
    categories: list[str] | None


def from_eas_change(data: Element, current: tuple[bytes, ...]) -> FlagChange:
    """A device Change of Read / Flag / Categories as IMAP flags to add and remove."""
    add: list[bytes] = []
    remove: list[bytes] = []
    read = data.findtext("Email:Read")
    if read is not None:
        (add if read.strip() == "1" else remove).append(FLAG_SEEN)
    flag = data.find("Email:Flag")
    if flag is not None:
        status = flag.findtext("Email:Status", "0").strip()
        (add if status == "2" else remove).append(FLAG_FLAGGED)
    categories = None
    cats = data.find("Email:Categories")
    if cats is not None:
        categories = [c.value_text().strip() for c in cats.findall("Email:Category") if c.value_text().strip()]
        wanted = {keyword(c) for c in categories}
        have = {f for f in current if not f.startswith(b"\\") and not f.startswith(b"$")}
        add += sorted(wanted - have)
        remove += sorted(have - wanted)
    return FlagChange(add, remove, categories)


def keyword(category: str) -> bytes:
    """An IMAP keyword (atom) for a category name: spaces and specials become '_' (RFC 3501 atom-specials)."""
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in "-_.+" else "_" for c in category)[:64] or "_"
    return cleaned.encode("utf-8")
