"""FolderSync, FolderCreate, FolderUpdate, FolderDelete: the folder hierarchy and its SyncKey.

The device's view of the hierarchy (server id -> [parent id, name, type]) is stored with the
hierarchy key, and the previous view with the previous key, so that:
- FolderSync answers the difference between what the device was told and what exists now;
- a replayed previous key gets the same difference and the same new key;
- repeated `SyncKey 0` (pyactivesync sends one before every folder command) never wipes sync states;
- a folder the device itself created, renamed or deleted is not echoed back by the next FolderSync.
"""

from __future__ import annotations

import logging
from typing import Any

from oxsync.eas import mailfolders, state
from oxsync.eas.commands import mailhierarchy
from oxsync.eas.protocol import MAIL_FOLDERS, FolderKind
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.mail import MailUnavailable
from oxsync.model import Module
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK, PRIVATE_ROOT
from oxsync.store.errors import Conflict, InvalidData, NotFound, PermissionDenied, StoreError
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.folders")
FolderView = dict[str, list[Any]]
DEFAULT_TYPE = {Module.CONTACT: FolderKind.CONTACTS, Module.CALENDAR: FolderKind.CALENDAR, Module.TASK: FolderKind.TASKS}
USER_TYPE = {Module.CONTACT: FolderKind.USER_CONTACTS, Module.CALENDAR: FolderKind.USER_CALENDAR,
             Module.TASK: FolderKind.USER_TASKS}
MODULE_OF_TYPE = {t: m for m, t in USER_TYPE.items()} | {t: m for m, t in DEFAULT_TYPE.items()}
CLASS_OF_MODULE = {Module.CONTACT: "Contacts", Module.CALENDAR: "Calendar", Module.TASK: "Tasks"}


def device_folders(session: UserSession, expose_mail: bool, mail_view: FolderView | None = None) -> FolderView:
    """What the device should see now: synchronisable folders (GAL excluded) and mail placeholders."""
    view: FolderView = {}
    parents: dict[str, int] = {}
    names: dict[int, str] = {}
    for access in session.list_folders():
        folder = access.folder
        if folder.module is None or folder.is_system or folder.id == GLOBAL_ADDRESS_BOOK:
            continue
        own_default = folder.default_folder and folder.owner == session.user_id
        kind = DEFAULT_TYPE[folder.module] if own_default else USER_TYPE[folder.module]
        title = folder.title
        if access.shared and folder.owner is not None:
            if folder.owner not in names:
                try:
                    names[folder.owner] = session.user(folder.owner).display_name
                except StoreError:
                    names[folder.owner] = str(folder.owner)
            title = f"{title} ({names[folder.owner]})"
        view[str(folder.id)] = ["0", title, int(kind)]
        parents[str(folder.id)] = folder.parent_id
    for server_id, parent in parents.items():
        if str(parent) in view:
            view[server_id][0] = str(parent)
    if mail_view is not None:
        view.update(mail_view)
    elif expose_mail:
        for server_id, name, kind in MAIL_FOLDERS:
            view[server_id] = ["0", name, kind]
    return view


def folder_entry(tag: str, server_id: str, item: list[Any]) -> Element:
    return E(f"FolderHierarchy:{tag}", E("FolderHierarchy:ServerId", server_id),
             E("FolderHierarchy:ParentId", item[0]), E("FolderHierarchy:DisplayName", item[1]),
             E("FolderHierarchy:Type", str(item[2])))


def _status(cmd: str, status: int) -> EasResponse:
    return EasResponse(E(f"FolderHierarchy:{cmd}", E("FolderHierarchy:Status", str(status))))


def folder_sync(eas: Eas, req: EasRequest) -> Any:
    if eas.mail is None:
        return eas.staged(req, lambda session, states: _folder_sync(eas, session, req, states=states), light=True)

    def listed(folders: list[Any]) -> Any:
        view = mailfolders.mail_view(folders)
        return eas.staged(req, lambda session, states: _folder_sync(eas, session, req, view, states), light=True)

    def unavailable(failure: Any) -> EasResponse:
        failure.trap(MailUnavailable)
        log.warning("mail server unavailable: %s", failure.getErrorMessage(), extra={"event": "eas.mail_unavailable"})
        return _status("FolderSync", 6)

    return eas.mail.folders(req.principal.email, fresh=True).addCallbacks(listed, unavailable)


