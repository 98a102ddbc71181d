"""Mail folders as the device sees them: ServerIds from Dovecot's X-GUID, FolderHierarchy types from SPECIAL-USE."""

from __future__ import annotations

import hashlib
from typing import Any

from oxsync.eas.protocol import FolderKind
from oxsync.mail import MailFolder

TYPE_OF_SPECIAL = {"inbox": FolderKind.INBOX, "drafts": FolderKind.DRAFTS, "trash": FolderKind.DELETED,
                   "sent": FolderKind.SENT}
OUTBOX_ID = "m6"
"""Outbox has no IMAP counterpart (mail is sent with SendMail): the placeholder stays."""


def server_id(folder: MailFolder) -> str:
    guid = folder.guid
    if guid.startswith("name:"):  # a server without X-GUID: identity follows the name
        guid = hashlib.sha1(guid.encode(), usedforsecurity=False).hexdigest()[:32]
    return f"m{guid}"


def is_mail_id(collection_id: str) -> bool:
    return collection_id.startswith("m") and len(collection_id) > 2


def mail_view(folders: list[MailFolder]) -> dict[str, list[Any]]:
    by_name = {f.name: f for f in folders}
    view: dict[str, list[Any]] = {}
    for folder in folders:
        parent = by_name.get(folder.parent) if folder.parent else None
        display = folder.name.rsplit(folder.delimiter, 1)[-1] if folder.parent else folder.name
        if folder.special == "inbox":
            display = "Inbox"
        kind = TYPE_OF_SPECIAL.get(folder.special or "", FolderKind.USER_MAIL)
        view[server_id(folder)] = [server_id(parent) if parent else "0", display, int(kind)]
    view[OUTBOX_ID] = ["0", "Outbox", int(FolderKind.OUTBOX)]
    return view


def find(folders: list[MailFolder] | None, collection_id: str) -> MailFolder | None:
    for folder in folders or ():
        if server_id(folder) == collection_id:
            return folder
    return None


def special(folders: list[MailFolder] | None, use: str) -> MailFolder | None:
    return next((f for f in folders or () if f.special == use), None)
