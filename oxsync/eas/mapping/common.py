"""The machinery behind the per-class tables: value converters, `Field` rows and `Special` rows.

A table is a tuple of rows. A `Field` maps one EAS element to one model attribute through a
converter, within a protocol version range. A `Special` row handles a structured element
(Body, Categories, Recurrence, Attendees...) with two functions. `ClassMapping` walks the table
both ways; on input it applies the ghosting rule of `Supported` (MS-ASCMD 2.2.3.168): an element
absent from a Change is cleared if the client declared it supported (or declared nothing), and kept
otherwise.
"""

from __future__ import annotations

import html
import operator
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from itertools import groupby
from typing import Any

from oxsync.eas.wbxml import E, Element
from oxsync.eas.wbxml_items import ItemWriter, TextTag, text_tag
from oxsync.model.text import xml_safe

# ------------------------------------------------------------------ context


@dataclass
class MapContext:
    """What a conversion needs besides the object: version, body preference, directory lookups."""

    version: float
    user_id: int = 0
    body_type: int = 1
    truncation: int | None = None
    all_or_none: bool = False
    preview: int = 0
    user_address: Callable[[int], tuple[str, str]] | None = None
    """user id -> (display name, e-mail) for participants."""
    resolve: Callable[[str], tuple[str, int] | None] | None = None
    """address -> ("user"|"resource", id) for incoming attendees."""
    max_picture_bytes: int = 5 * 1024 * 1024
    data: Element | None = None
    """The whole ApplicationData being read (rows that need two elements look at it)."""
    exceptions_of: Callable[[Any], dict[Any, Any]] | None = None
    """series -> {original date: change-exception Appointment} (the OX model keeps them apart)."""
    exceptions: list[tuple[Any, Element]] = field(default_factory=list)
    """Changed occurrences read from a Calendar Change (<= 14.1), applied after the master is saved."""


# ------------------------------------------------------------------ converters


class InvalidValue(ValueError):
    """A client value cannot be converted (answered with Sync status 6 for that item)."""


def parse_datetime(text: str) -> datetime:
    """Compact `YYYYMMDDTHHMMSSZ` or extended `YYYY-MM-DDTHH:MM:SS(.sss)Z`, always UTC."""
    value = text.strip().rstrip("\x00")
    for pattern in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%S",
                    "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise InvalidValue(f"invalid date-time {text!r}")