def _folder_sync(eas: Eas, session: UserSession, req: EasRequest, mail_view: FolderView | None = None,
                 states: state.StateStore | None = None) -> EasResponse:
    """The hierarchy delta; only the hierarchy state is written (to `states`, staged or the session)."""
    states = states if states is not None else session
    key = req.body.findtext("FolderHierarchy:SyncKey") if req.body is not None else None
    if key is None or len(key) > 64:
        return _status("FolderSync", 10)
    saved = states.get_state(req.device_id, state.HIERARCHY) or {}
    current = device_folders(session, eas.config.expose_mail_folders, mail_view)
    replay = False
    if key == "0":
        base: FolderView = {}
    elif key == saved.get("key"):
        base = saved.get("folders", {})
    elif key == saved.get("prev_key"):
        base, replay = saved.get("prev_folders", {}), True
    else:
        return _status("FolderSync", 9)
    changes = E("FolderHierarchy:Changes")
    count = 0
    for server_id in sorted(set(base) - set(current)):
        changes.append(E("FolderHierarchy:Delete", E("FolderHierarchy:ServerId", server_id)))
        count += 1
    for server_id, item in sorted(current.items()):
        old = base.get(server_id)
        if old is None or list(old) != list(item):
            changes.append(folder_entry("Update" if old is not None else "Add", server_id, item))
            count += 1
    changes.children.insert(0, E("FolderHierarchy:Count", str(count)))
    if replay and current == saved.get("folders"):
        new_key = saved["key"]
    elif count or key == "0" or replay:
        new_key = state.next_sync_key(saved["key"]) if saved.get("key") and key != "0" else state.new_sync_key()
        if req.device_id not in state.NOT_PERSISTED_DEVICES:
            states.put_state(req.device_id, state.HIERARCHY, {
                "key": new_key, "folders": current, "prev_key": key, "prev_folders": base})
    else:
        new_key = key
    return EasResponse(E("FolderHierarchy:FolderSync", E("FolderHierarchy:Status", "1"),
                         E("FolderHierarchy:SyncKey", new_key), changes))


def _hierarchy(session: UserSession, req: EasRequest, cmd: str) -> tuple[dict[str, Any] | None, EasResponse | None]:
    key = req.body.findtext("FolderHierarchy:SyncKey") if req.body is not None else None
    saved = session.get_state(req.device_id, state.HIERARCHY) or {}
    if key is None:
        return None, _status(cmd, 10)
    if not saved.get("key") or key != saved["key"]:
        return None, _status(cmd, 9)
    return saved, None


def _advance(session: UserSession, req: EasRequest, saved: dict[str, Any], folders: FolderView) -> str:
    new_key = state.next_sync_key(saved["key"])
    session.put_state(req.device_id, state.HIERARCHY, {
        "key": new_key, "folders": folders, "prev_key": saved["key"], "prev_folders": saved.get("folders", {})})
    return new_key


def _error_status(exc: StoreError) -> int:
    if isinstance(exc, Conflict):
        return 2
    if isinstance(exc, PermissionDenied):
        return 3
    if isinstance(exc, NotFound):
        return 4
    if isinstance(exc, InvalidData):
        return 10
    return 6


def folder_create(eas: Eas, req: EasRequest) -> Any:
    if mailhierarchy.wants_mail(eas, req):
        return mailhierarchy.change_mail_folder(eas, req)
    return eas.write(req, lambda session: _folder_create(eas, session, req))


