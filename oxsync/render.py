"""Per-item isolation on output: one object that cannot be rendered never fails a whole response.

Every dialect's output loop renders its objects through `render_one` / `render_each`: on any exception
the object is left out, ONE log line names it and a per-dialect counter grows (`oxsync.skips`, below both
this module and the store, which reports the rows it cannot decode there too; its names are re-exported
here). The render function must build the object's output on its own (a string, an element not yet
attached, a byte string) so that a failure half-way leaves nothing behind.

This module sits below the dialects and imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from oxsync.model.text import xml_safe
from oxsync.skips import SkipListener, add_skip_listener, note_skipped, skipped_items_total
from oxsync.store.budget import check_time

__all__ = ["SkipListener", "add_skip_listener", "note_skipped", "render_each", "render_one", "skipped_items_total",
           "xml_safe"]

O = TypeVar("O")  # noqa: E741 - the rendered object
T = TypeVar("T")


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


def _ident(obj: object, name: str, given: int | None) -> object:
    if given is not None:
        return given
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a broken object must not break its own log line
        return None
