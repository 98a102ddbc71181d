"""The user-facing store API: every read and write checked against the user's effective rights.

A `UserSession` lives for one transaction. Dialects never see SQLAlchemy; they call these methods
and translate `StoreError`s into their protocol's errors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from sqlalchemy import and_, select

from oxsync.model import Appointment, Contact, Folder, FolderType, Module, Permission, Rights, Task
from oxsync.model.appointment import Confirmation
from oxsync.model.common import KIND_OF_MODULE
from oxsync.model.folder import FIRST_REAL_FOLDER, PRIVATE_ROOT, PUBLIC_ROOT, FolderAccess
from oxsync.store import account_rights as rules
from oxsync.store import folders as folder_ops
from oxsync.store import objects as object_ops
from oxsync.store import schema as s
from oxsync.store.bulk import BulkReads, ServedTexts
from oxsync.store.errors import Conflict, InvalidData, NotFound, PermissionDenied, ResyncRequired, StaleObject
from oxsync.store.membership import folders_of_objects, object_ids_in_folder
from oxsync.store.objects import AnyObject, kind_of
from oxsync.store.session_extras import SessionExtras
from oxsync.store.tx import Tx
from oxsync.store.validate import check_id


@dataclass
class ObjectDelta:
    """Changes in one folder since a revision, as seen by one user now."""

    revision: int
    last_modified: int
    changed: list[AnyObject] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    gone_names: dict[int, str] = field(default_factory=dict)
    """DAV resource names of gone objects where known ("" = the object had none: its default href)."""


@dataclass
class FolderDelta:
    revision: int
    last_modified: int
    changed: list[FolderAccess] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)


class UserSession(SessionExtras, BulkReads, ServedTexts):
    """Store operations on behalf of one authenticated user, inside one transaction."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id
        self._groups: list[int] | None = None
        self._rights: dict[int, Rights] = {}
        self._folders: dict[int, Folder] = {}
        """Folders loaded in this transaction; dropped whenever this session changes a folder."""
        self._account: rules.AccountRights | None = None
        self._hidden: frozenset[int] | None = None

    # ------------------------------------------------------------ rights

    @property
    def group_ids(self) -> list[int]:
        if self._groups is None:
            self._groups = folder_ops.group_ids_of(self.tx, self.user_id)
        return self._groups

    @property
    def account_rights(self) -> rules.AccountRights:
        """The account's rights from the hosting panel (public folders, collaborative sharing)."""
        if self._account is None:
            self._account = rules.account_rights(self.tx, self.user_id)
        return self._account

    def _restricted(self, rights: dict[int, Rights]) -> dict[int, Rights]:
        if self.account_rights.public_folders:
            return rights
        if self._hidden is None:
            self._hidden = rules.public_folder_ids(self.tx)
        return rules.restrict(rights, self._hidden)

    def _visible_ids(self) -> dict[int, Rights]:
        visible = self._restricted(folder_ops.visible_folder_ids(self.tx, self.user_id, self.group_ids))
        return {fid: r for fid, r in visible.items() if r.can_see_folder}

    def rights(self, folder_id: int) -> Rights:
        if folder_id not in self._rights:
            check_id(folder_id, "folder_id")
            self._rights.update(self._restricted(
                folder_ops.effective_rights(self.tx, self.user_id, self.group_ids, [folder_id])))
        return self._rights[folder_id]

    def _access(self, folder: Folder, rights: Rights) -> FolderAccess:
        shared = folder.type == FolderType.PRIVATE and folder.owner not in (None, self.user_id)
        return FolderAccess(folder, rights, shared)

    def _visible_folder(self, folder_id: int) -> Folder:
        rights = self.rights(folder_id)
        if not rights.can_see_folder:
            raise NotFound(f"folder {folder_id} does not exist or is not visible")
        if folder_id not in self._folders:
            self._folders[folder_id] = folder_ops.load_folder(self.tx, folder_id)
        return copy.deepcopy(self._folders[folder_id])

    def _object_folder(self, folder_id: int, module: Module | None = None) -> Folder:
        folder = self._visible_folder(folder_id)
        if folder.module is None or (module is not None and folder.module != module):
            raise InvalidData(f"folder {folder_id} does not hold {module.value if module else 'objects'}", field="folder_id")
        return folder

    # ------------------------------------------------------------ folders

    def list_folders(self) -> list[FolderAccess]:
        visible = self._visible_ids()
        self._rights.update(visible)
        loaded = folder_ops.load_folders(self.tx, visible)
        return [self._access(loaded[i], visible[i]) for i in sorted(loaded)]

    def get_folder(self, folder_id: int) -> FolderAccess:
        folder = self._visible_folder(folder_id)
        return self._access(folder, self.rights(folder_id))

    def create_folder(self, parent_id: int, title: str, module: Module, *, color: str | None = None) -> FolderAccess:
        title = title.strip()
        if not title:
            raise InvalidData("folder title is empty", field="title")
        parent = self._visible_folder(parent_id)
        if not self.rights(parent_id).can_create_subfolders:
            raise PermissionDenied(f"no right to create subfolders in folder {parent_id}")
        if parent.module is not None and parent.module != module:
            raise InvalidData("a subfolder must have its parent's module", field="module")
        if parent_id == PRIVATE_ROOT or parent.type == FolderType.PRIVATE:
            ftype, owner = FolderType.PRIVATE, parent.owner if parent.owner is not None else self.user_id
        elif parent_id == PUBLIC_ROOT or parent.type == FolderType.PUBLIC:
            ftype, owner = FolderType.PUBLIC, self.user_id
        else:
            raise PermissionDenied(f"folders cannot be created in folder {parent_id}")
        inherited = [] if parent.id is not None and parent.id < FIRST_REAL_FOLDER else parent.permissions
        entries = {(p.entity, p.is_group): p for p in inherited}
        entries[(self.user_id, False)] = folder_ops.owner_permission(self.user_id)
        if owner != self.user_id:
            entries[(owner, False)] = folder_ops.owner_permission(owner)
        folder = Folder(parent_id=parent_id, title=title, module=module, type=ftype, owner=owner,
                        permissions=list(entries.values()), color=color)
        folder_ops.insert_folder(self.tx, folder, self.user_id)
        assert folder.id is not None
        self._rights.pop(folder.id, None)
        return self.get_folder(folder.id)

    def update_folder(self, folder_id: int, *, title: str | None = None, color: str | None = None,
                      parent_id: int | None = None, expected_last_modified: int | None = None) -> FolderAccess:
        folder = self._visible_folder(folder_id)
        rights = self.rights(folder_id)
        if folder.is_system or not (rights.folder >= 128 or rights.admin):
            raise PermissionDenied(f"no right to change folder {folder_id}")
        self._check_version(folder.last_modified, expected_last_modified, f"folder {folder_id}")
        if folder.default_folder and ((title is not None and title != folder.title) or parent_id not in (None, folder.parent_id)):
            raise PermissionDenied("default folders cannot be renamed or moved")
        old_parent = folder.parent_id
        if title is not None:
            if not title.strip():
                raise InvalidData("folder title is empty", field="title")
            folder.title = title.strip()
        if color is not None:
            folder.color = color or None
        if parent_id is not None and parent_id != folder.parent_id:
            self._check_folder_move(folder, parent_id)
            folder.parent_id = parent_id
        folder_ops.update_folder_row(self.tx, folder, self.user_id)
        self._folders.clear()
        if old_parent != folder.parent_id:
            self.tx.touched_folders.add(old_parent)
        self.tx.record_folder_change(folder_id, folder.parent_id, gone=False)
        return self._access(folder, rights)

    def _check_folder_move(self, folder: Folder, new_parent_id: int) -> None:
        target = self._visible_folder(new_parent_id)
        if not self.rights(new_parent_id).can_create_subfolders:
            raise PermissionDenied(f"no right to create subfolders in folder {new_parent_id}")
        if target.module not in (None, folder.module):
            raise InvalidData("target folder has another module", field="folder_id")
        assert folder.id is not None
        if new_parent_id in folder_ops.subtree_ids(self.tx, folder.id):
            raise InvalidData("a folder cannot be moved below itself", field="folder_id")
        target_private = new_parent_id == PRIVATE_ROOT or target.type == FolderType.PRIVATE
        if target_private != (folder.type == FolderType.PRIVATE):
            raise InvalidData("a folder cannot move between private and public trees", field="folder_id")

    def set_permissions(self, folder_id: int, entries: list[Permission],
                        expected_last_modified: int | None = None) -> FolderAccess:
        folder = self._visible_folder(folder_id)
        rights = self.rights(folder_id)
        if folder.is_system or not rights.admin:
            raise PermissionDenied(f"no right to change the permissions of folder {folder_id}")
        self._check_version(folder.last_modified, expected_last_modified, f"folder {folder_id}")
        for entry in entries:
            try:
                entry.validate()
            except ValueError as exc:
                raise InvalidData(str(exc), field="permissions") from exc
        if not any(e.rights.admin for e in entries):
            raise InvalidData("a folder needs at least one entry that may change its permissions", field="permissions")
        if folder.type == FolderType.PRIVATE and folder.default_folder and not any(
            e.entity == folder.owner and not e.is_group and e.rights.admin for e in entries
        ):
            raise InvalidData("the owner of a default folder keeps the right to administer it", field="permissions")
        if not self.account_rights.sharing:
            rules.check_new_grants(self.user_id, folder.permissions, entries)
        folder_ops.write_permissions(self.tx, folder_id, entries)
        folder.permissions = list(entries)
        folder_ops.update_folder_row(self.tx, folder, self.user_id)
        self.tx.record_folder_change(folder_id, folder.parent_id, gone=False)
        self.tx.bump_folder_contents(folder_id)
        self._rights.clear()
        self._folders.clear()
        return self._access(folder, self.rights(folder_id))

    def delete_folder(self, folder_id: int, expected_last_modified: int | None = None) -> None:
        folder = self._visible_folder(folder_id)
        rights = self.rights(folder_id)
        if folder.is_system or folder.default_folder:
            raise PermissionDenied(f"folder {folder_id} cannot be deleted")
        if not (rights.folder >= 128 or rights.admin):
            raise PermissionDenied(f"no right to delete folder {folder_id}")
        self._check_version(folder.last_modified, expected_last_modified, f"folder {folder_id}")
        for fid in folder_ops.subtree_ids(self.tx, folder_id):
            if fid != folder_id and not self.rights(fid).admin and self.rights(fid).folder < 128:
                raise PermissionDenied(f"no right to delete subfolder {fid}")
        from oxsync.store.removal import remove_folder_tree

        remove_folder_tree(self.tx, folder_id)
        self._folders.clear()
        self._rights.clear()

    # ------------------------------------------------------------ objects

    def _can_read(self, obj_row_private: bool, created_by: int | None, object_id: int, rights: Rights,
                  participant_users: dict[int, set[int]]) -> bool:
        own = created_by == self.user_id
        if obj_row_private and not own and self.user_id not in participant_users.get(object_id, set()):
            return False
        return rights.can_read(own)

    def _participant_users(self, object_ids: list[int]) -> dict[int, set[int]]:
        p = s.participants
        out: dict[int, set[int]] = {}
        for i in range(0, len(object_ids), 500):
            chunk = object_ids[i:i + 500]
            query = select(p.c.object_id, p.c.entity).where(
                and_(p.c.tenant_id == self.tx.tenant_id, p.c.object_id.in_(chunk), p.c.kind == 1)
            )
            for row in self.tx.conn.execute(query):
                out.setdefault(row.object_id, set()).add(row.entity)
        return out

    def _readable_rows(self, folder_id: int, object_ids: list[int]) -> list:  # type: ignore[type-arg]
        rights = self.rights(folder_id)
        o = s.objects
        rows = []
        for i in range(0, len(object_ids), 500):
            chunk = object_ids[i:i + 500]
            rows.extend(self.tx.conn.execute(
                select(o).where(and_(o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(chunk))).order_by(o.c.id)
            ).all())
        private_ids = [r.id for r in rows if r.private]
        participants = self._participant_users(private_ids) if private_ids else {}
        return [r for r in rows if self._can_read(r.private, r.created_by, r.id, rights, participants)]

    def list_objects(self, folder_id: int) -> list[AnyObject]:
        self._object_folder(folder_id)
        rows = self._readable_rows(folder_id, object_ids_in_folder(self.tx, folder_id))
        return [self._personalised(o) for o in object_ops.load_objects(self.tx, rows, {r.id: folder_id for r in rows})]

    def get_object(self, folder_id: int, object_id: int) -> AnyObject:
        check_id(object_id, "object_id")
        self._object_folder(folder_id)
        if folder_id not in folders_of_objects(self.tx, [object_id])[object_id]:
            raise NotFound(f"object {object_id} is not in folder {folder_id}")
        rows = self._readable_rows(folder_id, [object_id])
        if not rows:
            raise NotFound(f"object {object_id} is not in folder {folder_id}")
        loaded = object_ops.load_objects(self.tx, rows, {object_id: folder_id})
        if not loaded:  # its row cannot be decoded (logged and counted by load_objects)
            raise NotFound(f"object {object_id} cannot be read")
        return self._personalised(loaded[0])

    def find_by_uid(self, folder_id: int, uid: str) -> AnyObject | None:
        o = s.objects
        ids = [r.id for r in self.tx.conn.execute(select(o.c.id).where(and_(o.c.tenant_id == self.tx.tenant_id, o.c.uid == uid)))]
        for object_id in ids:
            if folder_id in folders_of_objects(self.tx, [object_id])[object_id]:
                try:
                    return self.get_object(folder_id, object_id)
                except NotFound:
                    return None
        return None

    def create_object(self, folder_id: int, obj: AnyObject) -> AnyObject:
        folder = self._object_folder(folder_id)
        if KIND_OF_MODULE[folder.module] != kind_of(obj):  # type: ignore[index]
            raise InvalidData(f"folder {folder_id} holds {folder.module}, not {kind_of(obj).value}", field="folder_id")
        if not self.rights(folder_id).can_create_objects:
            raise PermissionDenied(f"no right to create objects in folder {folder_id}")
        if obj.uid and self._uid_taken(obj.uid, folder_id, None, _series_of(obj)):
            raise Conflict(f"an object with UID {obj.uid} already exists in folder {folder_id}")
        self._check_invitations(folder, [], obj)
        obj.created_by = self.user_id
        range_end = None
        if isinstance(obj, Contact):
            obj.user_id = None
        else:
            from oxsync.store.series import before_save

            range_end = before_save(self, obj, folder_id, None)
        object_ops.insert_object(self.tx, obj, folder_id, self.user_id, range_end_ms=range_end)
        placed = {folder_id} | {p.folder_id for p in getattr(obj, "participants", []) if p.folder_id is not None}
        for fid in placed:  # a new object: its folders are known and no change row exists yet
            self.tx.record_object_change(fid, obj.object_id, gone=False, kind="create", new=True)
        if isinstance(obj, Appointment) and obj.participants:
            from oxsync.store import itip

            itip.after_save(self.tx, obj, None)
        if isinstance(obj, Appointment | Task):
            from oxsync.store.reminders import sync_alarms

            sync_alarms(self.tx, obj, new=True)
        return self._personalised(obj)

    def _uid_taken(self, uid: str, folder_id: int, except_id: int | None, series_id: int | None = None) -> bool:
        """Another object of the folder has this UID (a series and its exceptions share one)."""
        o = s.objects
        rows = self.tx.conn.execute(select(o.c.id, o.c.series_id).where(and_(o.c.tenant_id == self.tx.tenant_id, o.c.uid == uid)))
        ids = [r.id for r in rows if r.id != except_id and (series_id is None or series_id not in (r.id, r.series_id))]
        return any(folder_id in f for f in folders_of_objects(self.tx, ids).values())

    def _writable(self, folder_id: int, object_id: int, need: str, expected_last_modified: int | None) -> AnyObject:
        current = self.get_object(folder_id, object_id)
        own = current.created_by == self.user_id
        rights = self.rights(folder_id)
        allowed = rights.can_write(own) if need == "write" else rights.can_delete(own)
        if not allowed:
            raise PermissionDenied(f"no right to {need} object {object_id} in folder {folder_id}")
        self._check_version(current.last_modified, expected_last_modified, f"object {object_id}")
        return current

    @staticmethod
    def _check_version(current: int | None, expected: int | None, what: str) -> None:
        if expected is not None and current is not None and expected < current:
            raise StaleObject(f"{what} was changed since {expected} (now {current})", current)

    def update_object(self, folder_id: int, obj: AnyObject, expected_last_modified: int | None = None) -> AnyObject:
        if obj.object_id is None:
            raise InvalidData("object_id is required for an update", field="object_id")
        current = self._writable(folder_id, obj.object_id, "write", expected_last_modified)
        if type(current) is not type(obj):
            raise InvalidData("an object cannot change its kind", field="object_id")
        self._check_invitations(self._visible_folder(folder_id), getattr(current, "participants", []), obj)
        if obj.uid and obj.uid != current.uid and self._uid_taken(obj.uid, folder_id, obj.object_id, _series_of(current)):
            raise Conflict(f"an object with UID {obj.uid} already exists in folder {folder_id}")
        obj.created_by, obj.creation_time = current.created_by, current.creation_time
        obj.folder_id = current.folder_id
        if isinstance(obj, Contact) and isinstance(current, Contact):
            obj.user_id = current.user_id
        before = folders_of_objects(self.tx, [obj.object_id])[obj.object_id]
        range_end = None
        if isinstance(obj, Appointment | Task):
            from oxsync.store.series import before_save

            if isinstance(obj, Appointment) and isinstance(current, Appointment):
                obj.recurrence_id = obj.recurrence_id or current.recurrence_id
                obj.recurrence_date_position = obj.recurrence_date_position or current.recurrence_date_position
            range_end = before_save(self, obj, self._home_folder(obj.object_id), obj.object_id)
        meeting = isinstance(obj, Appointment) and isinstance(current, Appointment) and bool(
            obj.participants or current.participants)
        if meeting:
            from oxsync.store import itip

            itip.before_update(self.tx, current, obj)  # type: ignore[arg-type]
        object_ops.update_object_row(self.tx, obj, self.user_id, range_end_ms=range_end)
        if meeting:
            itip.after_save(self.tx, obj, current)  # type: ignore[arg-type]
        if isinstance(obj, Appointment | Task):
            from oxsync.store.reminders import sync_alarms

            sync_alarms(self.tx, obj)
        after = folders_of_objects(self.tx, [obj.object_id])[obj.object_id]
        for fid in before - after:
            self.tx.record_object_change(fid, obj.object_id, gone=True, kind="delete")
        for fid in after:  # the folders were just read: no need to look them up again
            self.tx.record_object_change(fid, obj.object_id, gone=False, kind="update")
        obj.folder_id = folder_id
        return self._personalised(obj)

    def _check_invitations(self, folder: Folder, before: list, obj: AnyObject) -> None:  # type: ignore[type-arg]
        """Without the sharing right, nobody new may be invited to a meeting or given a task."""
        if self.account_rights.sharing or not isinstance(obj, Appointment | Task):
            return
        allowed = {self.user_id} | ({folder.owner} if folder.owner is not None else set())
        rules.check_new_participants(self.user_id, allowed, before, obj.participants)

    def _home_folder(self, object_id: int) -> int:
        o = s.objects
        return int(self.tx.conn.execute(select(o.c.folder_id).where(
            and_(o.c.tenant_id == self.tx.tenant_id, o.c.id == object_id))).scalar_one())

    def _personalised(self, obj: AnyObject) -> AnyObject:
        if isinstance(obj, Appointment | Task):
            from oxsync.store.meetings import personalise

            personalise(obj, self.user_id)
        return obj

    def delete_object(self, folder_id: int, object_id: int, expected_last_modified: int | None = None) -> None:
        current = self._writable(folder_id, object_id, "delete", expected_last_modified)
        if isinstance(current, Contact) and current.user_id is not None:
            raise PermissionDenied("global address book entries are removed by deleting the account")
        from oxsync.store import meetings
        from oxsync.store.removal import remove_objects

        if isinstance(current, Appointment | Task) and current.participants and not meetings.is_organizer(
            current, self.user_id
        ) and meetings.participant_row(self.tx, object_id, self.user_id) is not None:
            meetings.decline_and_leave(self.tx, self.user_id, object_id, folder_id)
            if isinstance(current, Appointment):
                from oxsync.store import itip

                itip.after_confirm(self.tx, current, self.user_id, Confirmation.DECLINE)
            return
        doomed = [object_id]
        if isinstance(current, Appointment) and current.is_series and current.recurrence_id == object_id:
            from oxsync.store.series import exception_ids

            doomed += list(exception_ids(self.tx, object_id).values())
        if isinstance(current, Appointment) and current.participants:
            from oxsync.store import itip

            itip.before_delete(self.tx, current, self.user_id)
        remove_objects(self.tx, doomed)

    def move_object(self, folder_id: int, object_id: int, target_folder_id: int,
                    expected_last_modified: int | None = None) -> AnyObject:
        current = self._writable(folder_id, object_id, "delete", expected_last_modified)
        target = self._object_folder(target_folder_id)
        if KIND_OF_MODULE[target.module] != kind_of(current):  # type: ignore[index]
            raise InvalidData("target folder holds another module", field="folder_id")
        if not self.rights(target_folder_id).can_create_objects:
            raise PermissionDenied(f"no right to create objects in folder {target_folder_id}")
        if isinstance(current, Contact) and current.user_id is not None:
            raise PermissionDenied("global address book entries cannot be moved")
        if target_folder_id == folder_id:
            return current
        self._move_membership(current, folder_id, target_folder_id)
        self.tx.record_object_change(folder_id, object_id, gone=True, kind="move")
        self.tx.record_object_change(target_folder_id, object_id, gone=False, kind="move")
        return self.get_object(target_folder_id, object_id)

    def _move_membership(self, current: AnyObject, folder_id: int, target_folder_id: int) -> None:
        assert current.object_id is not None
        p = s.participants
        from sqlalchemy import update

        moved = self.tx.conn.execute(
            update(p).where(and_(p.c.tenant_id == self.tx.tenant_id, p.c.object_id == current.object_id,
                                 p.c.folder_id == folder_id, p.c.entity == self.user_id))
            .values(folder_id=target_folder_id)
        ).rowcount
        if not moved or current.folder_id == folder_id:
            object_ops.set_object_folder(self.tx, current.object_id, target_folder_id, self.user_id)
        else:
            object_ops.touch_object(self.tx, current.object_id, self.user_id)

    # ------------------------------------------------------------ change tracking

    def revision(self) -> tuple[int, int]:
        """(revision, last_modified ms) of the newest committed change in this tenant."""
        row = self.tx.conn.execute(select(s.tenants.c.rev, s.tenants.c.last_ms, s.tenants.c.min_valid_rev)
                                   .where(s.tenants.c.id == self.tx.tenant_id)).one()
        self._min_valid = int(row.min_valid_rev)
        return int(row.rev), int(row.last_ms)

    def _check_token(self, since_rev: int) -> tuple[int, int]:
        rev, ms = self.revision()
        if since_rev > rev:
            raise ResyncRequired(f"sync token {since_rev} is from the future (now {rev})")
        if 0 < since_rev < self._min_valid:
            raise ResyncRequired(f"sync token {since_rev} predates the pruning horizon {self._min_valid}")
        return rev, ms

    def rev_for_ms(self, ms: int) -> int:
        """The newest revision committed at or before OX timestamp `ms` (0 if none). A timestamp older
        than the pruned history maps to a revision before the horizon, so that a delta from it is
        refused (ResyncRequired: the client is re-listed) instead of read as 'from the beginning'."""
        rl = s.revision_log
        found = self.tx.conn.execute(
            select(rl.c.rev).where(and_(rl.c.tenant_id == self.tx.tenant_id, rl.c.ms <= ms)).order_by(rl.c.rev.desc()).limit(1)
        ).scalar_one_or_none()
        if found is None and ms > 0:
            self.revision()  # reads the horizon
            if self._min_valid > 1:
                return self._min_valid - 1
        return int(found or 0)

    def object_delta(self, folder_id: int, since_rev: int) -> ObjectDelta:
        """What changed in `folder_id` after `since_rev`, filtered by what this user may see now."""
        rev, ms = self._check_token(since_rev)
        self._object_folder(folder_id)
        c = s.changes
        rows = self.tx.conn.execute(
            select(c.c.object_id, c.c.gone, c.c.resource_name).where(
                and_(c.c.tenant_id == self.tx.tenant_id, c.c.folder_id == folder_id, c.c.rev > since_rev, c.c.rev <= rev)
            )
        ).all()
        delta = ObjectDelta(rev, ms)
        delta.gone_names = {r.object_id: r.resource_name for r in rows if r.gone and r.resource_name is not None}
        present = [r.object_id for r in rows if not r.gone]
        delta.gone = sorted(r.object_id for r in rows if r.gone)
        members = folders_of_objects(self.tx, present)
        still_here = [i for i in present if folder_id in members[i]]
        readable = self._readable_rows(folder_id, still_here)
        readable_ids = {r.id for r in readable}
        delta.changed = [self._personalised(o) for o in
                         object_ops.load_objects(self.tx, readable, {i: folder_id for i in readable_ids})]
        hidden = sorted(set(present) - readable_ids)
        delta.gone = sorted(set(delta.gone) | set(hidden))
        if hidden:  # still stored, only no longer visible here: their names are on the rows
            o = s.objects
            for r in self.tx.conn.execute(select(o.c.id, o.c.resource_name).where(
                    and_(o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(hidden)))):
                delta.gone_names[r.id] = r.resource_name or ""
        return delta

    def folder_delta(self, since_rev: int) -> FolderDelta:
        rev, ms = self._check_token(since_rev)
        fc = s.folder_changes
        rows = self.tx.conn.execute(
            select(fc.c.folder_id, fc.c.gone).where(and_(fc.c.tenant_id == self.tx.tenant_id, fc.c.rev > since_rev, fc.c.rev <= rev))
        ).all()
        visible = self._visible_ids()
        self._rights.update(visible)
        delta = FolderDelta(rev, ms)
        changed_ids = [r.folder_id for r in rows if not r.gone and r.folder_id in visible]
        loaded = folder_ops.load_folders(self.tx, changed_ids)
        delta.changed = [self._access(loaded[i], visible[i]) for i in sorted(loaded)]
        delta.gone = sorted(r.folder_id for r in rows if r.folder_id not in loaded)
        return delta

    # ------------------------------------------------------------ attachments

    def add_attachment(self, folder_id: int, object_id: int, filename: str, mimetype: str, content: bytes,
                       rtf_flag: bool = False, expected_last_modified: int | None = None):  # type: ignore[no-untyped-def]
        from oxsync.store import attachments

        return attachments.add_attachment(self, folder_id, object_id, filename, mimetype, content, rtf_flag,
                                          expected_last_modified)

    def get_attachment(self, folder_id: int, object_id: int, attachment_id: int):  # type: ignore[no-untyped-def]
        from oxsync.store import attachments

        return attachments.get_attachment(self, folder_id, object_id, attachment_id)

    def delete_attachment(self, folder_id: int, object_id: int, attachment_id: int) -> None:
        from oxsync.store import attachments

        attachments.delete_attachment(self, folder_id, object_id, attachment_id)

    # ------------------------------------------------------------ meetings, series, free/busy

    def confirm(self, folder_id: int, object_id: int, confirmation, message: str = "") -> AnyObject:  # type: ignore[no-untyped-def]
        """Set the caller's own confirmation (accept, decline, tentative, none) of a meeting or task."""
        from oxsync.store.meetings import confirm

        self.get_object(folder_id, object_id)
        confirm(self.tx, self.user_id, object_id, confirmation, message)
        answered = self.get_object(folder_id, object_id)
        if isinstance(answered, Appointment):
            from oxsync.store import itip

            itip.after_confirm(self.tx, answered, self.user_id, Confirmation(confirmation))
        return answered

    def change_occurrence(self, folder_id: int, series_id: int, original, changes: Appointment) -> Appointment:  # type: ignore[no-untyped-def]
        from oxsync.store.series import change_occurrence

        return change_occurrence(self, folder_id, series_id, original, changes)

    def delete_occurrence(self, folder_id: int, series_id: int, original) -> None:  # type: ignore[no-untyped-def]
        from oxsync.store.series import delete_occurrence

        delete_occurrence(self, folder_id, series_id, original)

    def end_series_before(self, folder_id: int, series_id: int, first_removed) -> Appointment:  # type: ignore[no-untyped-def]
        from oxsync.store.series import end_series_before

        return end_series_before(self, folder_id, series_id, first_removed)

    def free_busy(self, start, end, *, user_id: int | None = None, resource_id: int | None = None):  # type: ignore[no-untyped-def]
        """Merged busy periods of any user or resource of the tenant; no titles, so no rights needed."""
        from oxsync.store.scheduling import free_busy

        return free_busy(self.tx, start, end, user_id=user_id, resource_id=resource_id)


def _series_of(obj: AnyObject) -> int | None:
    return obj.recurrence_id if isinstance(obj, Appointment) else None
