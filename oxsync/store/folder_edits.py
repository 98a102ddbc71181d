"""Creating, changing, re-permissioning and deleting folders on behalf of one user.

Every change is checked against the user's rights (through the session's `Viewer`) and the client's
version (`expected_last_modified`, see `Viewer.require_unchanged`); system and default folders keep
their shape. A change records a folder change row and makes the viewer forget what it cached.
"""

from __future__ import annotations

from oxsync.model import Folder, FolderType, Module, Permission
from oxsync.model.folder import FIRST_REAL_FOLDER, PRIVATE_ROOT, PUBLIC_ROOT, FolderAccess
from oxsync.store import account_rights as rules
from oxsync.store import folders as folder_ops
from oxsync.store.errors import InvalidData, PermissionDenied
from oxsync.store.removal import remove_folder_tree
from oxsync.store.viewer import Viewer


class FolderEdits:
    """Folder writes of the viewer's user, in the viewer's transaction."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.tx = viewer.tx
        self.user_id = viewer.user_id

    def create_folder(self, parent_id: int, title: str, module: Module, *, color: str | None = None) -> FolderAccess:
        title = title.strip()
        if not title:
            raise InvalidData("folder title is empty", field="title")
        parent = self.viewer.visible_folder(parent_id)
        if not self.viewer.rights(parent_id).can_create_subfolders:
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
        self.viewer.forget(folder.id)
        return self.viewer.get_folder(folder.id)

    def update_folder(self, folder_id: int, *, title: str | None = None, color: str | None = None,
                      parent_id: int | None = None, expected_last_modified: int | None = None) -> FolderAccess:
        folder = self.viewer.visible_folder(folder_id)
        rights = self.viewer.rights(folder_id)
        if folder.is_system or not (rights.folder >= 128 or rights.admin):
            raise PermissionDenied(f"no right to change folder {folder_id}")
        self.viewer.require_unchanged(folder_id, expected_last_modified)
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
        self.viewer.forget_folders()
        if old_parent != folder.parent_id:
            self.tx.touched_folders.add(old_parent)
        self.tx.record_folder_change(folder_id, folder.parent_id, gone=False)
        return self.viewer.access(folder, rights)

    def _check_folder_move(self, folder: Folder, new_parent_id: int) -> None:
        target = self.viewer.visible_folder(new_parent_id)
        if not self.viewer.rights(new_parent_id).can_create_subfolders:
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
        folder = self.viewer.visible_folder(folder_id)
        rights = self.viewer.rights(folder_id)
        if folder.is_system or not rights.admin:
            raise PermissionDenied(f"no right to change the permissions of folder {folder_id}")
        self.viewer.require_unchanged(folder_id, expected_last_modified)
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
        if not self.viewer.account_rights.sharing:
            rules.check_new_grants(self.user_id, folder.permissions, entries)
        folder_ops.write_permissions(self.tx, folder_id, entries)
        folder.permissions = list(entries)
        folder_ops.update_folder_row(self.tx, folder, self.user_id)
        self.tx.record_folder_change(folder_id, folder.parent_id, gone=False)
        self.tx.bump_folder_contents(folder_id)
        self.viewer.forget()
        return self.viewer.access(folder, self.viewer.rights(folder_id))

    def delete_folder(self, folder_id: int, expected_last_modified: int | None = None) -> None:
        folder = self.viewer.visible_folder(folder_id)
        rights = self.viewer.rights(folder_id)
        if folder.is_system or folder.default_folder:
            raise PermissionDenied(f"folder {folder_id} cannot be deleted")
        if not (rights.folder >= 128 or rights.admin):
            raise PermissionDenied(f"no right to delete folder {folder_id}")
        self.viewer.require_unchanged(folder_id, expected_last_modified)
        for fid in folder_ops.subtree_ids(self.tx, folder_id):
            if fid != folder_id and not self.viewer.rights(fid).admin and self.viewer.rights(fid).folder < 128:
                raise PermissionDenied(f"no right to delete subfolder {fid}")
        remove_folder_tree(self.tx, folder_id)
        self.viewer.forget()
