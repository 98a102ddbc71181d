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

__all__ = ["comparable", "field_names"]


_FIELD_NAMES: dict[tuple[type[Any], frozenset[str]], tuple[str, ...]] = {}


def field_names(cls: type[Any], left_out: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The field names of dataclass `cls` in order, but those `left_out`: taken once per type, since
    `dataclasses.fields` builds them anew on every call and a PUT compares the same few types each time."""
    key = (cls, left_out)
    found = _FIELD_NAMES.get(key)
    if found is None:
        found = _FIELD_NAMES[key] = tuple(f.name for f in fields(cls) if f.name not in left_out)
    return found


_NAMES_OF_TYPE: dict[type, tuple[str, ...] | None] = {}
"""The type of a value `comparable` has met -> its field names if it is a dataclass, else None: asked
once per type (`is_dataclass`, `fields`), not once per value (a class object is asked each time, as
whether it is a dataclass depends on the class, not on its type)."""


def _names_of(value: Any) -> tuple[str, ...] | None:
    if not is_dataclass(value):
        return None
    return tuple(f.name for f in fields(value)) if isinstance(value, type) else field_names(type(value))


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
    if kind in _NAMES_OF_TYPE:
        names = _NAMES_OF_TYPE[kind]
    else:
        names = _names_of(value)
        if not isinstance(value, type):
            _NAMES_OF_TYPE[kind] = names
    if names is not None:
        names = (only or {}).get(kind) or names
        return (kind, *(comparable(getattr(value, name), only) for name in names))
    return kind, repr(value)  # dates, times (with their zone and fold), enums, decimals: exact
