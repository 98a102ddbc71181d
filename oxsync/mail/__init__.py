"""Mail: the IMAP gateway (mail lives in Dovecot; oxsync is its ActiveSync face). docs/mail.md.

Public API for the dialects (`eas` imports it; `mail` imports neither `eas` nor `dav`/`ox`, and never
SQLAlchemy): `MailService` (pool + folder listing cache, reactor-side Deferreds), `gateway` functions
run through `MailService.run`, `message.read_message`, and `folder_bus_id` (the integer a mail folder
has on the change bus).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed

from oxsync.config import MailSettings
from oxsync.mail import gateway
from oxsync.mail.gateway import MailFolder
from oxsync.mail.pool import ImapPool, MailUnavailable

__all__ = ["MailFolder", "MailService", "MailUnavailable", "folder_bus_id", "gateway"]
T = TypeVar("T")
FOLDER_CACHE_SECONDS = 30.0


def folder_bus_id(guid: str) -> int:
    """Mail folders on the change bus: negative ids derived from the X-GUID (store folders are positive)."""
    return -(int(hashlib.sha1(guid.encode(), usedforsecurity=False).hexdigest()[:13], 16) + 1)


class MailService:
    def __init__(self, settings: MailSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.pool = ImapPool(settings, reactor)
        self._folders: dict[str, tuple[float, list[MailFolder]]] = {}

    @property
    def fallback_names(self) -> dict[str, str]:
        cfg = self.settings
        return {"drafts": cfg.drafts_name, "sent": cfg.sent_name, "trash": cfg.trash_name}

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop()

    def run(self, account: str, fn: Callable[[Any], T]) -> Deferred[T]:
        """`fn(imap_client)` on the IMAP pool, as the master user on `account`'s mailbox."""
        return self.pool.run(account, fn)

    def list_folders_sync(self, conn: Any, account: str) -> list[MailFolder]:
        """On an IMAP thread: list (and cache) the account's folders."""
        found = gateway.list_folders(conn, self.fallback_names)
        self._folders[account.lower()] = (time.monotonic(), found)
        return found

    def folders(self, account: str, fresh: bool = False) -> Deferred[list[MailFolder]]:
        cached = self._folders.get(account.lower())
        if cached is not None and not fresh and cached[0] + FOLDER_CACHE_SECONDS > time.monotonic():
            return succeed(cached[1])
        return self.run(account, lambda conn: self.list_folders_sync(conn, account))

    def cached_folders(self, account: str) -> list[MailFolder] | None:
        cached = self._folders.get(account.lower())
        return cached[1] if cached is not None else None

    def forget_folders(self, account: str) -> None:
        self._folders.pop(account.lower(), None)
