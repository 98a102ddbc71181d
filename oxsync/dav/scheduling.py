"""RFC 6638 scheduling on the store's meeting semantics.

Invitations need no iTIP delivery: a meeting is ONE store object placed in every internal attendee's
calendar, so an organizer's PUT is seen by attendees at once, and an attendee's PUT changes only their
PARTSTAT (objects._attendee_reply -> store.confirm). The outbox answers VFREEBUSY requests from
store.free_busy (busy time only, no details). The Schedule-Tag is computed in `layout.schedule_tag`,
the schedule inbox is `inbox.py`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from icalendar import Calendar, vDDDTypes
from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.freebusy import FBTYPE, vfreebusy
from oxsync.dav.layout import Box, DavError
from oxsync.dav.multistatus import Response
from oxsync.dav.tree import resolve
from oxsync.dav.xml import CALDAV, new_root, qn, tostring
from oxsync.model.text import xml_safe

C = lambda name: qn(CALDAV, name)  # noqa: E731


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
    given_start, given_end = fb.get("DTSTART"), fb.get("DTEND")
    try:
        if not isinstance(given_start, vDDDTypes) or not isinstance(given_end, vDDDTypes):
            raise KeyError("DTSTART and DTEND")
        start, end = _utc(given_start.dt), _utc(given_end.dt)
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
    text = vfreebusy(start, end, periods, "REPLY", lines)
    # vfreebusy adds a fresh UID; keep the request's when given
    if any(x.startswith("UID:") for x in lines):
        text = re.sub(r"UID:[0-9a-f-]{36}\r\n", "", text, count=1)
    return text
