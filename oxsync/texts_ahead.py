"""Served texts rendered ahead of the first read (assembly: the DAV renderer over the store's writes).

A CalDAV/CardDAV read serves each object's text from the store's per-viewer cache (`object_texts`,
`dav/texts.py`) when one exists at the object's current version, and renders it (about 1 ms of CPU per
event) otherwise. A DAV PUT stores its own; every other write (ActiveSync, the OX dialect, meeting
replies and the copies placed in attendees' folders, `oxsync import`, `session.create_objects` loads,
the simulator's seed) left none, so the first read after it cost several times a later one. Here the
owner's text of each private folder where such an object changed is rendered and stored ahead:

- `rendering_after(store)`: loads (import, bench loaders, seeds) render what they wrote once it is
  committed, on the calling thread, `batch` objects per read transaction and one short write each.
- `TextsAhead`: the server hears every commit (`Store.add_object_listener`, on the committing thread,
  nothing but bookkeeping there), gathers the objects for `[dav] texts_ahead_delay_seconds` and renders
  them `[dav] texts_ahead_batch` at a time in the store pool's background lane, off every request's
  path: a write answers first and adds no statement; at most `[dav] texts_ahead_max_pending` objects
  wait, the others are rendered by their first read as before.

Nothing served depends on it: a text is served only at the version it was rendered from (a write
meanwhile makes it stale, never wrong), and a text rendered here is the one that read would render.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from twisted.application.service import Service

from oxsync.config import Settings
from oxsync.dav.warm import missing_texts
from oxsync.store.api import Store
from oxsync.store.budget import work_budget

log = logging.getLogger("oxsync.texts_ahead")


def render_batch(store: Store, settings: Settings, tenant_id: int, viewer_id: int, folder_id: int,
                 object_ids: Iterable[int]) -> int:
    """Render and store `viewer_id`'s missing texts of these objects of `folder_id`: one read transaction
    (the rendering), one short write; returns how many were rendered."""
    with work_budget(settings.limits), store.session(tenant_id, viewer_id) as session:
        entries = missing_texts(session, settings, folder_id, object_ids)
    if entries:
        with store.session(tenant_id, viewer_id, write=True) as session:
            session.remember_texts(entries)
    return len(entries)


def render_changes(store: Store, settings: Settings, tenant_id: int, changed: Mapping[int, Iterable[int]],
                   batch: int | None = None) -> int:
    """The owners' missing texts of `changed` (folder id -> object ids), `batch` objects per unit."""
    size = max(1, batch or settings.dav.texts_ahead_batch)
    owners = store.folder_owners(tenant_id, changed)
    rendered = 0
    for folder_id, ids in changed.items():
        owner = owners.get(folder_id)
        if owner is None:
            continue
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), size):
            rendered += render_batch(store, settings, tenant_id, owner, folder_id, wanted[start:start + size])
    return rendered


class Gathered:
    """Objects heard from commits, by (tenant, folder); thread-safe (commits run on any thread)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.dropped = 0
        self._lock = threading.Lock()
        self._objects: dict[tuple[int, int], set[int]] = {}
        self._count = 0

    def add(self, tenant_id: int, changed: Mapping[int, Iterable[int]]) -> bool:
        """Remember them (up to `limit` waiting); True if nothing was waiting before."""
        with self._lock:
            was_empty = self._count == 0
            for folder_id, ids in changed.items():
                held = self._objects.setdefault((tenant_id, folder_id), set())
                for object_id in ids:
                    if object_id in held:
                        continue
                    if self.limit is not None and self._count >= self.limit:
                        self.dropped += 1
                        continue
                    held.add(object_id)
                    self._count += 1
            return was_empty and self._count > 0

    def take(self, most: int) -> tuple[int, int, list[int]] | None:
        """Up to `most` objects of one (tenant, folder), removed from what waits; None if nothing does."""
        with self._lock:
            for key, held in self._objects.items():
                picked = sorted(held)[:most]
                held.difference_update(picked)
                if not held:
                    del self._objects[key]
                self._count -= len(picked)
                return key[0], key[1], picked
            return None

    def __len__(self) -> int:
        with self._lock:
            return self._count


@contextmanager
def rendering_after(store: Store, settings: Settings | None = None) -> Iterator[Gathered]:
    """Within: every object a commit on `store` changes is noted; on leaving without an error, the
    owners' texts of those still there are rendered and stored (a load's texts, before its first read)."""
    gathered = Gathered()

    def heard(tenant_id: int, changed: Mapping[int, frozenset[int]]) -> None:
        gathered.add(tenant_id, changed)
    remove = store.add_object_listener(heard)
    try:
        yield gathered
    finally:
        remove()
    settings = settings or store.settings
    while (found := gathered.take(max(1, settings.dav.texts_ahead_batch))) is not None:
        tenant_id, folder_id, ids = found
        render_changes(store, settings, tenant_id, {folder_id: ids})


class TextsAhead(Service):
    """The server's: objects committed without their served text get it rendered in the store pool's
    background lane, gathered for `[dav] texts_ahead_delay_seconds`, one unit of at most
    `[dav] texts_ahead_batch` objects at a time (module docstring)."""

    def __init__(self, store: Store, async_store: Any, reactor: Any, settings: Settings) -> None:
        self.store, self.async_store, self.reactor, self.settings = store, async_store, reactor, settings
        self.gathered = Gathered(max(0, settings.dav.texts_ahead_max_pending))
        self.rendered = 0
        """Texts rendered so far (tests and the bench read it)."""
        self.units = 0
        """Units of work submitted so far."""
        self._active = False
        """A unit is scheduled or running (reactor thread only)."""
        self._remove: Callable[[], None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing waits and no unit is scheduled or running."""
        return not self._active and len(self.gathered) == 0

    def startService(self) -> None:
        super().startService()
        if self.settings.dav.texts_ahead_max_pending > 0:
            self._remove = self.store.add_object_listener(self._heard)

    def stopService(self) -> Any:
        if self._remove is not None:
            self._remove()
            self._remove = None
        return super().stopService()

    def _heard(self, tenant_id: int, changed: Mapping[int, frozenset[int]]) -> None:
        """Committing thread: note the objects; the first after a quiet spell schedules a unit."""
        if self.gathered.add(tenant_id, changed):
            self.reactor.callFromThread(self._wake)

    def _wake(self) -> None:
        if not self._active:
            self._active = True
            self.reactor.callLater(self.settings.dav.texts_ahead_delay_seconds, self._next)

    def _next(self) -> None:
        found = self.gathered.take(max(1, self.settings.dav.texts_ahead_batch))
        if found is None or not self.running:
            self._active = False
            return
        tenant_id, folder_id, ids = found
        self.units += 1
        unit = self.async_store.run_background(render_changes, self.store, self.settings, tenant_id, {folder_id: ids})
        unit.addCallbacks(self._done, self._failed)

    def _done(self, rendered: int) -> None:
        self.rendered += rendered
        self._next()

    def _failed(self, failure: Any) -> None:
        log.warning("served texts not rendered ahead: %s", failure.getErrorMessage())
        self._next()
