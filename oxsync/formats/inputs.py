"""Model values as comparable values: two objects whose values compare equal here render the same text.

Why: a DAV PUT renders the client's body (the kept baseline) before the write; the object read back
after it renders the same when the store changed nothing the rendering reads, and need not be rendered
again (dav.layout.written_text). `==` on the model is not enough for that: aware datetimes compare by
instant (not zone), 1 == True, Decimal("1.0") == Decimal("1.00"), a str subclass equals its text; here
values of another type or spelling differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

__all__ = ["comparable"]


def comparable(value: Any, only: Mapping[type, tuple[str, ...]] | None = None) -> Any:
    """`value` as a hashable-free, exactly comparable value; `only`: the fields compared of a dataclass
    type (the others: all of its fields)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int or kind is bool or value is None:
        return kind, value
    if kind is list or kind is tuple:
        return (kind, *(comparable(v, only) for v in value))
    if kind is dict:
        return (kind, *((comparable(k, only), comparable(v, only)) for k, v in value.items()))
    if is_dataclass(value):
        names = (only or {}).get(kind) or tuple(f.name for f in fields(value))
        return (kind, *(comparable(getattr(value, name), only) for name in names))
    return kind, repr(value)  # dates, times (with their zone and fold), enums, decimals: exact
