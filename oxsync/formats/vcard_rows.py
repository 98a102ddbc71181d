"""The row kinds of the vCard <-> Contact mapping: how one table row reads and writes its properties.

`vcard_tables.py` declares the mapping as data (which field, which property, which TYPE slot, which
converter); this module holds the machinery each kind of row runs: text escaping (RFC 2426 §4 / RFC
6350 §3.4), value converters, and the row kinds `Simple` (one property), `Struct` (a structured value
such as N or ORG), `SlotGroup` (TEL/EMAIL/ADR/IMPP typed slots), `Photo` and `Members` (distribution
lists). What must hold: a row consumes only the lines it maps; every other line is kept verbatim
(`EXTRA_LINES`), so a card comes back as sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol
from urllib.parse import quote, unquote

from oxsync.config import LimitSettings
from oxsync.model.contact import Contact, DistributionListMember

Params = dict[str, list[str]]
MemberInfo = tuple[int | None, int | None, str, str]
"""What a `resolve_uid` callback returns: (contact_id, folder_id, email, display_name)."""
ResolveUid = Callable[[str], MemberInfo | None]
UidForMember = Callable[[DistributionListMember], str | None]

EXTRA_LINES = "vcard:lines"
EXTRA_GROUP = "vcard:group:"
YEARLESS = 1604


class CardError(Exception):
    """This card cannot be imported (e.g. a photo over the limit); `line` is the offending line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Prop:
    """One content line as parsed by vobject, with TYPE values normalised to a lower-case set."""

    name: str
    group: str | None
    params: Params
    types: frozenset[str]
    value: str
    line: int

    def param(self, key: str) -> str | None:
        values = self.params.get(key)
        return values[0] if values else None


@dataclass
class Ctx:
    """Per-card state a converter may need: version, limits and the caller's member callbacks."""

    version: str = "3.0"
    limits: LimitSettings = field(default_factory=LimitSettings)
    resolve_uid: ResolveUid | None = None
    uid_for_member: UidForMember | None = None


@dataclass(frozen=True)
class Out:
    """A line to write; `key` is the model field whose recorded vCard group (if any) prefixes it."""

    key: str | None
    name: str
    params: Params
    value: str


# ---- text escaping (RFC 2426 §4 / RFC 6350 §3.4) ----

_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def unescape(value: str) -> str:
    """Undo backslash escaping; a bare CRLF from quoted-printable becomes a plain newline."""
    value = _UNESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)
    return value.replace("\r\n", "\n").replace("\r", "\n")


def escape(value: str) -> str:
    value = value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def escape_uri(value: str) -> str:
    """URIs keep their commas; only what would break the line (or the unescaping) is escaped."""
    return escape(value).replace("\\,", ",").replace("\\;", ";")


def split_escaped(value: str, sep: str) -> list[str]:
    """Split on `sep` where it is not backslash-escaped; the parts stay escaped."""
    parts: list[str] = []
    start = index = 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            index += 2
            continue
        if char == sep:
            parts.append(value[start:index])
            start = index + 1
        index += 1
    parts.append(value[start:])
    return parts


# ---- converters: property value <-> model value ----


@dataclass(frozen=True)
class Conv:
    """`load` raises ValueError for a value it cannot take (the line is then kept verbatim);
    `dump` returns (params, encoded value), or None when the model value means "no line"."""

    load: Callable[[Prop], Any]
    dump: Callable[[Any, str], tuple[Params, str] | None]


def _load_list(prop: Prop) -> str:
    items = (unescape(item).strip() for item in split_escaped(prop.value, ","))
    return ",".join(item for item in items if item)


def _dump_list(value: str, version: str) -> tuple[Params, str] | None:
    items = [escape(item.strip()) for item in value.split(",") if item.strip()]
    return ({}, ",".join(items)) if items else None


