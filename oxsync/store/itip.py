"""iMIP to people outside the tenant (RFC 6047 over RFC 5546), decided where meetings are saved.

Internal participants need no mail: a meeting is ONE store object in each of their calendars. External
participants (kept with name and address) hear of a meeting organised in oxsync, through whichever
dialect, by mail queued here, in the transaction of the change:

- create, or a change an external attendee must know about: REQUEST to each external attendee;
- external attendee removed: CANCEL to them; meeting (or one occurrence of it) deleted: CANCEL to all;
- an internal attendee answers a meeting whose organiser is outside: REPLY to that organiser.

SEQUENCE (RFC 5546 §2.1.4): a change of time, recurrence, location, title, description or status
raises it by one unless the client already raised it. The idempotency key is (UID, instance, SEQUENCE,
method, attendee): a re-save that changes nothing significant, a replayed request, or a repeated
answer queue nothing new; a newly added attendee gets the current version once.

The queued row holds a snapshot of the appointment (the store's own JSON); oxsync/mail/imip.py renders
the MIME from it, so the store knows nothing of iCalendar.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import and_, select

from oxsync.model import Appointment
from oxsync.model.appointment import Confirmation, Participant, ParticipantKind
from oxsync.store import accounts, dataclass_json, objects, outbound
from oxsync.store import schema as s
from oxsync.store.errors import NotFound
from oxsync.store.membership import record_everywhere
from oxsync.store.tx import Tx, now_ms

IMIP = "imip"
SIGNIFICANT = ("start_date", "end_date", "full_time", "timezone", "recurrence", "delete_exceptions", "title",
               "location", "note")
"""Fields whose change makes external attendees' copies stale (SEQUENCE is raised)."""


def _organizer(tx: Tx, obj: Appointment) -> tuple[int | None, str, str]:
    """(internal user id or None, address, name) of the meeting's organiser."""
    if obj.organizer_id is not None:
        user_id: int | None = obj.organizer_id
    elif obj.organizer:
        user_id = accounts.find_user_id(tx, obj.organizer)
        if user_id is None:
            name = next((p.display_name for p in obj.participants if p.email.lower() == obj.organizer.lower()), "")
            return None, obj.organizer, name
    else:
        user_id = obj.created_by
    if user_id is None:
        return None, "", ""
    try:
        user = accounts.get_user(tx, user_id)
    except NotFound:
        return None, "", ""
    return user.id, user.email, user.display_name


def _externals(obj: Appointment | None) -> dict[str, Participant]:
    if obj is None:
        return {}
    return {p.email.lower(): p for p in obj.participants if p.is_external and "@" in p.email}


def _instance(obj: Appointment) -> str:
    return obj.recurrence_date_position.isoformat() if obj.is_exception and obj.recurrence_date_position else ""


def uid_of(obj: Appointment) -> str:
    """The UID every dialect shows (DAV derives one for objects created without)."""
    return obj.uid or f"oxsync-{obj.recurrence_id or obj.object_id}"


def _ident(obj: Appointment) -> str:
    return hashlib.sha256(f"{uid_of(obj)}|{_instance(obj)}".encode()).hexdigest()[:24]


def _key(tx: Tx, obj: Appointment, method: str, attendee: str, sequence: int) -> str:
    return f"imip:{tx.tenant_id}:{_ident(obj)}:{sequence}:{method}:{attendee[:150]}"


def _master(tx: Tx, obj: Appointment) -> dict[str, Any] | None:
    """The series of a change exception (its RECURRENCE-ID is the original start of the series)."""
    if not obj.is_exception or obj.recurrence_id is None:
        return None
    o = s.objects
    rows = tx.conn.execute(select(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id == obj.recurrence_id))).all()
    found = objects.load_objects(tx, rows)
    return dataclass_json.to_dict(found[0]) if found else None


def _queue(tx: Tx, obj: Appointment, method: str, sender: tuple[str, str], to: Participant, sequence: int,
           organizer: tuple[str, str], user_id: int | None, key: str | None = None) -> bool:
    payload: dict[str, Any] = {
        "method": method, "object": dataclass_json.to_dict(obj), "master": _master(tx, obj), "uid": uid_of(obj),
        "sequence": sequence, "instance": _instance(obj),
        "organizer": list(organizer), "from": list(sender), "to": [to.display_name, to.email],
        "created_ms": now_ms(),
    }
    return outbound.enqueue(tx, kind=IMIP, key=key or _key(tx, obj, method, to.email.lower(), sequence),
                            sender=sender[1], recipients=[to.email], subject=f"{method} {obj.title}"[:255],
                            payload=payload, user_id=user_id)


def _significant(before: Appointment, after: Appointment) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in SIGNIFICANT)


def before_update(tx: Tx, before: Appointment, after: Appointment) -> None:
    """Raise SEQUENCE on a significant change of a meeting with external attendees (before it is written)."""
    if not (_externals(before) or _externals(after)):
        return
    if _organizer(tx, after)[0] is None:
        return
    if _significant(before, after) and after.sequence <= before.sequence:
        after.sequence = before.sequence + 1
    after.sequence = max(after.sequence, before.sequence)


