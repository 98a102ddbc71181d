"""Invitations in received mail: the `text/calendar` part of a message (iMIP, RFC 6047) as our model.

Used to show a mail as a meeting request on the phone (EAS MeetingRequest) and to answer it
(MeetingResponse). Cheap when there is nothing: a message without "text/calendar" in it is not parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from oxsync.formats.ical import CalendarItem, parse_calendar
from oxsync.model import Appointment

CALENDAR_HINT = re.compile(rb"(?i)text/calendar")
METHODS = ("REQUEST", "CANCEL", "REPLY", "PUBLISH", "COUNTER", "REFRESH", "ADD", "DECLINECOUNTER")


@dataclass
class Invitation:
    method: str
    appointment: Appointment
    """The first event (a series master, else the single occurrence); participants resolved when asked."""
    uid: str
    text: str


def find_invitation(raw: bytes, resolve: Any = None) -> Invitation | None:
    """The message's iCalendar invitation, or None (no calendar part, no method, no event)."""
    if not CALENDAR_HINT.search(raw):
        return None
    msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
    for part in msg.walk():
        if part.get_content_type() not in ("text/calendar", "application/ics"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):  # None for a multipart
            payload = b""
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        declared = re.search(r"(?im)^METHOD:([A-Z-]+)\s*$", text)
        method = str(part.get_param("method") or (declared.group(1) if declared else "")).upper()
        if method not in METHODS:
            continue
        try:
            items = [i for i in parse_calendar(text, resolve=resolve) if isinstance(i, CalendarItem)]
        except ValueError:
            continue
        for item in items:
            event = item.master or (item.exceptions[0] if item.exceptions else None)
            if isinstance(event, Appointment):
                return Invitation(method, event, item.uid, text)
    return None
