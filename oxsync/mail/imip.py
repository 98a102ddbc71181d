"""Render the iMIP mails queued by the store (oxsync/store/itip.py): RFC 6047 messages over RFC 5546.

One message per attendee: multipart/alternative with a short text/plain summary and the
`text/calendar; method=…` part, plus `Content-Class: urn:content-classes:calendarmessage`, which Outlook
needs to show the mail as a meeting request rather than a mail with a calendar file. The VCALENDAR is
our usual rendering of the snapshot (formats/ical.py), with METHOD, SEQUENCE, ORGANIZER, and, per
method, STATUS:CANCELLED (CANCEL) or only the answering attendee (REPLY). The organiser's own reminder
is not sent. Date and Message-ID come from the queued row, so a resend is byte-identical.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

from icalendar import Calendar, vCalAddress

from oxsync.formats.ical import appointment_to_ical
from oxsync.mail.outbound import renderer
from oxsync.model import Appointment
from oxsync.store import dataclass_json
from oxsync.store.api import Store
from oxsync.store.outbound import OutboundMail

VERB = {"ACCEPTED": "Accepted", "DECLINED": "Declined", "TENTATIVE": "Tentatively accepted"}


def _when(obj: Appointment) -> str:
    start = obj.start_date
    if isinstance(start, datetime):
        return start.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(start, date):
        return start.isoformat()
    return ""


def _address(pair: list[str]) -> vCalAddress:
    name, email = pair
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = name
    return address


def calendar_text(payload: dict[str, Any]) -> tuple[str, Appointment, str]:
    """(the VCALENDAR text, the appointment, the PARTSTAT of a REPLY or "")."""
    obj: Appointment = dataclass_json.from_dict(Appointment, payload["object"])
    method: str = payload["method"]
    obj.sequence = int(payload["sequence"])
    obj.organizer = payload["organizer"][1]
    obj.alarm = None  # the organiser's own reminder is theirs
    obj.uid = payload.get("uid") or obj.uid
    master = dataclass_json.from_dict(Appointment, payload["master"]) if payload.get("master") else None
    if master is not None:  # one occurrence: rendered against its series, then sent alone
        master.uid, master.alarm = obj.uid, None
        cal = Calendar.from_ical(appointment_to_ical(master, [obj]))
        cal.subcomponents = [c for c in cal.subcomponents if c.name != "VEVENT" or "RECURRENCE-ID" in c]
    else:
        cal = Calendar.from_ical(appointment_to_ical(obj))
    cal.add("METHOD", method)
    partstat = ""
    for event in cal.walk("VEVENT"):
        event.pop("SEQUENCE", None)
        event.add("SEQUENCE", obj.sequence)
        event.pop("ORGANIZER", None)
        event.add("ORGANIZER", _address(payload["organizer"]))
        if method == "CANCEL":
            event.pop("STATUS", None)
            event.add("STATUS", "CANCELLED")
        attendees = event.get("ATTENDEE", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        if method == "REPLY":
            me = payload["from"][1].lower()
            mine = [a for a in attendees if str(a).lower() == f"mailto:{me}"]
            event.pop("ATTENDEE", None)
            for attendee in mine[:1]:
                partstat = str(attendee.params.get("PARTSTAT", ""))
                event.add("ATTENDEE", attendee)
        elif method == "REQUEST":
            to = payload["to"][1].lower()
            for attendee in attendees:
                if str(attendee).lower() == f"mailto:{to}":
                    attendee.params["RSVP"] = "TRUE"
    return cal.to_ical().decode("utf-8"), obj, partstat


def _subject(method: str, obj: Appointment, sequence: int, partstat: str, instance: str) -> str:
    title = obj.title or "(no title)"
    when = f" ({instance})" if instance else (f" @ {_when(obj)}" if _when(obj) else "")
    if method == "CANCEL":
        return f"Cancelled: {title}{when}"
    if method == "REPLY":
        return f"{VERB.get(partstat, 'Answer')}: {title}"
    return f"{'Updated invitation' if sequence else 'Invitation'}: {title}{when}"


def _summary(method: str, obj: Appointment, payload: dict[str, Any], partstat: str) -> str:
    organizer = formataddr(tuple(payload["organizer"]))
    lines = [obj.title or "(no title)", ""]
    if _when(obj):
        lines.append(f"When: {_when(obj)}")
    if obj.location:
        lines.append(f"Where: {obj.location}")
    lines.append(f"Organiser: {organizer}")
    if method == "CANCEL":
        lines += ["", "This meeting has been cancelled."]
    elif method == "REPLY":
        lines += ["", f"{formataddr(tuple(payload['from']))}: {VERB.get(partstat, partstat).lower()}."]
    if obj.note and method != "REPLY":
        lines += ["", obj.note]
    return "\n".join(lines) + "\n"


def build_message(payload: dict[str, Any], key: str) -> bytes:
    method = payload["method"]
    ics, obj, partstat = calendar_text(payload)
    sender = payload["from"]
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr(tuple(sender))
    msg["To"] = formataddr(tuple(payload["to"]))
    msg["Subject"] = _subject(method, obj, int(payload["sequence"]), partstat, payload.get("instance", ""))
    msg["Date"] = formatdate(payload["created_ms"] / 1000, usegmt=True)
    domain = sender[1].rpartition("@")[2] or "oxsync.invalid"
    msg["Message-ID"] = f"<imip-{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
    msg.set_content(_summary(method, obj, payload, partstat))
    msg.add_alternative(ics, subtype="calendar", params={"method": method})
    msg["Content-Class"] = "urn:content-classes:calendarmessage"  # after the parts: set_content drops Content-*
    return msg.as_bytes()


@renderer("imip")
def render_imip(store: Store, mail: OutboundMail) -> bytes:
    assert mail.payload is not None
    return build_message(mail.payload, mail.key)
