"""RFC 6638 scheduling on the store's meeting semantics.

Invitations need no iTIP delivery: a meeting is ONE store object placed in every internal attendee's
calendar, so an organizer's PUT is seen by attendees at once, and an attendee's PUT changes only their
PARTSTAT (objects._attendee_reply -> store.confirm). The outbox answers VFREEBUSY requests from
store.free_busy (busy time only, no details). The Schedule-Tag ignores PARTSTAT and DTSTAMP, so an
attendee reply does not change it (RFC 6638 §3.2.10).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar
from lxml import etree

from oxsync.dav.layout import Box, DavError, ObjectRes, object_text
from oxsync.dav.propfind import Response
from oxsync.dav.tree import Ctx, resolve
from oxsync.dav.xml import CALDAV, new_root, qn, tostring
from oxsync.model import Appointment, Module
from oxsync.model.appointment import Confirmation, ParticipantKind, ShownAs
from oxsync.model.text import xml_safe

C = lambda name: qn(CALDAV, name)  # noqa: E731
_VOLATILE = re.compile(r"^(DTSTAMP[;:].*|LAST-MODIFIED[;:].*)$|;PARTSTAT=[^;:]*", re.M)
FBTYPE = {ShownAs.RESERVED: "BUSY", ShownAs.TEMPORARY: "BUSY-TENTATIVE", ShownAs.ABSENT: "BUSY-UNAVAILABLE"}


def schedule_tag(res: ObjectRes) -> str:
    text = object_text(res).replace("\r\n ", "")
    digest = hashlib.sha1(_VOLATILE.sub("", text).encode("utf-8")).hexdigest()[:16]
    return f'"{digest}"'


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def post(ctx: Ctx) -> Response:
    res = resolve(ctx, ctx.req.path)
    if not isinstance(res, Box) or res.kind != "outbox":
        raise DavError(405, text="POST is accepted on the schedule outbox only")
    try:
        cal = Calendar.from_ical(ctx.req.body.decode("utf-8", "replace"))
    except ValueError as exc:
        raise DavError(400, C("valid-calendar-data"), str(exc)) from exc
    fbs = [c for c in cal.walk("VFREEBUSY")]
    if str(cal.get("METHOD", "")).upper() != "REQUEST" or len(fbs) != 1:
        raise DavError(403, C("valid-scheduling-message"), "only VFREEBUSY requests are posted here; "
                       "invitations are delivered by PUT")
    fb = fbs[0]
    try:
        start, end = _utc(fb["DTSTART"].dt), _utc(fb["DTEND"].dt)
    except (KeyError, AttributeError) as exc:
        raise DavError(403, C("valid-scheduling-message"), "DTSTART and DTEND required") from exc
    if end <= start or (end - start).days > ctx.req.settings.limits.recurrence_window_future_days:
        raise DavError(403, C("valid-scheduling-message"), "bad free/busy window")
    organizer = str(fb.get("ORGANIZER", ""))
    attendees = fb.get("ATTENDEE", [])
    attendees = attendees if isinstance(attendees, list) else [attendees]
    uid = str(fb.get("UID", ""))
    root = new_root(C("schedule-response"))
    for attendee in attendees[:ctx.req.settings.limits.max_participants]:
        address = str(attendee)
        resp = etree.SubElement(root, C("response"))
        recipient = etree.SubElement(resp, C("recipient"))
        etree.SubElement(recipient, qn("DAV:", "href")).text = xml_safe(address)
        email = address[7:] if address.lower().startswith("mailto:") else address
        found = ctx.session.find_principal(email.lower())
        if found is None:
            etree.SubElement(resp, C("request-status")).text = "3.7;Invalid calendar user"
            continue
        kind, entity = found
        periods = ctx.session.free_busy(start, end, user_id=entity if kind == "user" else None,
                                        resource_id=entity if kind == "resource" else None)
        lines = [f"UID:{uid}" if uid else "", f"ORGANIZER:{organizer}", f"ATTENDEE:{address}"]
        body = _reply(start, end, [(p.start, p.end, FBTYPE[p.shown_as]) for p in periods
                                   if p.shown_as in FBTYPE], [x for x in lines if x])
        etree.SubElement(resp, C("request-status")).text = "2.0;Success"
        etree.SubElement(resp, C("calendar-data")).text = xml_safe(body)
    return Response(200, tostring(root), "application/xml; charset=utf-8")


def _reply(start: datetime, end: datetime, periods: list[tuple[datetime, datetime, str]], lines: list[str]) -> str:
    from oxsync.dav.reports import vfreebusy

    text = vfreebusy(start, end, periods, "REPLY", lines)
    # vfreebusy adds a fresh UID; keep the request's when given
    if any(x.startswith("UID:") for x in lines):
        text = re.sub(r"UID:[0-9a-f-]{36}\r\n", "", text, count=1)
    return text


# ------------------------------------------------------------------------------ schedule inbox

STATE_INBOX = "inbox"


@dataclass
class InboxItem:
    """An invitation the user has not answered yet, shown as an iTIP REQUEST (RFC 6638 §4.1).

    The meeting itself is already in the attendee's calendar (auto-schedule); the inbox item is a
    view of it that disappears once answered or DELETEd (dismissals kept in the user's state)."""

    box: Box
    obj: Any

    @property
    def name(self) -> str:
        return f"invite-{self.obj.object_id}-{self.obj.last_modified}.ics"

    @property
    def path(self) -> str:
        return self.box.path + self.name

    @property
    def etag(self) -> str:
        return f'"{self.obj.object_id}-{self.obj.last_modified}"'

    def text(self) -> str:
        from oxsync.formats.ical import appointment_to_ical

        body = appointment_to_ical(self.obj)
        return body.replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n", 1)


def inbox_items(ctx: Ctx, box: Box) -> list[InboxItem]:
    dismissed = ctx.session.get_state("dav", STATE_INBOX) or {}
    items = []
    for access in ctx.folders():
        folder = access.folder
        if folder.module != Module.CALENDAR or access.shared or folder.owner != ctx.user_id:
            continue
        for obj in ctx.session.list_objects(folder.id):
            if not isinstance(obj, Appointment) or obj.is_exception or not obj.participants:
                continue
            if obj.created_by == ctx.user_id or obj.organizer_id == ctx.user_id:
                continue
            mine = next((p for p in obj.participants
                         if p.kind == ParticipantKind.USER and p.entity == ctx.user_id), None)
            if mine is None or mine.confirmation != Confirmation.NONE:
                continue
            if dismissed.get(str(obj.object_id)) == obj.last_modified:
                continue
            items.append(InboxItem(box, obj))
    return items


def find_inbox_item(ctx: Ctx, box: Box, name: str) -> InboxItem | None:
    return next((i for i in inbox_items(ctx, box) if i.name == name), None)


def dismiss(ctx: Ctx, item: InboxItem) -> None:
    state = ctx.session.get_state("dav", STATE_INBOX) or {}
    live = {str(i.obj.object_id) for i in inbox_items(ctx, item.box)}
    state = {k: v for k, v in state.items() if k in live}
    state[str(item.obj.object_id)] = item.obj.last_modified
    ctx.session.put_state("dav", STATE_INBOX, state)
