"""The store's one input check: every object, folder and attachment any dialect or the importer writes
passes here, so that whatever is stored can be rendered by every dialect (docs/limits.md).

- text: characters XML 1.0 cannot carry are replaced by U+FFFD or refused (`[limits] invalid_text_policy`);
- dates: inside `[limits] min_year..max_year`, both as given and in UTC;
- numbers: ids, sizes and millisecond stamps within a signed 64-bit column (`max_wide_number`), every
  other model number within `max_small_number`; floats and decimals finite.

Out-of-range values raise `InvalidInput(field, reason)`; nothing is written.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from oxsync.config import LimitSettings
from oxsync.model.text import has_unsafe_chars, xml_safe
from oxsync.store.errors import InvalidInput

WIDE_NUMBERS = frozenset({
    "object_id", "last_modified", "recurrence_id", "contact_id",
    "participants.alarm",  # a task participant's own reminder is a millisecond stamp
})
"""Model fields (by name, or by path for nested ones) kept in 64-bit columns (object ids, millisecond
stamps); every other integer (user, group, folder ids: 32-bit columns; counts) is a small number."""

OBJECT_TEXT_LENGTHS = {
    "uid": 255, "resource_name": 255, "participants.email": 320, "participants.display_name": 255,
    "distribution_list.email": 320, "distribution_list.display_name": 255,
}
"""Object texts stored in bounded columns (store/schema.py): longer ones are refused, not cut (an id
or address cut short would silently name something else)."""
FOLDER_TEXT_LENGTHS = {"title": 255, "color": 16}


def check_object(obj: Any, limits: LimitSettings, lengths: dict[str, int] | None = None) -> None:
    """Validate (and, under the `replace` policy, clean in place) a model dataclass and what it holds;
    `lengths` bounds texts by field path (default: OBJECT_TEXT_LENGTHS)."""
    _walk(obj, type(obj).__name__.lower(), limits, 0, OBJECT_TEXT_LENGTHS if lengths is None else lengths)


def check_text(value: str, field: str, limits: LimitSettings) -> str:
    """`value` cleaned under the text policy (raises under `reject`)."""
    if not has_unsafe_chars(value):
        return value
    if limits.invalid_text_policy == "reject":
        raise InvalidInput(field, "contains characters XML cannot carry (control characters)")
    return xml_safe(value)


def check_id(value: int | None, field: str, limits: LimitSettings | None = None) -> None:
    """An id or stamp a client sent: within a signed 64-bit column (what the database can compare)."""
    if value is None:
        return
    bound = limits.max_wide_number if limits is not None else 2**63 - 1
    if not -bound <= value <= bound:
        raise InvalidInput(field, "number out of range")


def check_date(value: date, field: str, limits: LimitSettings) -> None:
    years = [value.year]
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            years.append(value.astimezone(UTC).year)
        except (OverflowError, ValueError):
            raise InvalidInput(field, "date out of range") from None
    if not all(limits.min_year <= y <= limits.max_year for y in years):
        raise InvalidInput(field, f"date out of the supported range (years {limits.min_year}..{limits.max_year})")


_PLAIN = (bool, Enum, bytes)


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _walk(value: Any, field: str, limits: LimitSettings, depth: int, lengths: dict[str, int]) -> Any:
    """The checked (possibly cleaned) value; containers and dataclasses are updated in place."""
    kind: type = type(value)
    if kind is str:  # most fields: the fast path first
        if not value:
            return value
        bound = lengths.get(field)
        if bound is not None and len(value) > bound:
            raise InvalidInput(field, f"longer than {bound} characters")
        return check_text(value, field, limits)
    if value is None or kind is bool or isinstance(value, _PLAIN):
        return value
    if isinstance(value, int):
        wide = field in WIDE_NUMBERS or field.rsplit(".", 1)[-1] in WIDE_NUMBERS
        bound = limits.max_wide_number if wide else limits.max_small_number
        if not -bound <= value <= bound:
            raise InvalidInput(field, "number out of range")
        return value
    if isinstance(value, str):  # a str subclass
        return check_text(value, field, limits)
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > limits.max_wide_number:
            raise InvalidInput(field, "number out of range")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) > limits.max_wide_number:
            raise InvalidInput(field, "number out of range")
        return value
    if isinstance(value, date):
        check_date(value, field, limits)
        return value
    if depth > 8:
        raise InvalidInput(field, "nested too deeply")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for name in _field_names(kind):
            current = getattr(value, name)
            checked = _walk(current, f"{field}.{name}" if depth else name, limits, depth + 1, lengths)
            if checked is not current:
                setattr(value, name, checked)
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            checked = _walk(item, field, limits, depth + 1, lengths)
            if checked is not item:
                value[i] = checked
        return value
    if isinstance(value, tuple | frozenset | set):
        items = [_walk(item, field, limits, depth + 1, lengths) for item in value]
        return type(value)(items) if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        for key in list(value):
            clean_key = check_text(key, field, limits) if isinstance(key, str) else key
            item = value.pop(key) if clean_key is not key else value[key]
            value[clean_key] = _walk(item, f"{field}.{clean_key}" if isinstance(clean_key, str) else field,
                                     limits, depth + 1, lengths)
        return value
    return value