def _load_class(prop: Prop) -> bool:
    value = prop.value.strip().upper()
    if value in ("PRIVATE", "CONFIDENTIAL"):
        return True
    if value == "PUBLIC":
        return False
    raise ValueError(f"unknown CLASS {value}")


_FULL_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:T[\d:.]*(?:Z|[+-][\d:]+)?)?$")
_NO_YEAR = re.compile(r"^--(\d{2})-?(\d{2})$")


def _load_date(prop: Prop) -> date:
    """Full dates (basic or extended, an optional time is ignored) and year-less --MMDD / --MM-DD."""
    text = prop.value.strip()
    if match := _NO_YEAR.match(text):
        return date(YEARLESS, int(match[1]), int(match[2]))
    if not (match := _FULL_DATE.match(text)):
        raise ValueError(f"not a date: {text!r}")
    year = int(match[1])
    if prop.param("X-APPLE-OMIT-YEAR") == match[1]:
        year = YEARLESS
    return date(year, int(match[2]), int(match[3]))


def _dump_date(value: date | None, version: str) -> tuple[Params, str] | None:
    if value is None:
        return None
    if version == "4.0":
        return {}, (f"--{value:%m%d}" if value.year == YEARLESS else f"{value.year:04d}{value:%m%d}")
    params: Params = {"X-APPLE-OMIT-YEAR": [str(YEARLESS)]} if value.year == YEARLESS else {}
    return params, f"{value.year:04d}-{value:%m-%d}"


TEXT = Conv(lambda p: unescape(p.value), lambda v, _: ({}, escape(v)) if v else None)
URI = Conv(lambda p: unescape(p.value).strip(), lambda v, _: ({}, escape_uri(v)) if v else None)
LIST = Conv(_load_list, _dump_list)
INT = Conv(lambda p: int(p.value.strip()), lambda v, _: ({}, str(v)) if v else None)
CLASS = Conv(_load_class, lambda v, _: ({}, "PRIVATE") if v else None)
DATE = Conv(_load_date, _dump_date)


# ---- row kinds ----


class Entry(Protocol):
    """A row: property names read, model fields owned. `read` returns the key field of a consumed
    line ("" if none) or None when the line does not fit (next row, finally kept verbatim)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def fields(self) -> tuple[str, ...]: ...

    def read(self, prop: Prop, contact: Contact, ctx: Ctx) -> str | None: ...

    def write(self, contact: Contact, ctx: Ctx) -> Iterator[Out]: ...


@dataclass(frozen=True)
class Simple:
    """One property <-> one field. Aliases are read, never written; a repeated line with the same
    value (Evolution and X-* duplicates) is absorbed, a different one is kept verbatim unless `merge`."""

    attr: str
    prop: str
    conv: Conv = TEXT
    aliases: tuple[str, ...] = ()
    prop4: str | None = None
    merge: str | None = None
    always: bool = False
    default: Callable[[Contact], str] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.prop, self.prop4 or self.prop, *self.aliases)))

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.attr,)

    def read(self, prop: Prop, contact: Contact, ctx: Ctx) -> str | None:
        value = self.conv.load(prop)
        current = getattr(contact, self.attr)
        if not current or current == value:
            setattr(contact, self.attr, value)
        elif self.merge and value:
            setattr(contact, self.attr, f"{current}{self.merge}{value}")
        else:
            return None
        return self.attr

    def write(self, contact: Contact, ctx: Ctx) -> Iterator[Out]:
        value = getattr(contact, self.attr)
        if not value and self.default is not None:
            value = self.default(contact)
        dumped = self.conv.dump(value, ctx.version)
        if dumped is None and self.always:
            dumped = {}, ""
        if dumped is not None:
            name = self.prop4 if ctx.version == "4.0" and self.prop4 else self.prop
            yield Out(self.attr, name, dumped[0], dumped[1])


@dataclass(frozen=True)
class Struct:
    """A `;`-separated property: component i <-> attrs[i]; components past the last field are
    appended to it with `overflow` (ORG's sub-units join the department)."""

    prop: str
    attrs: tuple[str, ...]
    always: bool = False
    overflow: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.prop,)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.attrs

    def read(self, prop: Prop, contact: Contact, ctx: Ctx) -> str | None:
        if any(getattr(contact, attr) for attr in self.attrs):
            return None
        parts = [unescape(part) for part in split_escaped(prop.value, ";")]
        parts += [""] * (len(self.attrs) - len(parts))
        tail = [part for part in parts[len(self.attrs):] if part]
        if tail and self.overflow:
            parts[len(self.attrs) - 1] = self.overflow.join(p for p in (parts[len(self.attrs) - 1], *tail) if p)
        elif tail:
            return None
        for attr, part in zip(self.attrs, parts, strict=False):
            setattr(contact, attr, part)
        return self.attrs[0]

    def write(self, contact: Contact, ctx: Ctx) -> Iterator[Out]:
        values = [getattr(contact, attr) for attr in self.attrs]
        if any(values) or self.always:
            yield Out(self.attrs[0], self.prop, {}, ";".join(escape(v) for v in values))


