"""Data-driven mapping between `ox:` elements and model fields.

One table per module (fields_contact, fields_calendar, fields_task) lists `Field(xml, attr, conv)`;
`write_fields` and `read_fields` walk a table, so adding a field is one line. What must hold: an
empty element clears the field (reference §1.3), an absent one leaves it unchanged, and every value
written can be read back to the same model value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from oxsync.model.timeutil import date_from_ms, datetime_from_ms, to_ms
from oxsync.ox.errors import INVALID_INPUT, OxFailure
from oxsync.ox.wire import el, text


@dataclass(frozen=True)
class Conv:
    """How one kind of value travels: `out` model -> text (None = omit), `inp` text -> model."""

    out: Callable[[Any], str | None]
    inp: Callable[[str], Any]


def _int_in(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise OxFailure(INVALID_INPUT, f"not a number: {value[:40]!r}") from None
    if abs(number) > 2**63 - 1:  # the store bounds each field further (oxsync.store.validate)
        raise OxFailure(INVALID_INPUT, f"number out of range: {value[:40]!r}")
    return number


def _ms_in(value: str) -> int | None:
    return _int_in(value)


def _date_in(value: str) -> date | None:
    ms = _ms_in(value)
    return None if ms is None else _from_ms(date_from_ms, ms)


def _datetime_in(value: str) -> datetime | None:
    ms = _ms_in(value)
    return None if ms is None else _from_ms(datetime_from_ms, ms)


def _from_ms(convert: Callable[[int], Any], ms: int) -> Any:
    """A date beyond what Python holds is invalid input ([1100]); the store checks the supported range."""
    try:
        return convert(ms)
    except (ValueError, OverflowError, OSError):
        raise OxFailure(INVALID_INPUT, f"date out of range: {ms}") from None


def _decimal_in(value: str) -> Decimal | None:
    value = value.strip()
    if not value:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise OxFailure(INVALID_INPUT, f"not a decimal: {value[:40]!r}") from None


def _ms_out(value: date | datetime | None) -> str | None:
    ms = to_ms(value)
    return None if ms is None else str(ms)


def bool_in(value: str) -> bool:
    return value.strip().lower() == "true"


def bool_out(value: bool) -> str:
    return "true" if value else "false"


STR = Conv(lambda v: v or None, lambda t: t)
INT = Conv(lambda v: None if v is None else str(int(v)), _int_in)
INT0 = Conv(lambda v: None if v is None else str(int(v)), lambda t: _int_in(t) or 0)
BOOL = Conv(bool_out, bool_in)
DATE = Conv(_ms_out, _date_in)
DATETIME = Conv(_ms_out, _datetime_in)
DECIMAL = Conv(lambda v: None if v is None else str(v), _decimal_in)


@dataclass(frozen=True)
class Field:
    xml: str
    attr: str
    conv: Conv = STR
    aliases: tuple[str, ...] = ()
    """Other element names accepted on input (and also written, for old and new clients)."""
    write_aliases: bool = False


def write_fields(obj: object, table: Iterable[Field]) -> str:
    parts = []
    for f in table:
        value = f.conv.out(getattr(obj, f.attr))
        if value is None:
            continue
        parts.append(el(f.xml, value))
        if f.write_aliases:
            parts.extend(el(a, value) for a in f.aliases)
    return "".join(parts)


def read_fields(obj: object, table: Iterable[Field], given: dict[str, etree._Element]) -> set[str]:
    """Apply every present element of `table` to `obj`; returns the model attributes set."""
    touched = set()
    for f in table:
        element = next((given[n] for n in (f.xml, *f.aliases) if n in given), None)
        if element is None:
            continue
        value = f.conv.inp(text(element))
        if value is None and f.conv is STR:
            value = ""
        setattr(obj, f.attr, value)
        touched.add(f.attr)
    return touched


def common_fields(*, with_color: bool) -> tuple[Field, ...]:
    """Fields of every folder child (reference §2.1) that a client may also send."""
    table = [Field("categories", "categories"), Field("private_flag", "private_flag", BOOL)]
    if with_color:
        table.append(Field("color_label", "color_label", INT0))
    return tuple(table)


def server_fields(obj: Any, folder_id: int | None) -> str:
    """Server-maintained fields written for every object."""
    return "".join((
        el("object_id", obj.object_id), el("folder_id", folder_id if folder_id is not None else obj.folder_id),
        el("created_by", obj.created_by), el("modified_by", obj.modified_by),
        el("creation_time", to_ms(obj.creation_time)), el("last_modified", obj.last_modified),
    ))


def attachments_xml(obj: Any) -> str:
    from urllib.parse import quote

    from oxsync.ox.wire import attrs

    if not obj.attachments:
        return ""
    items = "".join(
        f"<ox:attachment{attrs([('id', a.id), ('last_modified', to_ms(a.creation_time)), ('mimetype', a.mimetype), ('rtf_flag', bool_out(a.rtf_flag))])}>"
        f"{quote(a.filename)}</ox:attachment>"
        for a in obj.attachments)
    return f"<ox:attachments>{items}</ox:attachments>"
