"""In-process change bus: who must wake up when a tenant's folders change.

Everything here runs on the reactor thread. Publishers are the store listener of `DeferredStore`
(after a local commit, hopped onto the reactor) and, later, a cross-node source such as PostgreSQL
LISTEN/NOTIFY (`oxsync.push.pgbus`); both call `publish` with the same arguments and only differ in
`origin`. A change may arrive more than once (e.g. again in a tenant-wide re-check after a lost bus
connection): subscribers compare `revision` with what they have already seen and must be idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("oxsync.push.bus")


@dataclass(frozen=True)
class Change:
    """One committed change: these folders of this tenant reached `revision`.

    An EMPTY `folder_ids` means "any folder of the tenant may have changed, up to `revision`": sent when
    the folder list was too long for a notification, or after the cross-node bus lost notices.
    """

    tenant_id: int
    folder_ids: frozenset[int]
    revision: int
    origin: str = "local"
    """`local` for a commit in this process; `remote` for another node's commit (LISTEN/NOTIFY);
    `recheck` for the tenant-wide events published after the bus connection was lost."""
    published_at: float = field(default_factory=time.monotonic, compare=False)
    """When this node's bus saw it (monotonic): the start of the push latency metric."""

    def age(self) -> float:
        """Seconds since the bus saw this change."""
        return max(0.0, time.monotonic() - self.published_at)


@dataclass(frozen=True)
class AccountChange:
    """Accounts whose login, password, suspension, protocol rights or existence changed.

    `tenant_id` None = every tenant; empty `user_ids` = every user of the tenant(s). Verified-login
    caches forget what matches (an over-broad event only costs one password check more)."""

    tenant_id: int | None
    user_ids: frozenset[int]
    origin: str = "local"

    def concerns(self, tenant_id: int, user_id: int) -> bool:
        return (self.tenant_id is None or self.tenant_id == tenant_id) and (
            not self.user_ids or user_id in self.user_ids)


Subscriber = Callable[[Change], object]
AccountSubscriber = Callable[[AccountChange], object]
Unsubscribe = Callable[[], None]


class ChangeBus:
    """Publish/subscribe of `Change`s; a failing subscriber is logged and never stops the others."""

    def __init__(self) -> None:
        self._subscribers: dict[int, Subscriber] = {}
        self._account_subscribers: dict[int, AccountSubscriber] = {}
        self._next_key = 0

    def subscribe_accounts(self, callback: AccountSubscriber) -> Unsubscribe:
        """Register `callback` for account changes (suspension, password, rights, deletion)."""
        key = self._next_key
        self._next_key += 1
        self._account_subscribers[key] = callback

        def unsubscribe() -> None:
            self._account_subscribers.pop(key, None)

        return unsubscribe

    def publish_accounts(self, tenant_id: int | None, user_ids: Iterable[int], *, origin: str = "local") -> None:
        change = AccountChange(tenant_id, frozenset(user_ids), origin)
        for callback in list(self._account_subscribers.values()):
            try:
                callback(change)
            except Exception:
                log.exception("account subscriber failed", extra={"event": "bus.subscriber_failed",
                                                                  "tenant": tenant_id or 0})

    def subscribe(self, callback: Subscriber) -> Unsubscribe:
        """Register `callback`; the returned function removes it (calling it twice is harmless)."""
        key = self._next_key
        self._next_key += 1
        self._subscribers[key] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(key, None)

        return unsubscribe

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, tenant_id: int, folder_ids: Iterable[int], revision: int, *, origin: str = "local") -> None:
        """Deliver to every subscriber registered now (a subscriber may unsubscribe while called)."""
        change = Change(tenant_id, frozenset(folder_ids), revision, origin)
        for callback in list(self._subscribers.values()):
            try:
                callback(change)
            except Exception:
                log.exception(
                    "change subscriber failed",
                    extra={"event": "bus.subscriber_failed", "tenant": tenant_id, "revision": revision},
                )
