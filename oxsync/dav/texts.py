"""Served texts of one request, read from and written to the store's per-viewer cache in bulk.

`object_text` asks `TextCache.get` before rendering and `put`s what it rendered; report handlers call
`prefetch` once for all their resources (one store read). A text is reused only for the same resource
version: its newest change, the ids of its members and RENDER_GENERATION (bump it whenever the
iCalendar/vCard output of the same object changes, so cached texts from before are not served).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

from oxsync.store.bulk import ObjectVersion

RENDER_GENERATION = "1"


def version_of(res: Any) -> str:
    members = sorted(int(m.object_id) for m in (res.master, *res.exceptions))
    digest = zlib.crc32(",".join(map(str, members)).encode())
    return f"{RENDER_GENERATION}:{res.last_modified}:{len(members)}:{digest:08x}"


WINDOW = 500
"""Resources whose cached texts (and, if not cached, objects) are read at a time."""
KEEP = 2000
"""Resources whose texts are held at most: beyond, the earliest read are let go. A report over a large
folder holds a few windows of texts and objects, not the folder's; a multiget (at most
`max_multiget_hrefs`) keeps all of its own whatever order it asks them in."""


class TextCache:
    """Per request; not thread-safe (one request runs on one store thread).

    `prefetch` only registers resources, in the order the request will describe them; the first `get`
    of a resource not yet read reads the cached texts of it and of the next registered ones, WINDOW at
    a time (one statement), and lets the earliest go once more than KEEP are held. Reading far out of
    order stays correct (a text let go is read again), it only costs statements."""

    def __init__(self, session: Any, hydrate: Callable[[list[Any]], None] | None = None) -> None:
        self.session = session
        self._hydrate = hydrate
        self._known: dict[tuple[int, str], tuple[str, str]] = {}
        self._held: dict[int, list[tuple[int, str]]] = {}
        """Object ids read (in reading order) -> their keys in `_known`."""
        self._batch: list[int] = []
        """The ids of the last window read."""
        self._pending: deque[int] = deque()
        self._fresh: list[tuple[int, str, str, str]] = []
        self._light: dict[int, Any] = {}
        """Registered resources still made of `ObjectVersion`s, by object id."""

    def prefetch(self, resources: list[Any]) -> None:
        for res in resources:
            if isinstance(res.master, ObjectVersion):
                self._light[res.object_id] = res
            if res.object_id not in self._held:
                self._pending.append(res.object_id)

    def _read_window(self, first: int) -> None:
        ids = [first]
        while self._pending and len(ids) < WINDOW:
            candidate = self._pending.popleft()
            if candidate != first and candidate not in self._held:
                ids.append(candidate)
        found = self.session.cached_texts(ids)
        for object_id in ids:
            self._held[object_id] = []
        for key, value in found.items():
            self._known.setdefault(key, value)
            self._held[key[0]].append(key)
        self._batch = ids
        while len(self._held) > max(KEEP, WINDOW):  # let the earliest read go
            oldest = next(iter(self._held))
            for key in self._held.pop(oldest):
                self._known.pop(key, None)
            self._light.pop(oldest, None)  # read again (and hydrated with itself) if asked again

    def get(self, res: Any, variant: str) -> str | None:
        if res.object_id not in self._held:
            self._read_window(res.object_id)
        found = self._known.get((res.object_id, variant))
        return found[1] if found is not None and found[0] == version_of(res) else None

    def hydrate(self, res: Any, variant: str) -> None:
        """`res` must be rendered: load the objects of the light resources of the last window read whose
        text in `variant` is not cached either (one bulk read), `res` included."""
        assert self._hydrate is not None, "light resources need a hydrating request"
        if res.object_id not in self._held:
            self._read_window(res.object_id)
        batch = self._batch if res.object_id in self._batch else [res.object_id]
        missing = [res] + [r for i in batch if (r := self._light.get(i)) is not None
                           and r is not res and self.get(r, variant) is None]
        for r in missing:
            self._light.pop(r.object_id, None)
        self._hydrate(missing)

    def put(self, res: Any, variant: str, text: str) -> None:
        version = version_of(res)
        key = (res.object_id, variant)
        self._known[key] = (version, text)
        self._held.setdefault(res.object_id, []).append(key)
        self._fresh.append((res.object_id, variant, version, text))

    def take_fresh(self) -> list[tuple[int, str, str, str]]:
        """(object id, variant, version, text) rendered since the last flush, handed over once."""
        fresh, self._fresh = self._fresh, []
        return fresh

    def flush(self) -> None:
        """Hand what was rendered to the store (written now or after the read transaction)."""
        fresh = self.take_fresh()
        if fresh:
            self.session.remember_texts(fresh)
