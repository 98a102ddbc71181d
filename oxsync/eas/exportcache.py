"""Objects loaded when a sync pass was planned, kept for the pass's later windows.

A pass whose filter reads the objects' data (FilterType 8 on tasks, a date filter on events) loads
every changed object once when it is planned; this cache keeps them for the later windows, which
otherwise reload their items in one bulk read each. Other passes larger than a window are planned
from versions (nothing decoded) and put nothing here. An entry is used only while
nothing changed in the folder since the pass's revision (checked with `folder_revision`, two
queries), so a later edit, a private flag or a permission change always wins: the window then
loads from the store. Bounded in objects overall (least recently used passes go first); shared by
the store threads, hence the lock. Per process: another node simply loads from the store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

Key = tuple[int, int, str, int]


class ExportCache:
    def __init__(self, max_objects: int) -> None:
        self.max_objects = max_objects
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, tuple[int, dict[int, Any]]] = OrderedDict()
        self._count = 0

    def put(self, key: Key, revision: int, objects: dict[int, Any]) -> None:
        if self.max_objects <= 0 or len(objects) > self.max_objects:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._count -= len(old[1])
            self._entries[key] = (revision, objects)
            self._count += len(objects)
            while self._count > self.max_objects and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._count -= len(dropped)

    def get(self, key: Key, revision: int) -> dict[int, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != revision:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def drop(self, key: Key) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._count -= len(old[1])
