"""What one user may see and do, for one transaction: the rights core every part of a session asks.

A `Viewer` answers "which folders and objects may this user see, read, change" from folder permissions,
the private flag (invisible to all but its creator and participants), the account's rights from the
hosting panel (public folders, collaborative sharing) and the object's membership (home folder or a
participant's folder). It caches rights and folders for its transaction; the parts of the session that
change folders tell it to forget them (`forget`). The other parts of a session (`folder_edits`,
`object_edits`, `bulk`, `lookups`, `deltas`, `attachments`...) read only through it, so that every
object access is checked in one place.

Optimistic concurrency lives here too: `require_unchanged` refuses a client whose version of a folder or
object is older than the stored one (`StaleObject`); the write calls check the same rule.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import Integer, and_, bindparam, select

from oxsync.model import Appointment, Folder, FolderType, Module, Rights, Task
from oxsync.model.appointment import ParticipantKind
from oxsync.model.folder import FolderAccess
from oxsync.store import account_rights as rules
from oxsync.store import folders as folder_ops
from oxsync.store import objects as object_ops
from oxsync.store import schema as s
from oxsync.store.errors import InvalidData, NotFound, PermissionDenied, StaleObject
from oxsync.store.idlists import ids_in
from oxsync.store.meetings import personalise
from oxsync.store.membership import folders_of_objects, object_ids_in_folder
from oxsync.store.objects import AnyObject
from oxsync.store.tx import Tx
from oxsync.store.validate import check_id

CHUNK = 500
"""Ids per `IN (...)` list: statements grow with the number of chunks, never one query per object."""
_o = s.objects
_UID_ROWS = select(_o.c.id, _o.c.series_id).where(and_(_o.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                                       _o.c.uid == bindparam("uid")))
"""Built once: every DAV write asks which objects hold its UID."""
_OBJECT_ROW = select(_o).where(and_(_o.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                    _o.c.id == bindparam("k_id", type_=Integer)))
"""Built once: every object read or update by id starts with it."""


def _folder_copy(folder: Folder) -> Folder:
    """A copy of `folder` its caller may change, as a deep copy but without its walk (a CalDAV PUT took
    four, ~3 % of its Python): the one mutable field, `permissions`, is a new list; its entries and
    every other field are immutable (frozen `Permission`/`Rights`, numbers, strings, enums)."""
    out = copy.copy(folder)
    out.permissions = list(folder.permissions)
    return out


class Viewer:
    """The rights of `user_id` inside `tx`, and the reads that apply them."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id
        self._groups: list[int] | None = None
        self._rights: dict[int, Rights] = {}
        self._folders: dict[int, Folder] = {}
        """Folders loaded in this transaction; dropped whenever this session changes a folder."""
        self._account: rules.AccountRights | None = None
        self._hidden: frozenset[int] | None = None
        self.placed: dict[int, tuple[int, frozenset[int], Any]] = {}
        """object id -> (home folder, every folder it is in, its row) as last read by `fetch` in this transaction."""
        self._uids: dict[tuple[str, int], list[tuple[int, int | None]]] = {}

    # ------------------------------------------------------------ rights

    @property
    def group_ids(self) -> list[int]:
        if self._groups is None:
            self._load_account()
        assert self._groups is not None
        return self._groups

    @property
    def account_rights(self) -> rules.AccountRights:
        """The account's rights from the hosting panel (public folders, collaborative sharing): from the
        account's row if this transaction read it already (`Tx.account_rows`), else with the groups."""
        if self._account is None:
            seen = self.tx.account_rows.get(self.user_id)
            if seen is not None:
                self._account = rules.AccountRights(*seen)
            else:
                self._load_account()
        assert self._account is not None
        return self._account

    def _load_account(self) -> None:
        """Groups and account rights together: any folder's rights need both (one statement, not two)."""
        groups, self._account = rules.groups_and_account_rights(self.tx, self.user_id)
        self._groups = [folder_ops.ALL_USERS, *groups]

    def _restricted(self, rights: dict[int, Rights]) -> dict[int, Rights]:
        if self.account_rights.public_folders:
            return rights
        if self._hidden is None:
            self._hidden = rules.public_folder_ids(self.tx)
        return rules.restrict(rights, self._hidden)

    def visible_folder_rights(self) -> dict[int, Rights]:
        """Every folder this user may see, with its rights (remembered for this transaction)."""
        visible = self._restricted(folder_ops.visible_folder_ids(self.tx, self.user_id, self.group_ids))
        visible = {fid: r for fid, r in visible.items() if r.can_see_folder}
        self._rights.update(visible)
        return visible

    def rights(self, folder_id: int) -> Rights:
        if folder_id not in self._rights:
            check_id(folder_id, "folder_id")
            self._rights.update(self._restricted(
                folder_ops.effective_rights(self.tx, self.user_id, self.group_ids, [folder_id])))
        return self._rights[folder_id]

    def forget(self, folder_id: int | None = None) -> None:
        """Drop what this transaction remembered of folders and rights (of one folder, or of all) after
        this session changed them."""
        if folder_id is not None:
            self._rights.pop(folder_id, None)
            return
        self._rights.clear()
        self._folders.clear()

    def forget_folders(self) -> None:
        """Drop the remembered folders (titles, parents, permissions) but keep the rights."""
        self._folders.clear()

    # ------------------------------------------------------------ folders

    def access(self, folder: Folder, rights: Rights) -> FolderAccess:
        shared = folder.type == FolderType.PRIVATE and folder.owner not in (None, self.user_id)
        return FolderAccess(folder, rights, shared)

    def visible_folder(self, folder_id: int) -> Folder:
        """A copy of the folder (NotFound unless this user may see it)."""
        if folder_id not in self._rights and folder_id not in self._folders:
            self._rights_with_folder(folder_id)
        rights = self.rights(folder_id)
        if not rights.can_see_folder:
            raise NotFound(f"folder {folder_id} does not exist or is not visible")
        if folder_id not in self._folders:
            self._folders[folder_id] = folder_ops.load_folder(self.tx, folder_id)
        return _folder_copy(self._folders[folder_id])

    def _rights_with_folder(self, folder_id: int) -> None:
        """Load the folder and take this user's rights from its permissions (the statement `rights`
        would run for them is saved). A folder that is not found is left to `rights` and the caller, as
        before; one this user may not see is remembered like any loaded folder and never returned."""
        check_id(folder_id, "folder_id")
        try:
            folder = folder_ops.load_folder(self.tx, folder_id)
        except NotFound:
            return
        self._folders[folder_id] = folder
        if folder.type == FolderType.PRIVATE and folder_id != rules.PUBLIC_ROOT and \
                not any(p.is_group for p in folder.permissions):
            # no group entry to match and no public folder to hide: the user's groups and account
            # rights change nothing (a Sync of one's own folder reads neither: one statement fewer)
            self._rights[folder_id] = folder_ops.rights_in(folder.permissions, self.user_id, [])
            return
        own = folder_ops.rights_in(folder.permissions, self.user_id, self.group_ids)
        self._rights.update(self._restricted({folder_id: own}))

    def object_folder(self, folder_id: int, module: Module | None = None) -> Folder:
        """A visible folder that holds objects (of `module` when given), else NotFound or InvalidData."""
        folder = self.visible_folder(folder_id)
        if folder.module is None or (module is not None and folder.module != module):
            raise InvalidData(f"folder {folder_id} does not hold {module.value if module else 'objects'}", field="folder_id")
        return folder

    def list_folders(self) -> list[FolderAccess]:
        visible = self.visible_folder_rights()
        loaded = folder_ops.load_folders(self.tx, visible)
        return [self.access(loaded[i], visible[i]) for i in sorted(loaded)]

    def get_folder(self, folder_id: int) -> FolderAccess:
        folder = self.visible_folder(folder_id)
        return self.access(folder, self.rights(folder_id))

    # ------------------------------------------------------------ objects

    def can_read(self, private: bool, created_by: int | None, object_id: int, rights: Rights,
                 participant_users: dict[int, set[int]]) -> bool:
        """May this user read the object (its row's private flag and creator) with these folder rights?"""
        own = created_by == self.user_id
        if private and not own and self.user_id not in participant_users.get(object_id, set()):
            return False
        return rights.can_read(own)

    def participant_users(self, object_ids: list[int]) -> dict[int, set[int]]:
        """object id -> the users taking part in it (those who see it even when private)."""
        p = s.participants
        out: dict[int, set[int]] = {}
        for i in range(0, len(object_ids), CHUNK):
            chunk = object_ids[i:i + CHUNK]
            query = select(p.c.object_id, p.c.entity).where(
                and_(p.c.tenant_id == self.tx.tenant_id, ids_in(self.tx, p.c.object_id, chunk), p.c.kind == 1)
            )
            for row in self.tx.conn.execute(query):
                out.setdefault(row.object_id, set()).add(row.entity)
        return out

    def readable_rows(self, folder_id: int, object_ids: list[int]) -> list[Any]:
        """The object rows among `object_ids` this user may read in `folder_id`, in id order (the caller
        has checked that they are in the folder)."""
        self.rights(folder_id)
        return self.readable_of(folder_id, self.rows_by_id(object_ids))

    def rows_by_id(self, object_ids: list[int]) -> list[Any]:
        """The object rows of `object_ids` (those that exist), in id order within each chunk of CHUNK ids."""
        query = object_ops.object_rows_query(self.tx.conn.dialect.name == "postgresql")
        rows: list[Any] = []
        for i in range(0, len(object_ids), CHUNK):
            rows.extend(map(object_ops.ObjectRow._make,  # at once (see bulk's `list_versions`), as plain tuples
                            self.tx.conn.execute(query, {"k_tenant": self.tx.tenant_id, "ids": object_ids[i:i + CHUNK]}).all()))
        return rows

    def readable_of(self, folder_id: int, rows: list[Any]) -> list[Any]:
        """The object `rows` this user may read in `folder_id` (the caller has checked they are in it)."""
        rights = self.rights(folder_id)
        private_ids = [r.id for r in rows if r.private]
        participants = self.participant_users(private_ids) if private_ids else {}
        return [r for r in rows if self.can_read(r.private, r.created_by, r.id, rights, participants)]

    def loaded(self, folder_id: int, rows: list[Any]) -> list[AnyObject]:
        """The readable `rows` of `folder_id` decoded and personalised (an undecodable row is left out)."""
        return [self.personalised(o) for o in object_ops.load_objects(self.tx, rows, {r.id: folder_id for r in rows})]

    def personalised(self, obj: AnyObject) -> AnyObject:
        """The object as this user sees it (their own confirmation and alarm of a meeting)."""
        if isinstance(obj, Appointment | Task):
            personalise(obj, self.user_id)
        return obj

    def list_objects(self, folder_id: int) -> list[AnyObject]:
        self.object_folder(folder_id)
        return self.loaded(folder_id, self.readable_rows(folder_id, object_ids_in_folder(self.tx, folder_id)))

    def get_object(self, folder_id: int, object_id: int) -> AnyObject:
        check_id(object_id, "object_id")
        self.object_folder(folder_id)
        inside, obj = self.fetch(folder_id, object_id)
        if obj is None:
            raise NotFound(f"object {object_id} is not in folder {folder_id}" if not inside else
                           f"object {object_id} cannot be read")
        return self.personalised(obj)

    def fetch(self, folder_id: int, object_id: int) -> tuple[bool, AnyObject | None]:
        """(is the object in `folder_id`, the object if this user may read it there, not personalised).
        Three reads: its row, its participants (which also say its other folders and private readers),
        its attachments. Remembers its home folder and folders for a write that follows (`placed`)."""
        row = self.tx.conn.execute(_OBJECT_ROW, {"k_tenant": self.tx.tenant_id, "k_id": object_id}).first()
        if row is None:
            return False, None
        loaded = object_ops.load_objects(self.tx, [row], {object_id: folder_id})
        if not loaded:  # undecodable (logged and counted by load_objects): its folders from the tables
            return folder_id in folders_of_objects(self.tx, [object_id])[object_id], None
        obj = loaded[0]
        parts = getattr(obj, "participants", [])
        folders = {int(row.folder_id)} | {p.folder_id for p in parts if p.folder_id is not None}
        self.placed[object_id] = (int(row.folder_id), frozenset(folders), row)
        readers = {object_id: {p.entity for p in parts if p.kind == ParticipantKind.USER}}
        if folder_id not in folders or not self.can_read(row.private, row.created_by, object_id, self.rights(folder_id),
                                                         readers):
            return folder_id in folders, None
        return True, obj

    def uid_rows(self, uid: str) -> list[tuple[int, int | None]]:
        """(id, series id) of the tenant's objects with this UID: read once until this transaction
        writes an object (a PUT's UID conflict check and its create ask the same question)."""
        key = (uid, self.tx.object_writes)
        if key not in self._uids:
            self._uids = {key: [(int(r.id), r.series_id) for r in self.tx.conn.execute(
                _UID_ROWS, {"k_tenant": self.tx.tenant_id, "uid": uid})]}
        return self._uids[key]

    def remember_uid_rows(self, uid: str, rows: list[tuple[int, int | None]]) -> None:
        """What `uid_rows(uid)` reads, read by another statement of this transaction just now (a CalDAV
        write's, with its body's addresses: `Lookups.find_principals`)."""
        self._uids = {(uid, self.tx.object_writes): rows}

    def writable(self, folder_id: int, object_id: int, need: str, expected_last_modified: int | None) -> AnyObject:
        """The object, once this user may `need` ("write" or "delete") it and the client's version is current."""
        current = self.get_object(folder_id, object_id)
        own = current.created_by == self.user_id
        rights = self.rights(folder_id)
        allowed = rights.can_write(own) if need == "write" else rights.can_delete(own)
        if not allowed:
            raise PermissionDenied(f"no right to {need} object {object_id} in folder {folder_id}")
        refuse_stale(current.last_modified, expected_last_modified, f"object {object_id}")
        return current

    # ------------------------------------------------------------ optimistic concurrency

    def require_unchanged(self, folder_id: int, expected_last_modified: int | None,
                          object_id: int | None = None) -> None:
        """Refuse (`StaleObject`, carrying the current version) a client whose version of the folder, or
        of the object `object_id` in it, is older than the stored one; None = the client sent no version.

        The write calls (`update_object`, `delete_object`, `move_object`, `update_folder`,
        `set_permissions`, `delete_folder`, `add_attachment`) take the same `expected_last_modified` and
        apply this rule before writing; call this for a request that must be refused when stale although
        it writes nothing (an OX save without changes, a CLEAR, an operation on one occurrence)."""
        if object_id is None:
            refuse_stale(self.visible_folder(folder_id).last_modified, expected_last_modified, f"folder {folder_id}")
        else:
            refuse_stale(self.get_object(folder_id, object_id).last_modified, expected_last_modified,
                         f"object {object_id}")


def refuse_stale(current: int | None, expected: int | None, what: str) -> None:
    """The one staleness rule: the client's version (`expected`, None = unknown) is older than `current`."""
    if expected is not None and current is not None and expected < current:
        raise StaleObject(f"{what} was changed since {expected} (now {current})", current)
