"""Saving scheduled objects (appointments, tasks): validation, participants, conflicts, series bounds.

Change exceptions are their own objects in the series' home folder, linked by `recurrence_id` and
`recurrence_date_position`, sharing the series UID (`exception_ids` finds them). Editing one occurrence
is `occurrences.py`, above the object writes this module serves.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, select

from oxsync.model import Appointment, Folder, FolderType, Task
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.timeutil import to_ms
from oxsync.recurrence import InvalidRecurrence, series_end, validate_recurrence
from oxsync.store import dataclass_json, meetings
from oxsync.store import schema as s
from oxsync.store.errors import AppointmentConflict, InvalidData
from oxsync.store.scheduling import find_conflicts
from oxsync.store.tx import Tx

Scheduled = Appointment | Task


def range_end_ms(obj: Scheduled) -> int | None:
    """Index bound of a series (None = endless); plain objects use their own end."""
    if obj.recurrence is None or obj.start_date is None:
        return None
    end = series_end(obj.start_date, obj.end_date, obj.recurrence, getattr(obj, "timezone", "UTC") or "UTC")
    return to_ms(end)


def before_save(tx: Tx, user_id: int, obj: Scheduled, home_folder_id: int, previous_id: int | None,
                home: Folder | None = None, previous: list[Participant] | None = None) -> int | None:
    """Validate, place participants and check conflicts; returns the series range bound. `home`: the home
    folder as this transaction loaded it, when the caller has it (its owner is not read again);
    `previous`: the stored participants of `previous_id` as read in this transaction (not read again)."""
    if obj.recurrence is not None:
        try:
            validate_recurrence(obj.recurrence)
        except InvalidRecurrence as exc:
            raise InvalidData(str(exc), field="recurrence") from exc
    if obj.start_date is not None and obj.end_date is not None and obj.end_date < obj.start_date:
        raise InvalidData("end_date is before start_date", field="end_date")
    meetings.prepare(tx, user_id, obj, home_folder_id, previous_id, home, previous)
    if isinstance(obj, Appointment):
        _check_conflicts(tx, user_id, obj, home_folder_id, home)
    return range_end_ms(obj)


def _check_conflicts(tx: Tx, user_id: int, obj: Appointment, home_folder_id: int, home: Folder | None) -> None:
    if obj.ignore_conflicts and not any(p.kind == ParticipantKind.RESOURCE for p in obj.participants):
        obj.ignore_conflicts = False  # only a double-booked resource could still refuse the save
        return
    if home is not None and home.id == home_folder_id:
        owner = home.owner if home.type == FolderType.PRIVATE else None
    else:
        f = s.folders
        row = tx.conn.execute(select(f.c.type, f.c.owner_id).where(
            and_(f.c.tenant_id == tx.tenant_id, f.c.id == home_folder_id))).one()
        owner = row.owner_id if row.type == FolderType.PRIVATE.value else None
    items = find_conflicts(tx, user_id, obj, owner)
    hard = [i for i in items if i.hard]
    if hard:
        raise AppointmentConflict(hard, hard=True)
    if items and not obj.ignore_conflicts:
        raise AppointmentConflict(items, hard=False)
    obj.ignore_conflicts = False  # an input flag, not stored


def exception_ids(tx: Tx, series_id: int) -> dict[date, int]:
    """Change exceptions of a series by original date."""
    o = s.objects
    rows = tx.conn.execute(select(o.c.id, o.c.data).where(
        and_(o.c.tenant_id == tx.tenant_id, o.c.series_id == series_id, o.c.id != series_id)))
    out: dict[date, int] = {}
    for row in rows:
        raw = dataclass_json.loads(row.data).get("recurrence_date_position")
        if raw:
            out[date.fromisoformat(raw["d"])] = row.id
    return out