def _folder_create(eas: Eas, session: UserSession, req: EasRequest) -> EasResponse:
    saved, error = _hierarchy(session, req, "FolderCreate")
    if error is not None or saved is None or req.body is None:
        return error or _status("FolderCreate", 10)
    parent = req.body.findtext("FolderHierarchy:ParentId", "0")
    name = (req.body.findtext("FolderHierarchy:DisplayName") or "").strip()
    kind = req.body.findtext("FolderHierarchy:Type", "")
    module = MODULE_OF_TYPE.get(int(kind)) if kind.isdigit() else None
    if module is None or not name or len(name) > 255:
        return _status("FolderCreate", 10 if module is None else 10)
    folders = dict(saved.get("folders", {}))
    if parent != "0" and (not parent.isdigit() or parent not in folders):
        return _status("FolderCreate", 5)
    if any(item[0] == parent and item[1] == name for item in folders.values()):
        return _status("FolderCreate", 2)
    try:
        created = session.create_folder(PRIVATE_ROOT if parent == "0" else int(parent), name, module)
    except StoreError as exc:
        return _status("FolderCreate", 5 if isinstance(exc, NotFound) else _error_status(exc))
    server_id = str(created.folder.id)
    folders[server_id] = [parent, name, int(USER_TYPE[module])]
    new_key = _advance(session, req, saved, folders)
    return EasResponse(E("FolderHierarchy:FolderCreate", E("FolderHierarchy:Status", "1"),
                         E("FolderHierarchy:SyncKey", new_key), E("FolderHierarchy:ServerId", server_id)))


def folder_update(eas: Eas, req: EasRequest) -> Any:
    if mailhierarchy.wants_mail(eas, req):
        return mailhierarchy.change_mail_folder(eas, req)
    return eas.write(req, lambda session: _folder_update(session, req))


def _folder_update(session: UserSession, req: EasRequest) -> EasResponse:
    saved, error = _hierarchy(session, req, "FolderUpdate")
    if error is not None or saved is None or req.body is None:
        return error or _status("FolderUpdate", 10)
    server_id = req.body.findtext("FolderHierarchy:ServerId", "")
    parent = req.body.findtext("FolderHierarchy:ParentId", "0")
    name = (req.body.findtext("FolderHierarchy:DisplayName") or "").strip()
    folders = dict(saved.get("folders", {}))
    if server_id not in folders:
        return _status("FolderUpdate", 4)
    if not server_id.isdigit():
        return _status("FolderUpdate", 3)
    if any(k != server_id and item[0] == parent and item[1] == name for k, item in folders.items()):
        return _status("FolderUpdate", 2)
    try:
        session.update_folder(int(server_id), title=name or None,
                              parent_id=(PRIVATE_ROOT if parent == "0" else int(parent)) if parent.isdigit() else None)
    except StoreError as exc:
        return _status("FolderUpdate", _error_status(exc))
    folders[server_id] = [parent, name or folders[server_id][1], folders[server_id][2]]
    new_key = _advance(session, req, saved, folders)
    return EasResponse(E("FolderHierarchy:FolderUpdate", E("FolderHierarchy:Status", "1"),
                         E("FolderHierarchy:SyncKey", new_key)))


def folder_delete(eas: Eas, req: EasRequest) -> Any:
    if mailhierarchy.wants_mail(eas, req):
        return mailhierarchy.change_mail_folder(eas, req)
    return eas.write(req, lambda session: _folder_delete(session, req))


def _folder_delete(session: UserSession, req: EasRequest) -> EasResponse:
    saved, error = _hierarchy(session, req, "FolderDelete")
    if error is not None or saved is None or req.body is None:
        return error or _status("FolderDelete", 10)
    server_id = req.body.findtext("FolderHierarchy:ServerId", "")
    folders = dict(saved.get("folders", {}))
    if server_id not in folders:
        return _status("FolderDelete", 4)
    if not server_id.isdigit():
        return _status("FolderDelete", 3)
    try:
        session.delete_folder(int(server_id))
    except StoreError as exc:
        return _status("FolderDelete", _error_status(exc))
    del folders[server_id]
    session.delete_state(req.device_id, state.collection_key(server_id))
    new_key = _advance(session, req, saved, folders)
    return EasResponse(E("FolderHierarchy:FolderDelete", E("FolderHierarchy:Status", "1"),
                         E("FolderHierarchy:SyncKey", new_key)))
