"""Dataclass <-> JSON-compatible dict conversion, driven by the model's type hints.

Fields stored in their own columns are listed by the caller and left out of the JSON document;
everything else (the long tail of OX fields) lives in `objects.data`. Decoding ignores unknown
keys so that an older row never breaks a newer model.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import types
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from oxsync.model.text import xml_safe


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        return tuple(args)
    return tp


def encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return {"dt": value.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Decimal):
        return {"dec": str(value)}
    if isinstance(value, frozenset | set):
        return sorted(encode_value(v) for v in value)
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def clean(raw: Any) -> Any:
    """`raw` (decoded JSON) with characters XML cannot carry replaced in every string: rows written
    before the store checked text on the way in must still render in every dialect."""
    if isinstance(raw, str):
        return xml_safe(raw)
    if isinstance(raw, list):
        return [clean(v) for v in raw]
    if isinstance(raw, dict):
        return {clean(k): clean(v) for k, v in raw.items()}
    return raw


def decode_value(tp: Any, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = xml_safe(raw)
    tp = _strip_optional(tp)
    if isinstance(tp, tuple):  # e.g. datetime | date: the tagged form decides
        if isinstance(raw, dict) and "dt" in raw:
            return datetime.fromisoformat(raw["dt"])
        if isinstance(raw, dict) and "d" in raw:
            return date.fromisoformat(raw["d"])
        return raw
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [decode_value(item_tp, v) for v in raw]
    if origin in (frozenset, set):
        (item_tp,) = typing.get_args(tp)
        return frozenset(decode_value(item_tp, v) for v in raw)
    if origin is dict:
        return clean(raw)
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return tp(raw)
        if tp is datetime:
            return datetime.fromisoformat(raw["dt"])
        if tp is date:
            return date.fromisoformat(raw["d"])
        if tp is bytes:
            return base64.b64decode(raw["b64"])
        if tp is Decimal:
            return Decimal(raw["dec"])
        if dataclasses.is_dataclass(tp):
            return from_dict(tp, raw)
    return raw


def to_dict(obj: Any, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Encode a dataclass, leaving out `exclude` and fields equal to their defaults."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in exclude:
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = encode_value(value)
    return out


def from_dict(cls: type, data: dict[str, Any], **overrides: Any) -> Any:
    """`cls` from its JSON document, `overrides` winning; decodes as `decode_value` does, with each
    field's decoder chosen once per class (a folder's worth of objects is decoded per listing)."""
    return decode_object(cls, data, overrides)


def decode_object(cls: type, data: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """`from_dict` with the overrides as a dict. The work follows the document, not the class: only the
    keys present are decoded (a contact stores about 15 of its ~110 fields), and the object is built
    from a per-class template of its defaults (`_build`) rather than through the generated `__init__`,
    which assigns every field one by one (the two were most of the CPU of a store read, bench/README §u)."""
    decoders = _field_decoders(cls)
    kwargs: dict[str, Any] = {}
    for name, raw in data.items():
        decode = decoders.get(name)
        if decode is not None and name not in overrides:
            kwargs[name] = decode(raw)
    for name, value in overrides.items():
        if name in decoders:
            kwargs[name] = value
    return _build(cls, kwargs)


@cache
def _field_decoders(cls: type) -> dict[str, Callable[[Any], Any]]:
    """Field name -> its decoder, in field order, chosen once per class."""
    hints = _hints(cls)
    return {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls)}


_NO_DEFAULT: Any = object()


class _Template(typing.NamedTuple):
    values: dict[str, Any]
    """Every field in field order: its default, else a factory's or a required field's placeholder."""
    factories: tuple[tuple[str, Callable[[], Any]], ...]
    required: frozenset[str]


@cache
def _template(cls: type) -> _Template | None:
    """What `cls(**kwargs)` does, as data, for a plain dataclass (every field set by `__init__`, no
    `__post_init__`, no `__init__` or `__setattr__` of its own, no slots); None otherwise."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.init or params.frozen or hasattr(cls, "__post_init__") \
            or hasattr(cls, "__slots__") or cls.__setattr__ is not object.__setattr__:
        return None
    init = cls.__dict__.get("__init__")
    if not isinstance(init, types.FunctionType) or init.__code__.co_filename != "<string>":
        return None  # an __init__ written by hand, not the one `dataclass` generated
    values: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            return None
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = _NO_DEFAULT
            factories.append((f.name, f.default_factory))
        else:
            values[f.name] = _NO_DEFAULT
            required.append(f.name)
    return _Template(values, tuple(factories), frozenset(required))


def _build(cls: type, kwargs: dict[str, Any]) -> Any:
    """`cls(**kwargs)` (kwargs: field names only): the same object, attributes in the same order."""
    template = _template(cls)
    if template is None or template.required and not kwargs.keys() >= template.required:
        return cls(**kwargs)  # e.g. a required field missing: the same TypeError as before
    values = template.values.copy()
    values.update(kwargs)
    for name, factory in template.factories:
        if name not in kwargs:
            values[name] = factory()
    obj: Any = object.__new__(cls)
    obj.__dict__ = values
    return obj


@cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """`decode_value(tp, raw)` as a function of `raw`: the branches that depend on `tp` alone are
    taken here, once per type."""
    convert = _converter(_strip_optional(tp))

    def decode(raw: Any) -> Any:
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = xml_safe(raw)
        return raw if convert is None else convert(raw)
    return decode


def _either_date(raw: Any) -> Any:
    if isinstance(raw, dict) and "dt" in raw:
        return datetime.fromisoformat(raw["dt"])
    if isinstance(raw, dict) and "d" in raw:
        return date.fromisoformat(raw["d"])
    return raw


def _converter(tp: Any) -> Callable[[Any], Any] | None:
    """The type-dependent part of `decode_value` (None: the value as it is), in the same order."""
    if isinstance(tp, tuple):  # e.g. datetime | date: the tagged form decides
        return _either_date
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        item = _decoder(item_tp)
        return lambda raw: [item(v) for v in raw]
    if origin in (frozenset, set):
        (item_tp,) = typing.get_args(tp)
        member = _decoder(item_tp)
        return lambda raw: frozenset(member(v) for v in raw)
    if origin is dict:
        return clean
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return tp
        if tp is datetime:
            return lambda raw: datetime.fromisoformat(raw["dt"])
        if tp is date:
            return lambda raw: date.fromisoformat(raw["d"])
        if tp is bytes:
            return lambda raw: base64.b64decode(raw["b64"])
        if tp is Decimal:
            return lambda raw: Decimal(raw["dec"])
        if dataclasses.is_dataclass(tp):
            return lambda raw: from_dict(tp, raw)
    return None


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def loads(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}
