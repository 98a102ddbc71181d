"""Per-item isolation on output: one object that cannot be rendered never fails a whole response.

Every dialect's output loop renders its objects through `render_one` / `render_each`: on any exception
the object is left out, ONE log line names it (ids, dialect and exception class only: no personal data)
and a per-dialect counter grows (`skipped_items_total()`, exported by the metrics module through
`add_skip_listener`). The render function must build the object's output on its own (a string, an
element not yet attached, a byte string) so that a failure half-way leaves nothing behind.

This module sits below the dialects and imports none of them.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import TypeVar

from oxsync.model.text import xml_safe
from oxsync.store.budget import check_time

__all__ = ["add_skip_listener", "render_each", "render_one", "skipped_items_total", "xml_safe"]

log = logging.getLogger("oxsync.render")

O = TypeVar("O")  # noqa: E741 - the rendered object
T = TypeVar("T")

SkipListener = Callable[[str], None]
"""Called with the dialect name each time an object is skipped (e.g. to increment a Prometheus counter)."""

_lock = threading.Lock()
_skipped: dict[str, int] = {}
_listeners: list[SkipListener] = []


def render_one(dialect: str, obj: O, render: Callable[[O], T], *, folder_id: int | None = None,
               object_id: int | None = None) -> T | None:
    """`render(obj)`, or None (logged once and counted) if it raises.

    `object_id`/`folder_id` default to the object's own `object_id`/`folder_id` attributes.
    """
    try:
        check_time()  # every dialect's output loop passes here: no response renders past its time budget
        return render(obj)
    except Exception as exc:  # noqa: BLE001 - isolating any failure of one object is the point
        if getattr(exc, "whole_request", False):  # e.g. the request's work budget: not this object's fault
            raise
        note_skipped(dialect, exc, object_id=_ident(obj, "object_id", object_id),
                     folder_id=_ident(obj, "folder_id", folder_id))
        return None


def render_each(dialect: str, objs: Iterable[O], render: Callable[[O], T], *,
                folder_id: int | None = None) -> list[T]:
    """The rendering of every object of `objs` that renders, in order; the others are skipped."""
    out: list[T] = []
    for obj in objs:
        rendered = render_one(dialect, obj, render, folder_id=folder_id)
        if rendered is not None:
            out.append(rendered)
    return out


def note_skipped(dialect: str, exc: BaseException, *, object_id: object = None, folder_id: object = None) -> None:
    """Log and count one skipped object (for loops that cannot use `render_one` directly), called from
    their `except` block; an exception that fails the whole request (`whole_request`, e.g. the work
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


def _ident(obj: object, name: str, given: int | None) -> object:
    if given is not None:
        return given
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a broken object must not break its own log line
        return None
