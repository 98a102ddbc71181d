"""Served texts of one request, read from and written to the store's per-viewer cache in bulk.

`object_text` asks `TextCache.get` before rendering and `put`s what it rendered; report handlers call
`prefetch` once for all their resources (one store read). A text is reused only for the same resource
version: its newest change, the ids of its members and RENDER_GENERATION (bump it whenever the
iCalendar/vCard output of the same object changes, so cached texts from before are not served).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from oxsync.store.bulk import ObjectVersion

RENDER_GENERATION = "1"


def version_of(res: Any) -> str:
    members = sorted(int(m.object_id) for m in (res.master, *res.exceptions))
    digest = zlib.crc32(",".join(map(str, members)).encode())
    return f"{RENDER_GENERATION}:{res.last_modified}:{len(members)}:{digest:08x}"


class TextCache:
    """Per request; not thread-safe (one request runs on one store thread)."""

    def __init__(self, session: Any, hydrate: Callable[[list[Any]], None] | None = None) -> None:
        self.session = session
        self._hydrate = hydrate
        self._known: dict[tuple[int, str], tuple[str, str]] = {}
        self._asked: set[int] = set()
        self._fresh: list[tuple[int, str, str, str]] = []
        self._light: list[Any] = []
        """Resources of this request still made of `ObjectVersion`s."""

    def prefetch(self, resources: list[Any]) -> None:
        self._light.extend(r for r in resources if isinstance(r.master, ObjectVersion))
        wanted = [r.object_id for r in resources if r.object_id not in self._asked]
        if wanted:
            self._asked.update(wanted)
            self._known.update(self.session.cached_texts(wanted))

    def get(self, res: Any, variant: str) -> str | None:
        if res.object_id not in self._asked:
            self.prefetch([res])
        found = self._known.get((res.object_id, variant))
        return found[1] if found is not None and found[0] == version_of(res) else None

    def hydrate(self, res: Any, variant: str) -> None:
        """`res` must be rendered: load the objects of every light resource of this request whose text
        in `variant` is not cached either (one bulk read), `res` included."""
        assert self._hydrate is not None, "light resources need a hydrating request"
        missing = [r for r in self._light if r is res or self.get(r, variant) is None]
        gone = {id(r) for r in missing}
        self._light = [r for r in self._light if id(r) not in gone]
        self._hydrate(missing)

    def put(self, res: Any, variant: str, text: str) -> None:
        version = version_of(res)
        self._known[(res.object_id, variant)] = (version, text)
        self._fresh.append((res.object_id, variant, version, text))

    def flush(self) -> None:
        """Hand what was rendered to the store (written now or after the read transaction)."""
        fresh, self._fresh = self._fresh, []
        if fresh:
            self.session.remember_texts(fresh)
