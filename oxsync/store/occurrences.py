"""Editing one occurrence of a recurring series: change it, delete it, or end the series before it.

A change exception is its own object in the series' home folder, linked by `recurrence_id` and
`recurrence_date_position` and sharing the series UID; the master lists their dates in
`change_exceptions`. Deleting one occurrence adds a delete exception; "this and following" ends the
series the day before. Each step is an ordinary object write (`ObjectEdits`), so rights, versions,
change rows and iMIP mail follow the same rules as any other write.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from oxsync.model import Appointment
from oxsync.store.errors import InvalidData, NotFound
from oxsync.store.object_edits import ObjectEdits
from oxsync.store.objects import AnyObject
from oxsync.store.series import exception_ids
from oxsync.store.viewer import Viewer


def _master(viewer: Viewer, folder_id: int, series_id: int) -> Appointment:
    master = viewer.get_object(folder_id, series_id)
    if not isinstance(master, Appointment) or not master.is_series or master.recurrence_id != master.object_id:
        raise NotFound(f"object {series_id} is not a recurring series")
    return master


def _appointment(obj: AnyObject) -> Appointment:
    """A write of an appointment answers with an appointment (said to the type checker)."""
    assert isinstance(obj, Appointment)
    return obj


class Occurrences:
    """Occurrence edits of the viewer's user, written through `edits`."""

    def __init__(self, viewer: Viewer, edits: ObjectEdits) -> None:
        self.viewer = viewer
        self.edits = edits

    def change_occurrence(self, folder_id: int, series_id: int, original: date, changes: Appointment) -> Appointment:
        """Create or update the change exception for the occurrence originally on `original`."""
        master = _master(self.viewer, folder_id, series_id)
        if original in master.delete_exceptions:
            raise NotFound(f"occurrence {original} of series {series_id} was deleted")
        existing = exception_ids(self.viewer.tx, series_id).get(original)
        changes.recurrence, changes.delete_exceptions, changes.change_exceptions = None, [], []
        changes.recurrence_id, changes.recurrence_date_position = series_id, original
        changes.uid = master.uid
        changes.timezone = changes.timezone or master.timezone
        if not changes.participants:
            changes.participants = [dataclasses.replace(p) for p in master.participants]
        if existing is not None:
            changes.object_id = existing
            return _appointment(self.edits.update_object(folder_id, changes))
        changes.object_id = None
        created = _appointment(self.edits.create_object(master.folder_id or folder_id, changes))
        master = _appointment(self.viewer.get_object(folder_id, series_id))
        master.change_exceptions = sorted(set(master.change_exceptions) | {original})
        master.ignore_conflicts = True  # the master's own occurrences did not move
        self.edits.update_object(folder_id, master)
        return created

    def delete_occurrence(self, folder_id: int, series_id: int, original: date) -> None:
        master = _master(self.viewer, folder_id, series_id)
        existing = exception_ids(self.viewer.tx, series_id).get(original)
        if existing is not None:
            self.edits.delete_object(folder_id, existing)
            master = _master(self.viewer, folder_id, series_id)
        master.delete_exceptions = sorted(set(master.delete_exceptions) | {original})
        master.change_exceptions = [d for d in master.change_exceptions if d != original]
        master.ignore_conflicts = True
        self.edits.update_object(folder_id, master)

    def end_series_before(self, folder_id: int, series_id: int, first_removed: date) -> Appointment:
        """'This and following': the series stops the day before `first_removed`; later exceptions go."""
        master = _master(self.viewer, folder_id, series_id)
        assert master.recurrence is not None and master.start_date is not None
        start_day = master.start_date.date() if hasattr(master.start_date, "date") else master.start_date
        if first_removed <= start_day:
            raise InvalidData("cannot end a series before its first occurrence; delete it instead", field="until")
        for original, exception_id in exception_ids(self.viewer.tx, series_id).items():
            if original >= first_removed:
                self.edits.delete_object(folder_id, exception_id)
        master = _master(self.viewer, folder_id, series_id)
        assert master.recurrence is not None
        master.recurrence = dataclasses.replace(master.recurrence, until=first_removed - timedelta(days=1), occurrences=None)
        master.delete_exceptions = [d for d in master.delete_exceptions if d < first_removed]
        master.change_exceptions = [d for d in master.change_exceptions if d < first_removed]
        master.ignore_conflicts = True
        return _appointment(self.edits.update_object(folder_id, master))
