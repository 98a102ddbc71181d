"""A received invitation shown as a meeting request (MS-ASEMAIL MeetingRequest, MessageClass).

The mail keeps its usual Email fields; with a `text/calendar` part it gets the MessageClass of its
method (`IPM.Schedule.Meeting.Request`, `...Canceled`, `...Resp.Pos/Neg/Tent`) and, for requests and
cancellations, the MeetingRequest element, whose GlobalObjId wraps the iCalendar UID the way Outlook
does for vCal UIDs (MS-OXOCAL 2.2.1.27), so the phone matches it with the calendar item.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, date, datetime, time

from oxsync.eas.mapping.timezone import encode_timezone
from oxsync.eas.wbxml import E, Element
from oxsync.mail.invitation import Invitation

GLOBAL_OBJECT_ID_HEADER = bytes.fromhex("040000008200E00074C5B7101A82E008")
REPLY_CLASS = {"ACCEPTED": "IPM.Schedule.Meeting.Resp.Pos", "DECLINED": "IPM.Schedule.Meeting.Resp.Neg",
               "TENTATIVE": "IPM.Schedule.Meeting.Resp.Tent"}


def global_object_id(uid: str) -> str:
    data = b"vCal-Uid" + struct.pack("<I", 1) + uid.encode("utf-8") + b"\x00"
    blob = GLOBAL_OBJECT_ID_HEADER + b"\x00" * 4 + b"\x00" * 8 + b"\x00" * 8 + struct.pack("<I", len(data)) + data
    return base64.b64encode(blob).decode("ascii")


def message_class(inv: Invitation) -> str:
    if inv.method == "CANCEL":
        return "IPM.Schedule.Meeting.Canceled"
    if inv.method == "REPLY":
        partstat = next((str(p.confirmation.name) for p in inv.appointment.participants), "")
        by_name = {"ACCEPT": "ACCEPTED", "DECLINE": "DECLINED", "TENTATIVE": "TENTATIVE"}
        return REPLY_CLASS.get(by_name.get(partstat, ""), "IPM.Schedule.Meeting.Resp.Tent")
    return "IPM.Schedule.Meeting.Request"


def _compact(value: datetime | date | None) -> str:
    if value is None:
        return ""
    moment = value if isinstance(value, datetime) else datetime.combine(value, time(0), tzinfo=UTC)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def meeting_request(inv: Invitation, version: float) -> Element | None:
    if inv.method not in ("REQUEST", "CANCEL"):
        return None
    appt = inv.appointment
    start = appt.start_date
    year = start.year if start is not None else datetime.now(UTC).year
    out = E("Email:MeetingRequest",
            E("Email:AllDayEvent", "1" if appt.full_time else "0"),
            E("Email:StartTime", _compact(start)),
            E("Email:DtStamp", _compact(datetime.fromtimestamp(appt.last_modified / 1000, UTC)
                                        if appt.last_modified else datetime.now(UTC))),
            E("Email:EndTime", _compact(appt.end_date or start)),
            E("Email:InstanceType", "1" if appt.is_series else "0"))
    if appt.location:
        out.append(E("Email:Location", appt.location))
    if appt.organizer:
        out.append(E("Email:Organizer", appt.organizer))
    if appt.alarm is not None:
        out.append(E("Email:Reminder", str(appt.alarm * 60)))
    out.append(E("Email:ResponseRequested", "1" if inv.method == "REQUEST" else "0"))
    out.append(E("Email:Sensitivity", "2" if appt.private_flag else "0"))
    out.append(E("Email:BusyStatus", "2"))
    out.append(E("Email:TimeZone", encode_timezone(appt.timezone or "UTC", year)))
    out.append(E("Email:GlobalObjId", global_object_id(inv.uid)))
    if version >= 14.1:
        out.append(E("Email2:MeetingMessageType", "1" if inv.method == "REQUEST" else "0"))
    return out