@dataclass(frozen=True)
class Slot:
    """One model field (or address group) of a multi-valued property and the TYPE sets selecting it."""

    attrs: tuple[str, ...]
    types: tuple[str, ...]
    match: tuple[frozenset[str], ...]


def slot(attrs: str | tuple[str, ...], types: str, *match: str) -> Slot:
    """`slot("fax_business", "work,fax", "work,fax")`: attrs, TYPE values written, TYPE sets read."""
    names = (attrs,) if isinstance(attrs, str) else attrs
    return Slot(names, tuple(types.split(",")), tuple(frozenset(m.split(",")) - {""} for m in match))


LOCATIONS = frozenset({"work", "home", "other"})
V3_ONLY_TYPES = frozenset({"pref", "internet"})
"""4.0 has PREF=n instead of TYPE=pref and dropped EMAIL's TYPE=internet (RFC 6350 §6.4.2, A.2)."""
ADR_COMPONENTS = 7  # box; extended; street; locality; region; code; country
ADR_INDEX = (2, 5, 3, 4, 6)  # street, postal_code, city, state, country -> ADR component


@dataclass(frozen=True)
class SlotGroup:
    """A repeatable property (TEL, EMAIL, ADR, IMPP) spread over fixed model slots.

    A line goes to the first free slot whose TYPE set equals the line's (first with `pref`, then
    without), else to the free slot with the most specific subset match (a kind such as cell or fax
    beats a location), else to the first free slot listed in `fill`, else it is kept verbatim."""

    prop: str
    slots: tuple[Slot, ...]
    ignore: frozenset[str] = frozenset()
    address: bool = False
    uri: bool = False
    strip_scheme: str = ""
    aliases: tuple[tuple[str, str], ...] = ()
    """(property, URI scheme) read as this property, e.g. X-JABBER:a@b -> xmpp:a@b."""
    fill: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.prop, *(alias for alias, _ in self.aliases))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(attr for s in self.slots for attr in s.attrs)

    def _load(self, prop: Prop) -> tuple[str, ...]:
        if self.address:
            parts = [unescape(part) for part in split_escaped(prop.value, ";")]
            parts += [""] * (ADR_COMPONENTS - len(parts))
            parts[2] = "\n".join(p for p in parts[:3] if p)  # no model home for PO box / extended
            return tuple(parts[i] for i in ADR_INDEX)
        value = unescape(prop.value).strip()
        scheme = dict(self.aliases).get(prop.name, "")
        if scheme and not value.lower().startswith(scheme):
            value = scheme + value
        if self.strip_scheme and value.lower().startswith(self.strip_scheme):
            value = value[len(self.strip_scheme):]
        return (value,)

    def _choose(self, types: frozenset[str], contact: Contact) -> Slot | None:
        free = [s for s in self.slots if not any(getattr(contact, attr) for attr in s.attrs)]
        full = types - self.ignore
        kinds = full - {"pref"}
        for wanted in (full, kinds):
            for candidate in free:
                if wanted in candidate.match:
                    return candidate
        ranked = [
            ((len(m), len(m - LOCATIONS), -index), candidate)
            for index, candidate in enumerate(free) for m in candidate.match if m and m <= kinds
        ]
        if ranked:
            return max(ranked, key=lambda item: item[0])[1]
        return next((s for name in self.fill for s in free if s.attrs[0] == name), None)

    def read(self, prop: Prop, contact: Contact, ctx: Ctx) -> str | None:
        values = self._load(prop)
        if not any(values):
            return ""
        if self.aliases and any(getattr(contact, s.attrs[0]) == values[0] for s in self.slots):
            return ""  # Apple writes IMPP and its X-JABBER twin; one account, one slot
        chosen = self._choose(prop.types, contact)
        if chosen is None:
            return None
        for attr, value in zip(chosen.attrs, values, strict=True):
            setattr(contact, attr, value)
        return chosen.attrs[0]

    def write(self, contact: Contact, ctx: Ctx) -> Iterator[Out]:
        for s in self.slots:
            values = [getattr(contact, attr) for attr in s.attrs]
            if not any(values):
                continue
            types = list(s.types)
            params: Params = {}
            if ctx.version == "4.0":
                if "pref" in types:
                    params["PREF"] = ["1"]
                types = [t for t in types if t not in V3_ONLY_TYPES]
            if types:
                params["TYPE"] = types
            if self.address:
                parts = [""] * ADR_COMPONENTS
                for index, value in zip(ADR_INDEX, values, strict=True):
                    parts[index] = escape(value)
                text = ";".join(parts)
            else:
                text = escape_uri(values[0]) if self.uri else escape(values[0])
            yield Out(s.attrs[0], self.prop, params, text)


_IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"))
_TYPE_ALIASES = {"jpg": "jpeg", "pjpeg": "jpeg"}


def _sniff(data: bytes) -> str:
    return next((mime for magic, mime in _IMAGE_MAGIC if data.startswith(magic)), "")


@dataclass(frozen=True)
class Photo:
    """PHOTO (3.0/2.1 ENCODING=b|BASE64 with TYPE=JPEG, 4.0 data: URI) <-> image1 + content type.

    The decoded size is checked against `limits.max_photo_bytes` before decoding; over it the card is
    refused. A PHOTO by reference (URL) or with broken base64 is not an image we hold: kept verbatim."""

    names: tuple[str, ...] = ("PHOTO",)
    fields: tuple[str, ...] = ("image1", "image_content_type")

    def read(self, prop: Prop, contact: Contact, ctx: Ctx) -> str | None:
        if contact.image1 is not None:
            return None
        value = prop.value.strip()
        if value[:5].lower() == "data:":
            header, sep, payload = value[5:].partition(",")
            if not sep or not header.lower().endswith(";base64"):
                return None
            mime = header.split(";")[0].strip().lower()
        elif (prop.param("ENCODING") or "").lower() in ("b", "base64") or "base64" in prop.types:
            payload = value
            kind = next(iter(sorted(prop.types - {"base64", "b"})), "")
            kind = _TYPE_ALIASES.get(kind, kind)
            mime = kind if "/" in kind else (f"image/{kind}" if kind else "")
        else:
            return None
        payload = "".join(payload.split())
        size = len(payload) * 3 // 4 - payload[-2:].count("=")
        cap = ctx.limits.max_photo_bytes
        if size > cap:
            raise CardError(f"PHOTO of {size} bytes exceeds limits.max_photo_bytes ({cap})", prop.line)
        try:
            data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
        except binascii.Error:
            return None
        contact.image1 = data
        contact.image_content_type = mime or _sniff(data)
        return "image1"

    def write(self, contact: Contact, ctx: Ctx) -> Iterator[Out]:
        if not contact.image1:
            return
        mime = contact.image_content_type or _sniff(contact.image1) or "image/jpeg"
        data = base64.b64encode(contact.image1).decode("ascii")
        if ctx.version == "4.0":
            yield Out("image1", "PHOTO", {}, f"data:{mime};base64,{data}")
        else:
            yield Out("image1", "PHOTO", {"ENCODING": ["b"], "TYPE": [mime.split("/")[-1].upper()]}, data)


