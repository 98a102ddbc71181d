"""FolderCreate / FolderUpdate / FolderDelete on mail folders: IMAP CREATE / RENAME / DELETE.

The hierarchy key is checked before the IMAP change and the new key written after it, in the same
way as for PIM folders (folders.py); special folders (Inbox, Drafts, Sent, Trash) cannot be renamed
or deleted (Status 2 / 3 as MS-ASCMD says for system folders).
"""

from __future__ import annotations

from typing import Any

from imapclient.exceptions import IMAPClientError

from oxsync.eas import mailfolders, state
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E
from oxsync.mail import MailFolder, MailUnavailable, gateway
from oxsync.store.session import UserSession

MAIL_TYPES = ("1", "12")


def _status(cmd: str, status: int) -> EasResponse:
    return EasResponse(E(f"FolderHierarchy:{cmd}", E("FolderHierarchy:Status", str(status))))


def wants_mail(eas: Eas, req: EasRequest) -> bool:
    if eas.mail is None or req.body is None:
        return False
    if req.cmd == "FolderCreate":
        parent = req.body.findtext("FolderHierarchy:ParentId", "0")
        return req.body.findtext("FolderHierarchy:Type", "") in MAIL_TYPES or mailfolders.is_mail_id(parent)
    return mailfolders.is_mail_id(req.body.findtext("FolderHierarchy:ServerId", ""))


def change_mail_folder(eas: Eas, req: EasRequest) -> Any:
    assert eas.mail is not None and req.body is not None
    cmd = req.cmd
    key = req.body.findtext("FolderHierarchy:SyncKey")
    account = req.principal.email

    def check(session: UserSession) -> dict[str, Any] | EasResponse:
        saved = session.get_state(req.device_id, state.HIERARCHY) or {}
        if key is None:
            return _status(cmd, 10)
        if not saved.get("key") or key != saved["key"]:
            return _status(cmd, 9)
        return saved

    def imap(conn: Any) -> tuple[int, str | None]:
        assert eas.mail is not None and req.body is not None
        folders = eas.mail.list_folders_sync(conn, account)
        name = (req.body.findtext("FolderHierarchy:DisplayName") or "").strip()
        parent_id = req.body.findtext("FolderHierarchy:ParentId", "0")
        parent = mailfolders.find(folders, parent_id) if parent_id != "0" else None
        if parent_id != "0" and parent is None:
            return 5 if cmd == "FolderCreate" else 3, None
        delimiter = folders[0].delimiter if folders else "/"
        full = f"{parent.name}{parent.delimiter}{name}" if parent is not None else name
        if cmd == "FolderCreate":
            if not name or len(name) > 255 or delimiter in name:
                return 10, None
            if any(f.name == full for f in folders):
                return 2, None
            guid = gateway.create_folder(conn, full)
            return 1, mailfolders.server_id(MailFolder(full, guid, None, None, delimiter))
        target = mailfolders.find(folders, req.body.findtext("FolderHierarchy:ServerId", ""))
        if target is None:
            return 4, None
        if target.special is not None:
            return 2 if cmd == "FolderUpdate" else 3, None
        if cmd == "FolderDelete":
            gateway.delete_folder(conn, target.name)
            return 1, mailfolders.server_id(target)
        if not name or delimiter in name:
            return 10, None
        if any(f.name == full for f in folders if f is not target):
            return 2, None
        gateway.rename_folder(conn, target.name, full)
        return 1, mailfolders.server_id(target)

    def changed(result: tuple[int, str | None], saved: dict[str, Any]) -> Any:
        status, server_id = result
        if status != 1 or server_id is None:
            return _status(cmd, status)
        assert eas.mail is not None and req.body is not None
        eas.mail.forget_folders(account)
        parent = req.body.findtext("FolderHierarchy:ParentId", "0")
        name = (req.body.findtext("FolderHierarchy:DisplayName") or "").strip()

        def advance(session: UserSession) -> EasResponse:
            current = session.get_state(req.device_id, state.HIERARCHY) or {}
            folders = dict(current.get("folders", saved.get("folders", {})))
            if cmd == "FolderDelete":
                folders.pop(server_id, None)
                session.delete_state(req.device_id, state.collection_key(server_id))
            else:
                folders[server_id] = [parent, name, 12]
            new_key = state.next_sync_key(current.get("key") or saved["key"])
            session.put_state(req.device_id, state.HIERARCHY, {
                "key": new_key, "folders": folders, "prev_key": current.get("key"),
                "prev_folders": current.get("folders", {})})
            out = E(f"FolderHierarchy:{cmd}", E("FolderHierarchy:Status", "1"), E("FolderHierarchy:SyncKey", new_key))
            if cmd == "FolderCreate":
                out.append(E("FolderHierarchy:ServerId", server_id))
            return EasResponse(out)

        return eas.write(req, advance)

    def checked(saved: dict[str, Any] | EasResponse) -> Any:
        if isinstance(saved, EasResponse):
            return saved
        assert eas.mail is not None
        d = eas.mail.run(account, imap)
        d.addCallback(changed, saved)
        d.addErrback(failed)
        return d

    def failed(failure: Any) -> EasResponse:
        failure.trap(MailUnavailable, IMAPClientError)
        return _status(cmd, 6)

    return eas.read(req, check).addCallback(checked)
