"""Counting the objects left out of a response: one log line and one count per object skipped.

Below both the store and `oxsync.render`: the store skips a stored row it cannot decode, a dialect an
object it cannot render, and both report here (`note_skipped`). The log line names ids, the dialect (or
`store`) and the exception class only: no personal data. The per-dialect counters are read by
`skipped_items_total()` and forwarded to Prometheus by listeners the assembly adds (`add_skip_listener`).

Imports nothing of oxsync, so that any layer may report a skip without an import circle.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

__all__ = ["SkipListener", "add_skip_listener", "note_skipped", "skipped_items_total"]

log = logging.getLogger("oxsync.render")
"""The log records keep the name they always had (`oxsync.render`): alerting on it goes on working."""

SkipListener = Callable[[str], None]
"""Called with the dialect name each time an object is skipped (e.g. to increment a Prometheus counter)."""

_lock = threading.Lock()
_skipped: dict[str, int] = {}
_listeners: list[SkipListener] = []


def note_skipped(dialect: str, exc: BaseException, *, object_id: object = None, folder_id: object = None) -> None:
    """Log and count one skipped object (for loops that cannot use `render.render_one` directly), called
    from their `except` block; an exception that fails the whole request (`whole_request`, e.g. the work
    budget) is raised again instead, so such loops need no second `except` for it."""
    if getattr(exc, "whole_request", False):
        raise exc
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"
    log.warning("skipped an object that cannot be rendered: dialect=%s folder=%s object=%s error=%s at %s",
                dialect, folder_id, object_id, type(exc).__name__, where,
                extra={"event": "render.skipped", "dialect": dialect, "folder": folder_id, "object": object_id,
                       "error": type(exc).__name__})
    with _lock:
        _skipped[dialect] = _skipped.get(dialect, 0) + 1
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(dialect)
        except Exception:  # noqa: BLE001 - counting must never break serving
            log.exception("skip listener failed")


def skipped_items_total() -> dict[str, int]:
    """Objects left out of responses since start, by dialect (`eas`, `ox`, `dav`, `freebusy`, `export`...)."""
    with _lock:
        return dict(_skipped)


def add_skip_listener(listener: SkipListener) -> None:
    with _lock:
        _listeners.append(listener)
