"""Saving scheduled objects (appointments, tasks) and editing single occurrences of a series.

Change exceptions are their own objects in the series' home folder, linked by `recurrence_id` and
`recurrence_date_position`, sharing the series UID; the master lists their dates in
`change_exceptions`. Deleting one occurrence adds a delete exception; "this and following" ends the
series the day before.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from sqlalchemy import and_, select

from oxsync.model import Appointment, FolderType, Task
from oxsync.model.appointment import ParticipantKind
from oxsync.model.timeutil import to_ms
from oxsync.recurrence import InvalidRecurrence, series_end, validate_recurrence
from oxsync.store import meetings
from oxsync.store import schema as s
from oxsync.store.errors import AppointmentConflict, InvalidData, NotFound
from oxsync.store.scheduling import find_conflicts
from oxsync.store.session import UserSession
from oxsync.store.tx import Tx

Scheduled = Appointment | Task


def range_end_ms(obj: Scheduled) -> int | None:
    """Index bound of a series (None = endless); plain objects use their own end."""
    if obj.recurrence is None or obj.start_date is None:
        return None
    end = series_end(obj.start_date, obj.end_date, obj.recurrence, getattr(obj, "timezone", "UTC") or "UTC")
    return to_ms(end)


def before_save(session: UserSession, obj: Scheduled, home_folder_id: int, previous_id: int | None) -> int | None:
    """Validate, place participants and check conflicts; returns the series range bound."""
    if obj.recurrence is not None:
        try:
            validate_recurrence(obj.recurrence)
        except InvalidRecurrence as exc:
            raise InvalidData(str(exc), field="recurrence") from exc
    if obj.start_date is not None and obj.end_date is not None and obj.end_date < obj.start_date:
        raise InvalidData("end_date is before start_date", field="end_date")
    meetings.prepare(session.tx, session.user_id, obj, home_folder_id, previous_id)
    if isinstance(obj, Appointment):
        _check_conflicts(session, obj, home_folder_id)
    return range_end_ms(obj)


def _check_conflicts(session: UserSession, obj: Appointment, home_folder_id: int) -> None:
    if obj.ignore_conflicts and not any(p.kind == ParticipantKind.RESOURCE for p in obj.participants):
        obj.ignore_conflicts = False  # only a double-booked resource could still refuse the save
        return
    home = s.folders
    row = session.tx.conn.execute(select(home.c.type, home.c.owner_id).where(
        and_(home.c.tenant_id == session.tx.tenant_id, home.c.id == home_folder_id))).one()
    owner = row.owner_id if row.type == FolderType.PRIVATE.value else None
    items = find_conflicts(session.tx, session.user_id, obj, owner)
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
    from oxsync.store import dataclass_json

    out: dict[date, int] = {}
    for row in rows:
        raw = dataclass_json.loads(row.data).get("recurrence_date_position")
        if raw:
            out[date.fromisoformat(raw["d"])] = row.id
    return out


def _master(session: UserSession, folder_id: int, series_id: int) -> Appointment:
    master = session.get_object(folder_id, series_id)
    if not isinstance(master, Appointment) or not master.is_series or master.recurrence_id != master.object_id:
        raise NotFound(f"object {series_id} is not a recurring series")
    return master


def change_occurrence(session: UserSession, folder_id: int, series_id: int, original: date,
                      changes: Appointment) -> Appointment:
    """Create or update the change exception for the occurrence originally on `original`."""
    master = _master(session, folder_id, series_id)
    if original in master.delete_exceptions:
        raise NotFound(f"occurrence {original} of series {series_id} was deleted")
    existing = exception_ids(session.tx, series_id).get(original)
    changes.recurrence, changes.delete_exceptions, changes.change_exceptions = None, [], []
    changes.recurrence_id, changes.recurrence_date_position = series_id, original
    changes.uid = master.uid
    changes.timezone = changes.timezone or master.timezone
    if not changes.participants:
        changes.participants = [dataclasses.replace(p) for p in master.participants]
    if existing is not None:
        changes.object_id = existing
        return session.update_object(folder_id, changes)
    changes.object_id = None
    created = session.create_object(master.folder_id or folder_id, changes)
    master = session.get_object(folder_id, series_id)
    assert isinstance(master, Appointment)
    master.change_exceptions = sorted(set(master.change_exceptions) | {original})
    master.ignore_conflicts = True  # the master's own occurrences did not move
    session.update_object(folder_id, master)
    return created


def delete_occurrence(session: UserSession, folder_id: int, series_id: int, original: date) -> None:
    master = _master(session, folder_id, series_id)
    existing = exception_ids(session.tx, series_id).get(original)
    if existing is not None:
        session.delete_object(folder_id, existing)
        master = _master(session, folder_id, series_id)
    master.delete_exceptions = sorted(set(master.delete_exceptions) | {original})
    master.change_exceptions = [d for d in master.change_exceptions if d != original]
    master.ignore_conflicts = True
    session.update_object(folder_id, master)


def end_series_before(session: UserSession, folder_id: int, series_id: int, first_removed: date) -> Appointment:
    """'This and following': the series stops the day before `first_removed`; later exceptions go."""
    master = _master(session, folder_id, series_id)
    assert master.recurrence is not None and master.start_date is not None
    start_day = master.start_date.date() if hasattr(master.start_date, "date") else master.start_date
    if first_removed <= start_day:
        raise InvalidData("cannot end a series before its first occurrence; delete it instead", field="until")
    for original, exception_id in exception_ids(session.tx, series_id).items():
        if original >= first_removed:
            session.delete_object(folder_id, exception_id)
    master = _master(session, folder_id, series_id)
    assert master.recurrence is not None
    master.recurrence = dataclasses.replace(master.recurrence, until=first_removed - timedelta(days=1), occurrences=None)
    master.delete_exceptions = [d for d in master.delete_exceptions if d < first_removed]
    master.change_exceptions = [d for d in master.change_exceptions if d < first_removed]
    master.ignore_conflicts = True
    return session.update_object(folder_id, master)
