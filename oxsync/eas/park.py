"""Parked long-lived requests (Ping, hanging Sync): plain objects in memory, woken by the change bus.

A parked request holds no thread and no database connection: only a Deferred, a timer and its
folder set. What must hold:
- only the newest parked request per (tenant, user, device) lives: parking a new one answers the
  older one at once with "no changes" (Gmail fires duplicate Pings);
- a commit touching one of the folders wakes the request on the reactor thread right away; when it
  wakes many, at most `batch` are answered per reactor turn (the rest in the following turns, in
  order), so the reactor polls its sockets between batches; a woken request leaves the tables at
  once, before its answer is built, so it is never woken twice;
- a client that disconnects is forgotten (its timer cancelled).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oxsync.metrics import PARKED_PINGS, PUSH_SECONDS
from oxsync.push.bus import Change

log = logging.getLogger("oxsync.eas.park")

DeviceKey = tuple[int, int, str]


@dataclass(eq=False)
class Parked:
    key: DeviceKey
    folders: frozenset[int]
    on_change: Callable[[frozenset[int]], None]
    on_timeout: Callable[[], None]
    on_superseded: Callable[[], None]
    timer: Any = None
    done: bool = False
    changed: set[int] = field(default_factory=set)


class ParkedRequests:
    def __init__(self, reactor: Any, batch: int = 100) -> None:
        self.reactor = reactor
        self.batch = max(1, batch)
        self.by_device: dict[DeviceKey, Parked] = {}
        self.by_folder: dict[tuple[int, int], set[Parked]] = {}
        self.waking: deque[tuple[Parked, frozenset[int], Change]] = deque()
        """Woken (finished) requests whose answers are not built yet, oldest first."""
        self._draining = False

    def __len__(self) -> int:
        return len(self.by_device)

    def park(self, key: DeviceKey, folders: frozenset[int], seconds: float,
             on_change: Callable[[frozenset[int]], None], on_timeout: Callable[[], None],
             on_superseded: Callable[[], None]) -> Parked:
        older = self.by_device.get(key)
        if older is not None:
            self._finish(older)
            older.on_superseded()
        entry = Parked(key, folders, on_change, on_timeout, on_superseded)
        PARKED_PINGS.inc()
        entry.timer = self.reactor.callLater(seconds, self._expire, entry)
        self.by_device[key] = entry
        tenant = key[0]
        for folder in folders:
            self.by_folder.setdefault((tenant, folder), set()).add(entry)
        return entry

    def cancel(self, entry: Parked) -> None:
        self._finish(entry)

    def _finish(self, entry: Parked) -> None:
        if entry.done:
            return
        entry.done = True
        PARKED_PINGS.dec()
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        if self.by_device.get(entry.key) is entry:
            del self.by_device[entry.key]
        tenant = entry.key[0]
        for folder in entry.folders:
            waiting = self.by_folder.get((tenant, folder))
            if waiting is not None:
                waiting.discard(entry)
                if not waiting:
                    del self.by_folder[(tenant, folder)]

    def _expire(self, entry: Parked) -> None:
        entry.timer = None
        if not entry.done:
            self._finish(entry)
            entry.on_timeout()

    def on_change(self, change: Change) -> None:
        """Bus subscriber: wake every request parked on one of the changed folders."""
        woken: dict[Parked, set[int]] = {}
        if not change.folder_ids:  # tenant-wide (bus re-check, oversized transaction): wake all its waiters
            for entry in list(self.by_device.values()):
                if entry.key[0] == change.tenant_id:
                    woken[entry] = set(entry.folders)
        for folder in change.folder_ids:
            for entry in self.by_folder.get((change.tenant_id, folder), ()):
                woken.setdefault(entry, set()).add(folder)
        for entry, folders in woken.items():
            if entry.done:
                continue
            self._finish(entry)
            self.waking.append((entry, frozenset(folders), change))
        if not self._draining:
            self._answer_batch()

    def _answer_batch(self) -> None:
        """Answer up to `batch` woken requests; schedule the next batch for the next reactor turn (a
        `callLater(0)` made from a timed call runs only after the reactor polled its sockets)."""
        for _ in range(min(self.batch, len(self.waking))):
            entry, folders, change = self.waking.popleft()
            PUSH_SECONDS.labels("eas").observe(change.age())
            try:
                entry.on_change(folders)
            except Exception:
                log.exception("parked request failed to answer", extra={"event": "eas.park_failed"})
        self._draining = bool(self.waking)
        if self._draining:
            self.reactor.callLater(0, self._answer_batch)
