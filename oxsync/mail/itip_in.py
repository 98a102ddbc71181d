"""Mail delivered to a user, handed to oxsync by the MTA or Sieve: iMIP answers and collected senders.

iMIP answers coming back: a mail carrying `text/calendar; method=REPLY`, delivered to the organiser,
updates that outside attendee's status in the store (so Outlook, phones and CalDAV show it).

Taken from a delivery hand-off, not from the mail sync: `oxsync mail itip-in RECIPIENT < message`
is what the MTA or Dovecot's Sieve `pipe` (sieve_extprograms) runs for mails with a text/calendar
part (docs/outbound-mail.md). That works when no device is connected and costs no IMAP polling; the
mail itself is still delivered to the Inbox as usual. Repeated REPLYs (iOS sends them again) change
nothing. The REPLY must come from the attendee it speaks for (From = ATTENDEE), else it is ignored.

Collected addresses: the sender of a delivered mail joins the recipient's "Collected addresses" when
the account collects (store/collect.py), unless it is list or automatic mail (List-Id, Precedence:
bulk/list/junk, Auto-Submitted). `oxsync mail delivered RECIPIENT < message` does both.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr

from icalendar import Calendar

from oxsync.store.api import Store

log = logging.getLogger("oxsync.mail.itip_in")
CALENDAR_PART = re.compile(rb"(?i)text/calendar|application/ics")
MAX_PARTS = 20


@dataclass
class Reply:
    uid: str
    instance: str
    attendee: str
    partstat: str
    comment: str


def _address(value: object) -> str:
    text = str(value)
    return (text[7:] if text.lower().startswith("mailto:") else text).strip().lower()


def replies_in(raw: bytes) -> list[Reply]:
    """Every (event, attendee, PARTSTAT) a METHOD:REPLY calendar part of the message carries."""
    msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
    found: list[Reply] = []
    parts = [p for p in msg.walk() if p.get_content_type() in ("text/calendar", "application/ics")][:MAX_PARTS]
    for part in parts:
        try:
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):  # None for a multipart
                payload = b""
            cal = Calendar.from_ical(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        except ValueError:
            continue
        if str(cal.get("METHOD", "")).upper() != "REPLY":
            continue
        for event in cal.walk("VEVENT"):
            recurrence = event.get("RECURRENCE-ID")
            instance = ""
            if recurrence is not None:
                moment = recurrence.dt
                instance = (moment.date() if hasattr(moment, "date") else moment).isoformat()
            attendees = event.get("ATTENDEE", [])
            for attendee in attendees if isinstance(attendees, list) else [attendees]:
                found.append(Reply(str(event.get("UID", "")), instance, _address(attendee),
                                   str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")), str(event.get("COMMENT", ""))))
    return found


def handle(store: Store, recipient: str, raw: bytes) -> list[str]:
    """Apply the REPLYs of a mail delivered to `recipient`; returns one outcome per answer."""
    found = store.resolve_login(recipient)
    if found is None:
        return ["unknown recipient"]
    msg = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    sender = parseaddr(str(msg.get("From", "")))[1].strip().lower()
    outcomes = []
    for reply in replies_in(raw):
        if reply.attendee != sender:
            outcomes.append(f"{reply.attendee}: not from the attendee ({sender})")
            continue
        with store.session(found[0], found[1], write=True) as session:
            outcome = session.apply_itip_reply(reply.uid, reply.attendee, reply.partstat, reply.comment,
                                               reply.instance)
        log.info("iMIP reply: %s", outcome, extra={"event": "imip.reply_in", "uid": reply.uid[:100]})
        outcomes.append(f"{reply.attendee}: {outcome}")
    return outcomes or ["no iMIP REPLY in the message"]


# ------------------------------------------------------------------------------ collected senders

LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post")
BULK_PRECEDENCE = ("bulk", "list", "junk")


def is_list_mail(msg: EmailMessage) -> bool:
    """Mailing-list or automatic mail, whose senders are not collected (the hosting FAQ's warning)."""
    if any(msg.get(h) for h in LIST_HEADERS):
        return True
    if str(msg.get("Precedence", "")).strip().lower() in BULK_PRECEDENCE:
        return True
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    return auto not in ("", "no")


def collect_sender(store: Store, recipient: str, raw: bytes) -> str:
    """Put the sender of a delivered mail in the recipient's collected addresses (when they collect)."""
    found = store.resolve_login(recipient)
    if found is None:
        return "unknown recipient"
    msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    if is_list_mail(msg):
        return "list mail: sender not collected"
    name, address = parseaddr(str(msg.get("From", "")))
    if "@" not in address:
        return "no sender"
    with store.session(found[0], found[1], write=True) as session:
        added = session.collect_addresses([(name, address)])
    return f"collected {added[0]}" if added else "sender already known (or collecting is off)"


def delivered(store: Store, recipient: str, raw: bytes) -> list[str]:
    """Everything oxsync does with a mail delivered to `recipient`: iMIP answers, collected sender."""
    outcomes = handle(store, recipient, raw) if CALENDAR_PART.search(raw) else []
    return outcomes + [collect_sender(store, recipient, raw)]
