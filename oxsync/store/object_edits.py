"""Creating, changing, deleting, moving and answering objects on behalf of one user.

Every write is checked against the user's rights and the client's version through the session's
`Viewer` (`writable`), validated, and recorded as change rows in every folder the object is in (home
folder and participants' folders). Scheduled objects also place participants and check conflicts
(`series.before_save`), keep their reminders (`reminders.sync_alarms`) and their iMIP mail (`itip`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, update

from oxsync.model import Appointment, Contact, Folder, Task
from oxsync.model.appointment import Confirmation
from oxsync.model.common import KIND_OF_MODULE, ObjectKind
from oxsync.store import account_rights as rules
from oxsync.store import itip, meetings
from oxsync.store import objects as object_ops
from oxsync.store import schema as s
from oxsync.store.errors import Conflict, InvalidData, PermissionDenied
from oxsync.store.membership import folders_of_objects
from oxsync.store.objects import AnyObject, kind_of
from oxsync.store.reminders import sync_alarms
from oxsync.store.removal import remove_objects
from oxsync.store.series import before_save, exception_ids
from oxsync.store.viewer import Viewer


class ObjectEdits:
    """Object writes of the viewer's user, in the viewer's transaction."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.tx = viewer.tx
        self.user_id = viewer.user_id

    def create_object(self, folder_id: int, obj: AnyObject) -> AnyObject:
        folder = self.viewer.object_folder(folder_id)
        if _kind_held(folder) != kind_of(obj):
            raise InvalidData(f"folder {folder_id} holds {folder.module}, not {kind_of(obj).value}", field="folder_id")
        if not self.viewer.rights(folder_id).can_create_objects:
            raise PermissionDenied(f"no right to create objects in folder {folder_id}")
        if obj.uid and self._uid_taken(obj.uid, folder_id, None, _series_of(obj)):
            raise Conflict(f"an object with UID {obj.uid} already exists in folder {folder_id}")
        self._check_invitations(folder, [], obj)
        obj.created_by = self.user_id
        range_end = None
        if isinstance(obj, Contact):
            obj.user_id = None
        else:
            range_end = before_save(self.tx, self.user_id, obj, folder_id, None, folder)
        object_ops.insert_object(self.tx, obj, folder_id, self.user_id, range_end_ms=range_end, stamp_next=True)
        assert obj.object_id is not None  # given by insert_object
        placed = {folder_id} | {p.folder_id for p in getattr(obj, "participants", []) if p.folder_id is not None}
        for fid in placed:  # a new object: its folders are known and no change row exists yet
            self.tx.record_present_change(fid, obj.object_id, "create", new=True)
        self.tx.stamp  # noqa: B018 - the object work is done: from here on the stamp is final (with the change rows)
        if isinstance(obj, Appointment) and obj.participants:
            itip.after_save(self.tx, obj, None)
        if isinstance(obj, Appointment | Task):
            sync_alarms(self.tx, obj, new=True)
        return self.viewer.personalised(obj)

    def _uid_taken(self, uid: str, folder_id: int, except_id: int | None, series_id: int | None = None) -> bool:
        """Another object of the folder has this UID (a series and its exceptions share one)."""
        ids = [i for i, series in self.viewer.uid_rows(uid)
               if i != except_id and (series_id is None or series_id not in (i, series))]
        return any(folder_id in f for f in folders_of_objects(self.tx, ids).values())

    def update_object(self, folder_id: int, obj: AnyObject, expected_last_modified: int | None = None) -> AnyObject:
        if obj.object_id is None:
            raise InvalidData("object_id is required for an update", field="object_id")
        current = self.viewer.writable(folder_id, obj.object_id, "write", expected_last_modified)
        if type(current) is not type(obj):
            raise InvalidData("an object cannot change its kind", field="object_id")
        through = self.viewer.visible_folder(folder_id)
        self._check_invitations(through, getattr(current, "participants", []), obj)
        if obj.uid and obj.uid != current.uid and self._uid_taken(obj.uid, folder_id, obj.object_id, _series_of(current)):
            raise Conflict(f"an object with UID {obj.uid} already exists in folder {folder_id}")
        obj.created_by, obj.creation_time = current.created_by, current.creation_time
        obj.folder_id = current.folder_id
        if isinstance(obj, Contact) and isinstance(current, Contact):
            obj.user_id = current.user_id
        home, before, stored = self.viewer.placed.pop(obj.object_id)  # read by `writable` just now
        range_end = None
        if isinstance(obj, Appointment | Task):
            if isinstance(obj, Appointment) and isinstance(current, Appointment):
                obj.recurrence_id = obj.recurrence_id or current.recurrence_id
                obj.recurrence_date_position = obj.recurrence_date_position or current.recurrence_date_position
            # `current` was read from the database just now (writable): its participants are the stored ones
            range_end = before_save(self.tx, self.user_id, obj, home, obj.object_id, through,  # used if it is the home
                                    previous=list(getattr(current, "participants", [])))
        meeting = _meeting(current, obj)
        if meeting is not None:
            itip.before_update(self.tx, *meeting)
        object_ops.update_object_row(self.tx, obj, self.user_id, range_end_ms=range_end,
                                     old_size=int(stored.size), created_by=stored.created_by, stamp_next=True)
        written = self.tx.written_rows.get(obj.object_id)
        if written is not None:  # what update_object_row does not rewrite, as `writable` read it just now
            written.row.update(folder_id=stored.folder_id, created_by=stored.created_by, creation_ms=stored.creation_ms)
            written.attachments = list(current.attachments)
        after = {home} | {p.folder_id for p in getattr(obj, "participants", []) if p.folder_id is not None}  # as written
        for fid in after:  # the folders were just read: no need to look them up again
            self.tx.record_present_change(fid, obj.object_id, "update")
        self.tx.stamp  # noqa: B018 - the object work is done: from here on the stamp is final (iTIP, alarms)
        for fid in before - after:
            self.tx.record_object_change(fid, obj.object_id, gone=True, kind="delete")
        if meeting is not None:
            itip.after_save(self.tx, meeting[1], meeting[0])
        if isinstance(obj, Appointment | Task):
            sync_alarms(self.tx, obj)
        obj.folder_id = folder_id
        return self.viewer.personalised(obj)

    def _check_invitations(self, folder: Folder, before: list[Any], obj: AnyObject) -> None:
        """Without the sharing right, nobody new may be invited to a meeting or given a task."""
        if self.viewer.account_rights.sharing or not isinstance(obj, Appointment | Task):
            return
        allowed = {self.user_id} | ({folder.owner} if folder.owner is not None else set())
        rules.check_new_participants(self.user_id, allowed, before, obj.participants)

    def delete_object(self, folder_id: int, object_id: int, expected_last_modified: int | None = None) -> None:
        current = self.viewer.writable(folder_id, object_id, "delete", expected_last_modified)
        if isinstance(current, Contact) and current.user_id is not None:
            raise PermissionDenied("global address book entries are removed by deleting the account")
        if isinstance(current, Appointment | Task) and current.participants and not meetings.is_organizer(
            current, self.user_id
        ) and meetings.participant_row(self.tx, object_id, self.user_id) is not None:
            meetings.decline_and_leave(self.tx, self.user_id, object_id, folder_id)
            if isinstance(current, Appointment):
                itip.after_confirm(self.tx, current, self.user_id, Confirmation.DECLINE)
            return
        doomed = [object_id]
        if isinstance(current, Appointment) and current.is_series and current.recurrence_id == object_id:
            doomed += list(exception_ids(self.tx, object_id).values())
        if isinstance(current, Appointment) and current.participants:
            itip.before_delete(self.tx, current, self.user_id)
        remove_objects(self.tx, doomed)

    def move_object(self, folder_id: int, object_id: int, target_folder_id: int,
                    expected_last_modified: int | None = None) -> AnyObject:
        current = self.viewer.writable(folder_id, object_id, "delete", expected_last_modified)
        target = self.viewer.object_folder(target_folder_id)
        if _kind_held(target) != kind_of(current):
            raise InvalidData("target folder holds another module", field="folder_id")
        if not self.viewer.rights(target_folder_id).can_create_objects:
            raise PermissionDenied(f"no right to create objects in folder {target_folder_id}")
        if isinstance(current, Contact) and current.user_id is not None:
            raise PermissionDenied("global address book entries cannot be moved")
        if target_folder_id == folder_id:
            return current
        self._move_membership(current, folder_id, target_folder_id)
        self.tx.record_object_change(folder_id, object_id, gone=True, kind="move")
        self.tx.record_object_change(target_folder_id, object_id, gone=False, kind="move")
        return self.viewer.get_object(target_folder_id, object_id)

    def _move_membership(self, current: AnyObject, folder_id: int, target_folder_id: int) -> None:
        assert current.object_id is not None
        p = s.participants
        moved = self.tx.conn.execute(
            update(p).where(and_(p.c.tenant_id == self.tx.tenant_id, p.c.object_id == current.object_id,
                                 p.c.folder_id == folder_id, p.c.entity == self.user_id))
            .values(folder_id=target_folder_id)
        ).rowcount
        if not moved or current.folder_id == folder_id:
            object_ops.set_object_folder(self.tx, current.object_id, target_folder_id, self.user_id)
        else:
            object_ops.touch_object(self.tx, current.object_id, self.user_id)

    def confirm(self, folder_id: int, object_id: int, confirmation: Confirmation, message: str = "") -> AnyObject:
        """Set the caller's own confirmation (accept, decline, tentative, none) of a meeting or task."""
        self.viewer.get_object(folder_id, object_id)
        meetings.confirm(self.tx, self.user_id, object_id, confirmation, message)
        answered = self.viewer.get_object(folder_id, object_id)
        if isinstance(answered, Appointment):
            itip.after_confirm(self.tx, answered, self.user_id, Confirmation(confirmation))
        return answered


def _kind_held(folder: Folder) -> ObjectKind:
    """The kind of object a folder of objects holds (`Viewer.object_folder` has checked it holds some)."""
    assert folder.module is not None
    return KIND_OF_MODULE[folder.module]


def _meeting(before: AnyObject, after: AnyObject) -> tuple[Appointment, Appointment] | None:
    """(before, after) when an update changes a meeting (either version has participants), else None."""
    if isinstance(before, Appointment) and isinstance(after, Appointment) and (before.participants or after.participants):
        return before, after
    return None


def _series_of(obj: AnyObject) -> int | None:
    return obj.recurrence_id if isinstance(obj, Appointment) else None
