"""Bulk load of SOGo: the rows a CalDAV/CardDAV PUT would leave in SOGo's own PostgreSQL tables.

SOGo 5 with `OCSStoreURL` keeps every folder's objects in two combined tables: `sogo_store` (c_folder_id,
c_name, c_content: the text as SOGo re-serializes it, c_creationdate, c_lastmodified, c_version,
c_deleted) and a "quick" table of the fields it queries (`sogo_quick_appointment`, `sogo_quick_contact`),
keyed by the folder id of `sogo_folder_info`. PUT loads at 3-20 items/s here; these rows load 10,000
items in seconds. `bench.peers_sogo.Sogo.verify_bulk` PUTs a sample through SOGo and compares every
column of both tables with what this module computes; the bench refuses the bulk load on a mismatch.

The text and quick fields follow what SOGo 5.8 does with bench/peers_data.py's items (and nothing
more general): VERSION after PRODID, RSVP=TRUE added to attendees, CLASS:PUBLIC added, lines folded at
75 octets, no final line break; vCards lose trailing empty N components. Times are Unix seconds (UTC);
a recurring event's c_enddate is its first instance's end, c_cycleenddate its last instance's end
with the rule stepped in UTC as SOGo does (2147483647 when endless); c_nextalarm is the first alarm after now.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

ENDLESS = 2147483647
PARTSTATS = {"NEEDS-ACTION": 0, "ACCEPTED": 1, "DECLINED": 2, "TENTATIVE": 3, "DELEGATED": 4}
APPOINTMENT_COLUMNS = (
    "c_folder_id", "c_name", "c_uid", "c_startdate", "c_enddate", "c_cycleenddate", "c_title", "c_participants",
    "c_isallday", "c_iscycle", "c_cycleinfo", "c_classification", "c_isopaque", "c_status", "c_priority",
    "c_location", "c_orgmail", "c_partmails", "c_partstates", "c_category", "c_sequence", "c_component",
    "c_nextalarm", "c_description")
CONTACT_COLUMNS = (
    "c_folder_id", "c_name", "c_givenname", "c_cn", "c_sn", "c_screenname", "c_l", "c_mail", "c_o", "c_ou",
    "c_telephonenumber", "c_categories", "c_component", "c_hascertificate")
STORE_COLUMNS = ("c_folder_id", "c_name", "c_content", "c_creationdate", "c_lastmodified", "c_version", "c_deleted")


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw.startswith((" ", "\t")) and lines:
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def _fold(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        out.append(line[:75])
        rest = line[75:]
        while rest:
            out.append(" " + rest[:74])
            rest = rest[74:]
    return "\r\n".join(out)


def _split(line: str) -> tuple[str, dict[str, str], str]:
    head, _, value = line.partition(":")
    name, *params = head.split(";")
    return name.upper(), dict(p.split("=", 1) for p in params), value


def event_text(text: str) -> str:
    """The iCalendar text SOGo stores for `text` (one VEVENT with its VTIMEZONE)."""
    lines = _unfold(text)
    out: list[str] = []
    for line in lines:
        name, params, _ = _split(line)
        if name == "VERSION" and len(out) == 1:  # PRODID comes first in SOGo's VCALENDAR
            continue
        if name == "PRODID" and len(out) == 1:
            out += [line, "VERSION:2.0"]
            continue
        if name == "ATTENDEE" and "RSVP" not in params:
            head, _, value = line.partition(":")
            parts = head.split(";")
            at = next(k for k, p in enumerate(parts) if p.startswith("PARTSTAT=")) + 1
            line = ";".join(parts[:at] + ["RSVP=TRUE"] + parts[at:]) + ":" + value
        if line == "END:VEVENT" and not any(x.startswith("CLASS:") for x in out):
            out.append("CLASS:PUBLIC")
        out.append(line)
    return _fold(out)


def card_text(text: str) -> str:
    """The vCard text SOGo stores for `text`."""
    out = []
    for line in _unfold(text):
        if line.startswith("N:"):
            line = line.rstrip(";")
        out.append(line)
    return _fold(out)


def _instant(value: str, params: dict[str, str]) -> datetime:
    if value.endswith("Z"):
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=ZoneInfo(params["TZID"]))


def _duration(trigger: str) -> timedelta:
    sign = -1 if trigger.startswith("-") else 1
    spec = trigger.lstrip("+-").removeprefix("PT")
    amount, unit = int(spec[:-1]), spec[-1]
    return sign * timedelta(**{{"M": "minutes", "H": "hours", "S": "seconds"}[unit]: amount})


def appointment_row(folder_id: int, name: str, text: str, now: float) -> dict[str, Any]:
    """The sogo_quick_appointment row SOGo writes for one VEVENT (timed, in one zone, as generated)."""
    props: dict[str, tuple[dict[str, str], str]] = {}
    attendees: list[tuple[dict[str, str], str]] = []
    trigger = ""
    depth = []
    for line in _unfold(text):
        name_, params, value = _split(line)
        if name_ == "BEGIN":
            depth.append(value)
        elif name_ == "END":
            depth.pop()
        elif depth[-1:] == ["VALARM"] and name_ == "TRIGGER":
            trigger = value
        elif depth[-1:] == ["VEVENT"]:
            if name_ == "ATTENDEE":
                attendees.append((params, value))
            else:
                props[name_] = (params, value)
    start = _instant(props["DTSTART"][1], props["DTSTART"][0])
    end = _instant(props["DTEND"][1], props["DTEND"][0])
    rule = props.get("RRULE", ({}, ""))[1]
    cycle_end = None
    if rule:  # SOGo steps the rule in UTC: a series across a DST change ends an hour off local time
        if "COUNT=" in rule or "UNTIL=" in rule:
            last = list(rrulestr(rule, dtstart=start.astimezone(UTC)))[-1]
            cycle_end = int((last + (end - start)).timestamp())
        else:
            cycle_end = ENDLESS
    alarm = None
    if trigger:
        first = start
        if rule:
            first = next(d for d in rrulestr(rule, dtstart=start.astimezone(UTC)) if (d + _duration(trigger)).timestamp() > now)
        alarm = int((first + _duration(trigger)).timestamp())
    org = props.get("ORGANIZER", ({}, ""))[1]
    return {
        "c_folder_id": folder_id, "c_name": name, "c_uid": props["UID"][1],
        "c_startdate": int(start.timestamp()), "c_enddate": int(end.timestamp()), "c_cycleenddate": cycle_end,
        "c_title": props.get("SUMMARY", ({}, ""))[1],
        "c_participants": "\n".join(p.get("CN", "") for p, _ in attendees),
        "c_isallday": 0, "c_iscycle": 1 if rule else 0,
        "c_cycleinfo": f'{{rules = ("{rule}"); }}' if rule else None,
        "c_classification": 0, "c_isopaque": 1, "c_status": 1, "c_priority": 0,
        "c_location": props.get("LOCATION", ({}, None))[1],
        "c_orgmail": org.removeprefix("mailto:") or None,
        "c_partmails": "\n".join(v.removeprefix("mailto:") for _, v in attendees),
        "c_partstates": "\n".join(str(PARTSTATS.get(p.get("PARTSTAT", "NEEDS-ACTION"), 0)) for p, _ in attendees),
        "c_category": None, "c_sequence": 0, "c_component": "vevent", "c_nextalarm": alarm,
        "c_description": props.get("DESCRIPTION", ({}, None))[1],
    }


def contact_row(folder_id: int, name: str, text: str) -> dict[str, Any]:
    """The sogo_quick_contact row SOGo writes for one vCard (as generated)."""
    props: dict[str, list[tuple[dict[str, str], str]]] = {}
    for line in _unfold(text):
        name_, params, value = _split(line)
        props.setdefault(name_, []).append((params, value))
    family, given = (props["N"][0][1].split(";") + ["", ""])[:2]
    adr = props.get("ADR", [({}, ";;;;;;")])[0][1].split(";")
    org = props.get("ORG", [({}, "")])[0][1].split(";")
    tels = props.get("TEL", [])
    return {
        "c_folder_id": folder_id, "c_name": name, "c_givenname": given, "c_cn": props["FN"][0][1], "c_sn": family,
        "c_screenname": "", "c_l": adr[3] if len(adr) > 3 else "",
        "c_mail": ",".join(v for _, v in props.get("EMAIL", [])), "c_o": org[0], "c_ou": org[1] if len(org) > 1 else "",
        "c_telephonenumber": tels[0][1] if tels else "", "c_categories": None, "c_component": "vcard",
        "c_hascertificate": 0,
    }


def load(conn: Any, folder_id: int, kind: str, items: list[tuple[str, str]], now: float | None = None) -> None:
    """Insert `items` (resource name, text as a client PUTs it) into folder `folder_id` (`kind`: "cal" or
    "card") with COPY, the way SOGo's PUT would leave them."""
    stamp = int(now or time.time())
    quick_table, columns = (("sogo_quick_appointment", APPOINTMENT_COLUMNS) if kind == "cal" else
                            ("sogo_quick_contact", CONTACT_COLUMNS))
    with conn.cursor() as cur:
        with cur.copy(f"COPY sogo_store ({', '.join(STORE_COLUMNS)}) FROM STDIN") as copy:
            for name, text in items:
                body = event_text(text) if kind == "cal" else card_text(text)
                copy.write_row((folder_id, name, body, stamp, stamp, 0, None))
        with cur.copy(f"COPY {quick_table} ({', '.join(columns)}) FROM STDIN") as copy:
            for name, text in items:
                row = appointment_row(folder_id, name, text, stamp) if kind == "cal" else contact_row(
                    folder_id, name, text)
                copy.write_row(tuple(row[c] for c in columns))
    conn.commit()