def after_save(tx: Tx, obj: Appointment, before: Appointment | None) -> int:
    """Queue REQUESTs (and CANCELs to removed externals) for a saved meeting; returns mails queued."""
    now, then = _externals(obj), _externals(before)
    if not now and not then:
        return 0
    user_id, address, name = _organizer(tx, obj)
    if user_id is None or not address:
        return 0
    organizer = (name, address)
    queued = 0
    for email, attendee in now.items():
        if email == address.lower():
            continue
        queued += _queue(tx, obj, "REQUEST", organizer, attendee, obj.sequence, organizer, user_id)
    for email, attendee in then.items():
        if email not in now:
            queued += _queue(tx, obj, "CANCEL", organizer, attendee, obj.sequence, organizer, user_id)
    return queued


def before_delete(tx: Tx, obj: Appointment, actor: int) -> int:
    """A meeting (or one occurrence) is deleted: CANCEL to every external attendee; if it was organised
    outside, deleting it is declining it (REPLY)."""
    user_id, address, name = _organizer(tx, obj)
    if user_id is None and address:
        return after_confirm(tx, obj, actor, Confirmation.DECLINE)
    externals = _externals(obj)
    if not externals or user_id is None or not address:
        return 0
    sequence = obj.sequence + 1
    obj.sequence = sequence
    return sum(_queue(tx, obj, "CANCEL", (name, address), attendee, sequence, (name, address), user_id)
               for attendee in externals.values())


REPLYABLE = {Confirmation.ACCEPT: "ACCEPTED", Confirmation.DECLINE: "DECLINED", Confirmation.TENTATIVE: "TENTATIVE"}


def after_confirm(tx: Tx, obj: Appointment, user_id: int, confirmation: Confirmation) -> int:
    """An internal attendee answered a meeting organised outside: REPLY to the organiser (once per answer)."""
    if confirmation not in REPLYABLE:
        return 0
    organizer_id, address, name = _organizer(tx, obj)
    if organizer_id is not None or not address:
        return 0
    user = accounts.get_user(tx, user_id)
    me = next((p for p in obj.participants if p.kind == ParticipantKind.USER and p.entity == user_id), None)
    if me is None:
        return 0
    me.confirmation = confirmation
    me.email = me.email or user.email
    key = f"imip:{tx.tenant_id}:{_ident(obj)}:{obj.sequence}:REPLY-{REPLYABLE[confirmation]}:{user.email[:150]}"
    organizer = Participant(ParticipantKind.EXTERNAL_USER, email=address, display_name=name)
    return int(_queue(tx, obj, "REPLY", (user.display_name, user.email), organizer, obj.sequence,
                      (name, address), user_id, key=key))


# ------------------------------------------------------------------------------ answers coming back

PARTSTAT_IN = {"ACCEPTED": Confirmation.ACCEPT, "DECLINED": Confirmation.DECLINE,
               "TENTATIVE": Confirmation.TENTATIVE, "NEEDS-ACTION": Confirmation.NONE}


def apply_reply(tx: Tx, organizer_id: int, uid: str, attendee: str, partstat: str, comment: str = "",
                instance: str = "") -> str:
    """An external attendee's iTIP REPLY to a meeting `organizer_id` organises: set their status.

    Returns "updated", "unchanged" (a repeated REPLY: nothing written, no revision) or why it was
    ignored ("unknown meeting", "not an attendee", "unknown status"). Only the attendee's own row
    changes; internal participants' answers are theirs (meetings.confirm)."""
    confirmation = PARTSTAT_IN.get(partstat.upper())
    if confirmation is None:
        return "unknown status"
    o, p = s.objects, s.participants
    rows = tx.conn.execute(select(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.uid == uid,
                                                 o.c.kind == "appointment"))).all()
    if not rows and uid.startswith("oxsync-") and uid[7:].isdigit():
        rows = tx.conn.execute(select(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id == int(uid[7:]),
                                                     o.c.kind == "appointment"))).all()
    candidates = [a for a in objects.load_objects(tx, rows) if isinstance(a, Appointment)
                  and _organizer(tx, a)[0] == organizer_id and _instance(a) == instance]
    if not candidates:
        return "unknown meeting"
    meeting = candidates[0]
    address = attendee.strip().lower()
    mine = [x for x in meeting.participants if x.is_external and x.email.lower() == address]
    if not mine:
        return "not an attendee"
    if mine[0].confirmation == confirmation and mine[0].message == comment[:4000]:
        return "unchanged"
    tx.conn.execute(p.update().where(and_(
        p.c.tenant_id == tx.tenant_id, p.c.object_id == meeting.object_id,
        p.c.kind.in_([int(ParticipantKind.EXTERNAL_USER), int(ParticipantKind.EXTERNAL_GROUP)]),
        p.c.email == mine[0].email)).values(confirmation=int(confirmation), message=comment[:4000]))
    assert meeting.object_id is not None
    record_everywhere(tx, [meeting.object_id], "confirm", actor=organizer_id)
    return "updated"
