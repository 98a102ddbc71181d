"""VFREEBUSY bodies (RFC 5545 §3.6.4), for the free-busy-query REPORT and the outbox's POST replies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from oxsync.model import ShownAs

FBTYPE = {ShownAs.RESERVED: "BUSY", ShownAs.TEMPORARY: "BUSY-TENTATIVE", ShownAs.ABSENT: "BUSY-UNAVAILABLE"}
"""FBTYPE of a busy period by its shown-as (free time is not listed)."""

HIDDEN_FBTYPE = {ShownAs.TEMPORARY: "BUSY-TENTATIVE", ShownAs.ABSENT: "BUSY-UNAVAILABLE"}
"""FBTYPE of another user's private appointment in a free-busy-query (its time only; BUSY otherwise)."""


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def vfreebusy(start: datetime, end: datetime, periods: list[tuple[datetime, datetime, str]],
              method: str = "", extra_lines: list[str] | None = None) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//oxsync//oxsync//EN"]
    if method:
        lines.append(f"METHOD:{method}")
    lines += ["BEGIN:VFREEBUSY", f"UID:{uuid.uuid4()}", f"DTSTAMP:{_fmt(datetime.now(UTC))}",
              f"DTSTART:{_fmt(start)}", f"DTEND:{_fmt(end)}", *(extra_lines or [])]
    for begin, finish, fbtype in periods:
        lines.append(f"FREEBUSY;FBTYPE={fbtype}:{_fmt(begin)}/{_fmt(finish)}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"