def _param_text(value: str) -> str:
    """Parameter values cannot hold DQUOTE or line breaks (RFC 6350 §3.3 without RFC 6868)."""
    return " ".join(value.replace('"', "'").split())


@dataclass(frozen=True)
class Members:
    """Distribution lists: KIND:group + MEMBER (4.0), X-ADDRESSBOOKSERVER-KIND/-MEMBER (Apple 3.0).

    mailto: members are free addresses; urn:uuid: members name a contact, looked up through the
    caller's `resolve_uid` (tried with the bare UID, then the full URI). Unresolved ones are kept
    verbatim. On output a contact member becomes urn:uuid: when `uid_for_member` knows its UID."""

    names: tuple[str, ...] = ("KIND", "X-ADDRESSBOOKSERVER-KIND", "MEMBER", "X-ADDRESSBOOKSERVER-MEMBER")
    fields: tuple[str, ...] = ("distribution_list",)

    def read(self, prop: Prop, contact: Contact, ctx: Ctx) -> str | None:
        value = unescape(prop.value).strip()
        if prop.name.endswith("KIND"):
            kind = value.lower()
            if kind == "group" and contact.distribution_list is None:
                contact.distribution_list = []
            return "" if kind in ("group", "individual") else None
        member = self._member(prop, value, ctx)
        if member is None:
            return None
        members = contact.distribution_list if contact.distribution_list is not None else []
        if len(members) >= ctx.limits.max_distribution_list_members:
            cap = ctx.limits.max_distribution_list_members
            raise CardError(f"more than limits.max_distribution_list_members ({cap}) members", prop.line)
        members.append(member)
        contact.distribution_list = members
        return ""

    @staticmethod
    def _member(prop: Prop, value: str, ctx: Ctx) -> DistributionListMember | None:
        if value[:7].lower() == "mailto:":
            address = unquote(value[7:].split("?")[0])
            return DistributionListMember(email=address, display_name=prop.param("X-OX-CN") or "")
        if ctx.resolve_uid is None:
            return None
        uid = value[9:] if value[:9].lower() == "urn:uuid:" else value
        found = ctx.resolve_uid(uid) or (ctx.resolve_uid(value) if uid != value else None)
        if found is None:
            return None
        field_param = prop.param("X-OX-EMAILFIELD") or "1"
        email_field = int(field_param) if field_param in ("0", "1", "2", "3") else 1
        contact_id, folder_id, email, display_name = found
        return DistributionListMember(email, display_name, contact_id, folder_id, email_field)

    def write(self, contact: Contact, ctx: Ctx) -> Iterator[Out]:
        if contact.distribution_list is None:
            return
        apple = ctx.version != "4.0"
        yield Out(None, "X-ADDRESSBOOKSERVER-KIND" if apple else "KIND", {}, "group")
        name = "X-ADDRESSBOOKSERVER-MEMBER" if apple else "MEMBER"
        for member in contact.distribution_list:
            uid = ctx.uid_for_member(member) if ctx.uid_for_member and member.contact_id is not None else None
            params: Params = {}
            if uid:
                if member.email_field != 1:
                    params["X-OX-EMAILFIELD"] = [str(member.email_field)]
                yield Out(None, name, params, uid if uid.lower().startswith("urn:") else f"urn:uuid:{uid}")
                continue
            if member.display_name:
                params["X-OX-CN"] = [_param_text(member.display_name)]
            yield Out(None, name, params, "mailto:" + quote(member.email, safe="@!$&'()*+,;=-._~"))