def compact(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def extended(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Conv:
    out: Callable[[Any], str | None]
    into: Callable[[str], Any]
    empty: Any = ""


def _str_out(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _date_in(text: str) -> date:
    moment = parse_datetime(text)
    # Devices send local midnight as UTC: 22:00 the day before is the next day's date.
    return (moment + timedelta(hours=12)).date() if moment.hour >= 12 else moment.date()


def _email_in(text: str) -> str:
    name, address = parseaddr(text)
    return address if "@" in address else text.strip()


STR = Conv(_str_out, lambda t: t)
EMAIL = Conv(_str_out, _email_in)
BIRTHDAY = Conv(lambda d: f"{d.isoformat()}T00:00:00.000Z" if d else None, _date_in, None)
DATETIME_EXT = Conv(lambda d: extended(d) if d else None, parse_datetime, None)
BOOL = Conv(lambda b: "1" if b else "0", lambda t: t.strip() == "1", False)


def int_conv(low: int, high: int, empty: Any = None) -> Conv:
    def into(text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError as exc:
            raise InvalidValue(f"not an integer: {text!r}") from exc
        if not low <= number <= high:
            raise InvalidValue(f"{number} outside {low}..{high}")
        return number

    return Conv(lambda v: str(int(v)) if v is not None else None, into, empty)


def enum_conv(pairs: dict[Any, str], default_in: Any, empty: Any) -> Conv:
    """Model value <-> EAS code through a dict (unknown codes map to `default_in`)."""
    back = {code: value for value, code in pairs.items()}
    return Conv(lambda v: pairs.get(v), lambda t: back.get(t.strip(), default_in), empty)


# ------------------------------------------------------------------ rows


@dataclass(frozen=True)
class Field:
    tag: str
    attr: str
    conv: Conv = STR
    since: float = 0.0
    until: float = 99.0
    export: bool = True
    """False for input-only aliases (e.g. Tasks UtcDueDate beside DueDate)."""

    def applies(self, version: float) -> bool:
        return self.since <= version <= self.until


@dataclass(frozen=True)
class Special:
    tags: tuple[str, ...]
    out: Callable[[Any, MapContext], list[Element]]
    into: Callable[[Any, Element | None, MapContext, bool], None]
    """into(obj, the element of tags[0] or None, ctx, clear): apply, or reset when absent and `clear`."""
    since: float = 0.0
    until: float = 99.0
    write: Callable[[ItemWriter, Any, MapContext], None] | None = None
    """What `out` gives, written straight to WBXML (`ClassMapping.to_wbxml`); None: `out`'s elements encoded."""

    def applies(self, version: float) -> bool:
        return self.since <= version <= self.until


Row = Field | Special
_ExportStep = tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]], Callable[[Any], str | None] | None,
                    Callable[[Any, "MapContext"], list[Element]] | None]
"""(tags, the object's values for them, converter (None: plain text), Special.out) of `ClassMapping.export_plan`."""
_WireStep = tuple[tuple[TextTag, ...], Callable[[Any], tuple[Any, ...]], Callable[[Any], str | None] | None,
                  Callable[[Any, "MapContext"], list[Element]] | None,
                  Callable[[ItemWriter, Any, "MapContext"], None] | None]
"""An `_ExportStep` with its tags' `TextTag`s and its `Special.write` (`ClassMapping.wire_plan`)."""


def _values_of(attrs: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The object's values of `attrs` (attribute names, or "extra:KEY": `extra[KEY]`, "" when absent), read
    in one call per stretch of attributes (`attrgetter`) or of extra keys: a run of text fields that
    alternates between the two (Contacts2's) is one step of `to_eas`, not one per stretch."""
    getters = [_stretch_of(list(stretch)) for _, stretch in groupby(attrs, key=lambda a: a.startswith("extra:"))]
    if len(getters) == 1:
        return getters[0]

    def values(obj: Any) -> tuple[Any, ...]:
        out: tuple[Any, ...] = ()
        for get in getters:
            out += get(obj)
        return out

    return values


def _stretch_of(attrs: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The values of attributes only, or of extra keys only."""
    if attrs[0].startswith("extra:"):
        return _extras_of([a[6:] for a in attrs])
    get = operator.attrgetter(*attrs)
    return get if len(attrs) > 1 else lambda obj: (get(obj),)


def _extras_of(keys: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The object's `extra[KEY]` of `keys` ("" when absent); an empty `extra` (most objects: only what a
    device or a vCard sent beyond the model lands there) gives the all-blank tuple made once."""
    blank = ("",) * len(keys)

    def values(obj: Any) -> tuple[Any, ...]:
        extra = obj.extra
        if extra.__class__ is dict and not extra:
            return blank
        return tuple([extra.get(k, "") for k in keys])

    return values


def _text(tag: str, value: Any) -> Element:
    """The element of a text field whose value is not a string (`_str_out`: its str())."""
    return E(tag, str(value))


def _no_values(obj: Any) -> tuple[Any, ...]:
    return ()


def _export_steps(rows: list[Row]) -> tuple[_ExportStep, ...]:
    steps: list[_ExportStep] = []
    run: list[Field] = []  # consecutive text fields (attributes and extra keys alike)

    def close() -> None:
        if run:
            steps.append((tuple(r.tag for r in run), _values_of([r.attr for r in run]), None, None))
            run.clear()
    for row in rows:
        if isinstance(row, Special):
            close()
            steps.append(((), _no_values, None, row.out))
        elif row.conv.out is _str_out:
            run.append(row)
        else:
            close()
            steps.append(((row.tag,), _values_of([row.attr]), row.conv.out, None))
    close()
    return tuple(steps)


def get_attr(obj: Any, attr: str) -> Any:
    if attr.startswith("extra:"):
        return obj.extra.get(attr[6:], "")
    return getattr(obj, attr)


def set_attr(obj: Any, attr: str, value: Any) -> None:
    if attr.startswith("extra:"):
        key = attr[6:]
        if value in (None, ""):
            obj.extra.pop(key, None)
        else:
            obj.extra[key] = value
    else:
        setattr(obj, attr, value)


def default_of(obj: Any, attr: str, conv: Conv) -> Any:
    if attr.startswith("extra:"):
        return ""
    for f in fields(obj):
        if f.name == attr:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    return conv.empty


@dataclass
class ClassMapping:
    name: str
    rows: tuple[Row, ...]
    factory: Callable[[], Any]
    tags: frozenset[str] = field(init=False)
    _plans: dict[float, tuple[_ExportStep, ...]] = field(init=False, default_factory=dict, repr=False, compare=False)
    _wire_plans: dict[float, tuple[_WireStep, ...]] = field(init=False, default_factory=dict, repr=False,
                                                             compare=False)

    def __post_init__(self) -> None:
        self.tags = frozenset(t for r in self.rows for t in ((r.tag,) if isinstance(r, Field) else r.tags))

    def to_eas(self, obj: Any, ctx: MapContext) -> Element:
        """The object's ApplicationData: each row of the table that applies to the version, in order.
        Walks the steps chosen once per version (`export_plan`): an initial Sync converts every item."""
        data = Element("AirSync:ApplicationData")
        children = data.children
        for tags, values_of, out, special in self.export_plan(ctx.version):
            if special is not None:
                children.extend(special(obj, ctx))
            elif out is not None:  # one field with its own converter
                text = out(values_of(obj)[0])
                if text is not None:
                    children.append(Element(tags[0], xml_safe(text)) if text.__class__ is str else E(tags[0], text))
            else:  # a run of text fields, the common case: "" and None are left out
                for tag, value in zip(tags, values_of(obj), strict=True):
                    if value:
                        children.append(Element(tag, xml_safe(value)) if value.__class__ is str else _text(tag, value))
                    elif value is not None and value.__class__ is not str:
                        children.append(_text(tag, value))
        return data

    def to_wbxml(self, obj: Any, ctx: MapContext) -> Element:
        """`to_eas`, written straight to WBXML: the ApplicationData sealed with its bytes (`wbxml_items`),
        the same bytes `encode` writes of `to_eas`'s tree. For a Sync window, whose items are only encoded:
        no element per text field, and no second walk of them by the encoder."""
        writer = ItemWriter("AirSync:ApplicationData")
        for tags, values_of, out, special, write in self.wire_plan(ctx.version):
            if write is not None:
                write(writer, obj, ctx)
            elif special is not None:
                writer.elements(special(obj, ctx))
            elif out is not None:  # one field with its own converter
                text = out(values_of(obj)[0])
                if text is None:
                    continue
                if text.__class__ is str:
                    writer.text(tags[0], xml_safe(text))
                else:
                    writer.elements((E(tags[0].tag, text),))
            else:  # a run of text fields
                writer.texts(tags, values_of(obj))
        return writer.seal()

    def wire_plan(self, version: float) -> tuple[_WireStep, ...]:
        """`export_plan` with each tag as its `TextTag` (its bytes before a text), for `to_wbxml`."""
        plan = self._wire_plans.get(version)
        if plan is None:
            writes = {row.out: row.write for row in self.rows if isinstance(row, Special)}
            plan = self._wire_plans[version] = tuple(
                (tuple(text_tag(tag) for tag in tags), values_of, out, special, writes.get(special) if special else None)
                for tags, values_of, out, special in self.export_plan(version))
        return plan

    def export_plan(self, version: float) -> tuple[_ExportStep, ...]:
        """The rows `to_eas` writes for `version`, chosen once: consecutive text fields (`_str_out`) as one
        step whose values are read together, any other field or `Special` as a step of its own."""
        plan = self._plans.get(version)
        if plan is None:
            plan = self._plans[version] = _export_steps(
                [row for row in self.rows if row.applies(version) and (not isinstance(row, Field) or row.export)])
        return plan

    def from_eas(self, data: Element, base: Any | None, ctx: MapContext,
                 supported: frozenset[str] | None = None) -> Any:
        """A new object (Add) or `base` updated in place (Change), following the ghosting rule."""
        obj = base if base is not None else self.factory()
        ctx.data = data
        present = {child.tag: child for child in data}
        for row in self.rows:
            if not row.applies(ctx.version):
                continue
            tag = row.tag if isinstance(row, Field) else row.tags[0]
            elem = present.get(tag)
            clear = base is None or supported is None or tag in supported
            if isinstance(row, Field):
                if elem is not None:
                    set_attr(obj, row.attr, row.conv.into(elem.value_text()))
                elif clear and row.export and not any(r.attr == row.attr and r.tag in present for r in self.rows
                                                      if isinstance(r, Field)):
                    set_attr(obj, row.attr, default_of(obj, row.attr, row.conv))
            elif elem is not None or clear:
                row.into(obj, elem, ctx, clear)
        return obj


# ------------------------------------------------------------------ shared specials

_TAG_RE = re.compile(r"<[^>]+>")


def body_out(attr: str) -> Callable[[Any, MapContext], list[Element]]:
    def out(obj: Any, ctx: MapContext) -> list[Element]:
        text: str = getattr(obj, attr) or ""
        if ctx.version < 12.0:
            return [E("Contacts:Body", text)] if text else []
        kind = 2 if ctx.body_type == 2 else 1
        data = text if kind == 1 else "<html><body>" + html.escape(text).replace("\n", "<br>") + "</body></html>"
        raw = data.encode("utf-8")
        body = E("AirSyncBase:Body", E("AirSyncBase:Type", str(kind)), E("AirSyncBase:EstimatedDataSize", str(len(raw))))
        if ctx.truncation is not None and len(raw) > ctx.truncation:
            if ctx.all_or_none:
                body.append(E("AirSyncBase:Truncated", "1"))
                return [body]
            data = raw[:ctx.truncation].decode("utf-8", "ignore")
            body.append(E("AirSyncBase:Truncated", "1"))
        if data:
            body.append(E("AirSyncBase:Data", data))
        if ctx.preview and ctx.version >= 14.0 and text:
            body.append(E("AirSyncBase:Preview", text[:ctx.preview]))
        return [body]

    return out


_BODY_TYPE, _BODY_SIZE, _BODY_DATA, _BODY_PREVIEW = (text_tag(f"AirSyncBase:{name}") for name in (
    "Type", "EstimatedDataSize", "Data", "Preview"))


def body_write(attr: str) -> Callable[[ItemWriter, Any, MapContext], None]:
    """`body_out` written straight to WBXML for a plain-text body sent whole (what Sync windows send unless
    the device asks for HTML or a truncation the body exceeds); any other body is `body_out`'s elements."""
    out = body_out(attr)

    def write(writer: ItemWriter, obj: Any, ctx: MapContext) -> None:
        text: str = getattr(obj, attr) or ""
        if ctx.version < 12.0 or ctx.body_type == 2:
            writer.elements(out(obj, ctx))
            return
        size = len(text.encode("utf-8"))
        if ctx.truncation is not None and size > ctx.truncation:
            writer.elements(out(obj, ctx))
            return
        writer.start("AirSyncBase:Body")
        writer.text(_BODY_TYPE, "1")
        writer.text(_BODY_SIZE, str(size))
        if text:
            writer.text(_BODY_DATA, xml_safe(text))
        if ctx.preview and ctx.version >= 14.0 and text:
            writer.text(_BODY_PREVIEW, xml_safe(text[:ctx.preview]))
        writer.end()

    return write


def body_into(attr: str) -> Callable[[Any, Element | None, MapContext, bool], None]:
    def into(obj: Any, elem: Element | None, ctx: MapContext, clear: bool) -> None:
        if elem is None:
            if clear:
                setattr(obj, attr, "")
            return
        if elem.find("AirSyncBase:Data") is None and elem.findtext("AirSyncBase:Truncated") == "1":
            return  # a truncated body sent back must not overwrite the full one
        text = elem.findtext("AirSyncBase:Data", "") if elem.tag == "AirSyncBase:Body" else elem.value_text()
        if elem.findtext("AirSyncBase:Type") == "2":
            text = html.unescape(_TAG_RE.sub("", text.replace("<br>", "\n")))
        setattr(obj, attr, text.replace("\r\n", "\n"))

    return into


def body_row(attr: str) -> Special:
    return Special(("AirSyncBase:Body",), body_out(attr), body_into(attr), since=12.0, write=body_write(attr))


def categories_row(page: str) -> Special:
    def out(obj: Any, ctx: MapContext) -> list[Element]:
        names = [c.strip() for c in (obj.categories or "").split(",") if c.strip()]
        if not names:
            return []
        return [E(f"{page}:Categories", *(E(f"{page}:Category", n) for n in names))]

    def into(obj: Any, elem: Element | None, ctx: MapContext, clear: bool) -> None:
        if elem is None:
            obj.categories = ""
            return
        obj.categories = ",".join(c.value_text().replace(",", " ") for c in elem.findall(f"{page}:Category")
                                  if c.value_text().strip())

    return Special((f"{page}:Categories",), out, into)


def _attachments_out(obj: Any, ctx: MapContext) -> list[Element]:
    """AirSyncBase:Attachments with FileReference `folder:object:attachment` (fetched by ItemOperations)."""
    if not obj.attachments or obj.object_id is None:
        return []
    out = E("AirSyncBase:Attachments")
    for meta in obj.attachments:
        out.append(E("AirSyncBase:Attachment", E("AirSyncBase:DisplayName", meta.filename),
                     E("AirSyncBase:FileReference", f"{obj.folder_id}:{obj.object_id}:{meta.id}"),
                     E("AirSyncBase:Method", "1"), E("AirSyncBase:EstimatedDataSize", str(meta.size))))
    return [out]


ATTACHMENTS_ROW = Special(("AirSyncBase:Attachments",), _attachments_out, lambda o, e, c, clear: None, since=12.0)
"""Export only: attachments are uploaded through other dialects (EAS 16 Add/Delete not supported)."""
