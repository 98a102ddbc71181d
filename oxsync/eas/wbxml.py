"""Exchange ActiveSync WBXML codec (WBXML 1.3 as profiled by MS-ASWBXML).

The tree is a small dataclass, `Element`, with ``"Namespace:Name"`` tags (``"AirSync:Sync"``), and
either text (STR_I / STR_T), opaque bytes (OPAQUE) or child elements. It converts losslessly to and
from XML in the form libwbxml2's ``wbxml2xml -l ACTIVESYNC`` prints: namespaces ``"AirSync:"``,
``"Contacts:"``, ... declared as default namespaces. Two things libwbxml2's XML cannot express are
marked with the attribute ``oxsync:type`` (namespace `XML_MARKER_NS`): ``"opaque"`` (content is base64
of OPAQUE bytes) and ``"string"`` (an empty inline string, as opposed to an empty element).

`decode` never lets anything but `WBXMLError` escape on bad input, and enforces depth, element-count
and string-size limits (defaults from `oxsync.config.LimitSettings`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, cast, overload

from lxml import etree

from oxsync.config import LimitSettings
from oxsync.eas import codepages
from oxsync.model.text import xml_safe

__all__ = [
    "ACTIVESYNC_DOCTYPE",
    "ACTIVESYNC_PUBLIC_ID",
    "E",
    "Element",
    "WBXMLError",
    "XML_MARKER_NS",
    "decode",
    "encode",
    "encode_element",
    "from_lxml",
    "from_xml",
    "to_lxml",
    "to_xml",
]

_LIMITS: Final = LimitSettings()

# Global tokens (WBXML 1.3 §7.1).
SWITCH_PAGE: Final = 0x00
END: Final = 0x01
ENTITY: Final = 0x02
STR_I: Final = 0x03
LITERAL: Final = 0x04
PI: Final = 0x43
STR_T: Final = 0x83
OPAQUE: Final = 0xC3
_REFUSED: Final[dict[int, str]] = {
    ENTITY: "ENTITY", LITERAL: "LITERAL", 0x40: "EXT_I_0", 0x41: "EXT_I_1", 0x42: "EXT_I_2",
    PI: "PI", 0x44: "LITERAL_C", 0x80: "EXT_T_0", 0x81: "EXT_T_1", 0x82: "EXT_T_2",
    0x84: "LITERAL_A", 0xC0: "EXT_0", 0xC1: "EXT_1", 0xC2: "EXT_2", 0xC4: "LITERAL_AC",
}

WBXML_VERSION_13: Final = 0x03
PUBLIC_ID_UNKNOWN: Final = 0x01
CHARSET_UTF8: Final = 106
ACTIVESYNC_PUBLIC_ID: Final = "-//MICROSOFT//DTD ActiveSync//EN"
ACTIVESYNC_DOCTYPE: Final = f'<!DOCTYPE ActiveSync PUBLIC "{ACTIVESYNC_PUBLIC_ID}" "http://www.microsoft.com/">'
XML_MARKER_NS: Final = "urn:oxsync:wbxml"
_TYPE_ATTR: Final = f"{{{XML_MARKER_NS}}}type"
_HEADER: Final = bytes((WBXML_VERSION_13, PUBLIC_ID_UNKNOWN, CHARSET_UTF8, 0))


class WBXMLError(ValueError):
    """Malformed, truncated, hostile or unencodable WBXML."""


@dataclass(slots=True)
class Element:
    """One WBXML element: a ``"Namespace:Name"`` tag and text, opaque bytes or children."""

    tag: str
    text: str | None = None
    opaque: bytes | None = None
    children: list[Element] = field(default_factory=list)
    sealed: tuple[int, bytes, int] | None = field(default=None, compare=False, repr=False)
    """Set by `encode_sealed`: (page of the tag, the element's bytes encoded from that page, the page
    they end on), so that a document holding it copies them instead of encoding it again."""

    @property
    def namespace(self) -> str:
        """Namespace (code page) part of the tag, e.g. ``"AirSync"``."""
        return self.tag.partition(":")[0]

    @property
    def name(self) -> str:
        """Local part of the tag, e.g. ``"Sync"``."""
        return self.tag.partition(":")[2]

    def __iter__(self) -> Iterator[Element]:
        return iter(self.children)

    def __len__(self) -> int:
        return len(self.children)

    def append(self, child: Element) -> Element:
        """Append a child and return it."""
        self.children.append(child)
        return child

    def add(self, tag: str, value: str | bytes | None = None) -> Element:
        """Append a new child with optional text (str) or opaque (bytes) content; return it."""
        return self.append(E(tag, value) if value is not None else Element(tag))

    def find(self, tag: str) -> Element | None:
        """First direct child with this tag, or None."""
        return next((c for c in self.children if c.tag == tag), None)

    def findall(self, tag: str) -> list[Element]:
        """All direct children with this tag."""
        return [c for c in self.children if c.tag == tag]

    @overload
    def findtext(self, tag: str) -> str | None: ...
    @overload
    def findtext(self, tag: str, default: str) -> str: ...
    @overload
    def findtext(self, tag: str, default: None) -> str | None: ...

    def findtext(self, tag: str, default: str | None = None) -> str | None:
        """Text of the first child with this tag ("" if it is empty), or `default` if absent.

        Opaque content is decoded as UTF-8 (replacing invalid bytes)."""
        child = self.find(tag)
        if child is None:
            return default
        return child.value_text()

    def value_text(self) -> str:
        """This element's text; opaque content decoded as UTF-8 with replacement; "" if empty."""
        if self.opaque is not None:
            return self.opaque.decode("utf-8", "replace")
        return self.text or ""

    def iter(self, tag: str | None = None) -> Iterator[Element]:
        """Depth-first iteration over this element and its descendants (optionally by tag)."""
        stack = [self]
        while stack:
            elem = stack.pop()
            if tag is None or elem.tag == tag:
                yield elem
            stack.extend(reversed(elem.children))


def E(tag: str, *content: Element | str | bytes) -> Element:
    """Build an element: str arguments become text, bytes opaque data, Elements children. Every item of
    a response is built of these: one text, or children only, take the short way."""
    if len(content) == 1:
        first = content[0]
        if type(first) is str:
            return Element(tag, xml_safe(first))
    if all(item.__class__ is Element for item in content):
        return Element(tag, children=cast(list[Element], list(content)))
    elem = Element(tag)
    for item in content:
        if isinstance(item, Element):
            elem.children.append(item)
        elif isinstance(item, str):  # what clients parse as XML: no character XML cannot carry
            elem.text = (elem.text or "") + xml_safe(item)
        elif isinstance(item, bytes | bytearray | memoryview):
            elem.opaque = (elem.opaque or b"") + bytes(item)
        else:
            raise TypeError(f"unsupported content for {tag}: {type(item).__name__}")
    return elem


# --------------------------------------------------------------------------- decoding


class _Reader:
    """Cursor over the input with bounds-checked primitive reads."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def byte(self, what: str) -> int:
        if self.pos >= self.end:
            raise WBXMLError(f"truncated document: expected {what} at offset {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def mb_u_int32(self, what: str) -> int:
        value = 0
        for _ in range(5):
            b = self.byte(what)
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                if value > 0xFFFFFFFF:
                    raise WBXMLError(f"{what} does not fit in 32 bits")
                return value
        raise WBXMLError(f"{what} is longer than 5 bytes (bad mb_u_int32) near offset {self.pos}")

    def take(self, length: int, what: str) -> bytes:
        if length > self.end - self.pos:
            raise WBXMLError(f"truncated document: {what} of {length} bytes overruns the input at offset {self.pos}")
        chunk = self.data[self.pos:self.pos + length]
        self.pos += length
        return chunk

    def cstring(self, limit: int, what: str) -> bytes:
        nul = self.data.find(b"\x00", self.pos, min(self.end, self.pos + limit + 1))
        if nul < 0:
            if self.end - self.pos > limit:
                raise WBXMLError(f"{what} at offset {self.pos} is longer than the limit of {limit} bytes")
            raise WBXMLError(f"truncated document: unterminated {what} at offset {self.pos}")
        chunk = self.data[self.pos:nul]
        self.pos = nul + 1
        return chunk


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WBXMLError(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _table_string(table: bytes, index: int, limit: int) -> bytes:
    if index >= len(table):
        raise WBXMLError(f"string table reference {index} is outside the {len(table)}-byte table")
    nul = table.find(b"\x00", index)
    if nul < 0:
        raise WBXMLError(f"string table entry at {index} is not terminated")
    if nul - index > limit:
        raise WBXMLError(f"string table entry at {index} is longer than the limit of {limit} bytes")
    return table[index:nul]


def _read_header(reader: _Reader, max_string_bytes: int) -> bytes:
    """Check the header; return the string table."""
    version = reader.byte("version")
    if version != WBXML_VERSION_13:
        raise WBXMLError(f"unsupported WBXML version byte {version:#04x} (only 1.3 = 0x03 is accepted)")
    public_id = reader.mb_u_int32("public id")
    table_index = reader.mb_u_int32("public id string index") if public_id == 0 else None
    charset = reader.mb_u_int32("charset")
    if charset != CHARSET_UTF8:
        raise WBXMLError(f"unsupported charset MIBenum {charset} (only UTF-8 = 106 is accepted)")
    table_length = reader.mb_u_int32("string table length")
    if table_length > max_string_bytes:
        raise WBXMLError(f"string table of {table_length} bytes exceeds the limit of {max_string_bytes}")
    table = reader.take(table_length, "string table")
    if table_index is not None:
        public_text = _utf8(_table_string(table, table_index, max_string_bytes), "public id")
        if public_text != ACTIVESYNC_PUBLIC_ID:
            raise WBXMLError(f"unsupported public id {public_text!r}")
    elif public_id != PUBLIC_ID_UNKNOWN:
        raise WBXMLError(f"unsupported public id {public_id:#x} (ActiveSync uses 1 = unknown)")
    return table


class _Open:
    """An element being decoded, with its text/opaque pieces."""

    __slots__ = ("elem", "texts", "opaques", "size")

    def __init__(self, elem: Element) -> None:
        self.elem = elem
        self.texts: list[bytes] = []
        self.opaques: list[bytes] = []
        self.size = 0

    def add_bytes(self, chunk: bytes, is_text: bool, limit: int) -> None:
        if self.elem.children:
            raise WBXMLError(f"mixed content in {self.elem.tag}: text after child elements")
        if (self.opaques if is_text else self.texts):
            raise WBXMLError(f"mixed content in {self.elem.tag}: both inline strings and opaque data")
        self.size += len(chunk)
        if self.size > limit:
            raise WBXMLError(f"content of {self.elem.tag} exceeds the limit of {limit} bytes")
        (self.texts if is_text else self.opaques).append(chunk)

    def close(self) -> Element:
        if self.texts:
            self.elem.text = _utf8(b"".join(self.texts), f"text of {self.elem.tag}")
        elif self.opaques:
            self.elem.opaque = b"".join(self.opaques)
        return self.elem


def decode(
    data: bytes,
    *,
    max_depth: int = _LIMITS.max_wbxml_depth,
    max_elements: int = _LIMITS.max_wbxml_elements,
    max_string_bytes: int = _LIMITS.max_wbxml_string_bytes,
) -> Element:
    """Decode an ActiveSync WBXML document into an `Element` tree; raise `WBXMLError` if invalid."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WBXMLError(f"WBXML input must be bytes, not {type(data).__name__}")
    reader = _Reader(bytes(data))
    table = _read_header(reader, max_string_bytes)
    page = 0
    stack: list[_Open] = []
    root: Element | None = None
    count = 0
    expanded = 0  # bytes produced by STR_T references, which can repeat one table entry
    while True:
        if root is not None and not stack:
            if reader.pos != reader.end:
                raise WBXMLError(f"{reader.end - reader.pos} trailing bytes after the root element")
            return root
        token = reader.byte(f"content or END of {stack[-1].elem.tag}" if stack else "the root element")
        if token == SWITCH_PAGE:
            page = reader.byte("code page number")
            if codepages.namespace_of_page(page) is None:
                raise WBXMLError(f"unknown code page {page} at offset {reader.pos - 1}")
            continue
        if token == END:
            if not stack:
                raise WBXMLError(f"END without an open element at offset {reader.pos - 1}")
            closed = stack.pop().close()
            if not stack:
                root = closed
            continue
        if token in (STR_I, STR_T, OPAQUE):
            if not stack:
                raise WBXMLError(f"content outside the root element at offset {reader.pos - 1}")
            if token == STR_I:
                chunk = reader.cstring(max_string_bytes, "inline string")
            elif token == STR_T:
                chunk = _table_string(table, reader.mb_u_int32("string table reference"), max_string_bytes)
                expanded += len(chunk)
                if expanded > max_string_bytes:
                    raise WBXMLError(f"string table references expand to more than {max_string_bytes} bytes")
            else:
                length = reader.mb_u_int32("opaque length")
                if length > max_string_bytes:
                    raise WBXMLError(f"opaque data of {length} bytes exceeds the limit of {max_string_bytes}")
                chunk = reader.take(length, "opaque data")
            stack[-1].add_bytes(chunk, token != OPAQUE, max_string_bytes)
            continue
        if token in _REFUSED:
            raise WBXMLError(f"{_REFUSED[token]} token ({token:#04x}) at offset {reader.pos - 1} is not allowed in ActiveSync")
        if token & 0x80:
            raise WBXMLError(f"attributes are not allowed in ActiveSync (tag byte {token:#04x} at offset {reader.pos - 1})")
        tag = codepages.tag_for_token(page, token & 0x3F)
        if tag is None:
            raise WBXMLError(
                f"unknown token {token & 0x3F:#04x} on code page {page} "
                f"({codepages.namespace_of_page(page)}) at offset {reader.pos - 1}"
            )
        count += 1
        if count > max_elements:
            raise WBXMLError(f"more than {max_elements} elements")
        if len(stack) >= max_depth:
            raise WBXMLError(f"elements nested deeper than {max_depth} levels")
        elem = Element(tag)
        if stack:
            parent = stack[-1]
            if parent.texts or parent.opaques:
                raise WBXMLError(f"mixed content in {parent.elem.tag}: child element after text")
            parent.elem.children.append(elem)
        if token & 0x40:
            stack.append(_Open(elem))
        elif not stack:
            root = elem


# --------------------------------------------------------------------------- encoding


def _mb_u_int32(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def encode(root: Element, *, allow_decode_only: bool = False) -> bytes:
    """Encode an `Element` tree as ActiveSync WBXML (header 03 01 6A 00, no string table).

    Tags must be in `codepages.TAG_TO_TOKEN`; legacy decode-only tags are refused unless
    `allow_decode_only` is set. Raises `WBXMLError` for anything that cannot be encoded.
    """
    out = bytearray(_HEADER)
    _encode_into(out, root, 0, allow_decode_only)
    return bytes(out)


def encode_sealed(root: Element) -> bytes:
    """`encode(root)`, remembering root's bytes in `root.sealed`: a Sync keeps each collection's answer
    for replay and sends it inside the response, encoded once for both (the same bytes either way:
    what follows a sealed element starts from the page it ended on, as in one pass)."""
    found = codepages.token_for_tag(root.tag)
    if found is None or root.sealed is not None:
        return encode(root)
    out = bytearray()
    end_page = _encode_into(out, root, found[0], False)
    root.sealed = (found[0], bytes(out), end_page)
    prefix = _HEADER if found[0] == 0 else _HEADER + bytes((SWITCH_PAGE, found[0]))
    return prefix + root.sealed[1]


def encode_element(out: bytearray, elem: Element, page: int) -> int:
    """Append `elem`'s tokens to `out`, the current code page being `page`; returns the page at the end
    (what `encode` writes for it at that point of a document: `oxsync.eas.wbxml_items` mixes it with
    text elements it writes itself)."""
    return _encode_into(out, elem, page, False)


def _encode_into(out: bytearray, root: Element, page: int, allow_decode_only: bool) -> int:
    """Append `root`'s tokens to `out`, the current code page being `page`; returns the page at the end.
    Runs once per element of every response (an initial Sync window holds thousands): the common cases
    (a known tag, text or children) are tested first, with the table looked up directly."""
    tokens = codepages.TAG_TO_TOKEN
    # Work list of elements to open, or None meaning "emit END".
    todo: list[Element | None] = [root]
    pop, push, extend = todo.pop, todo.append, todo.extend
    while todo:
        elem = pop()
        if elem is None:
            out.append(END)
            continue
        if elem.__class__ is not Element and not isinstance(elem, Element):
            raise WBXMLError(f"cannot encode {type(elem).__name__} as an element")
        if elem.sealed is not None:
            tag_page, body, end_page = elem.sealed
            if tag_page != page:
                out += bytes((SWITCH_PAGE, tag_page))
            out += body
            page = end_page
            continue
        found = tokens.get(elem.tag)
        if found is None and allow_decode_only:
            found = codepages.token_for_tag(elem.tag, allow_decode_only=True)
        if found is None:
            reason = "legacy decode-only" if codepages.token_for_tag(elem.tag, allow_decode_only=True) else "unknown"
            raise WBXMLError(f"cannot encode {reason} tag {elem.tag!r}")
        tag_page, token = found
        if tag_page != page:
            out.append(SWITCH_PAGE)
            out.append(tag_page)
            page = tag_page
        text, opaque = elem.text, elem.opaque
        if text is not None:
            if opaque is not None:
                raise WBXMLError(f"{elem.tag} has both text and opaque content")
            if elem.children:
                raise WBXMLError(f"{elem.tag} has both children and text/opaque content")
            if "\x00" in text:
                raise WBXMLError(f"text of {elem.tag} contains NUL, which STR_I cannot carry")
            try:
                raw = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise WBXMLError(f"text of {elem.tag} is not encodable as UTF-8: {exc.reason}") from None
            out.append(token | 0x40)
            out.append(STR_I)
            out += raw
            out += _STR_END
        elif opaque is not None:
            if elem.children:
                raise WBXMLError(f"{elem.tag} has both children and text/opaque content")
            out += bytes((token | 0x40, OPAQUE)) + _mb_u_int32(len(opaque)) + bytes(opaque)
            out.append(END)
        elif elem.children:
            out.append(token | 0x40)
            push(None)
            extend(reversed(elem.children))
        else:
            out.append(token)
    return page


_STR_END: Final = bytes((0, END))
"""The end of an inline string (its NUL) and of its element."""


# --------------------------------------------------------------------------- XML form


def _xml_namespace(tag: str) -> tuple[str, str]:
    namespace, _, name = tag.partition(":")
    if codepages.page_of_namespace(namespace) is None or not name:
        raise WBXMLError(f"tag {tag!r} is not 'Namespace:Name' with a known ActiveSync namespace")
    return namespace + ":", name


def to_lxml(root: Element) -> etree._Element:
    """Convert to an lxml element tree with libwbxml2-style namespaces ("AirSync:" ...)."""

    marked = any(e.opaque is not None or e.text == "" for e in root.iter())

    def build(elem: Element, parent_uri: str | None) -> etree._Element:
        uri, name = _xml_namespace(elem.tag)
        nsmap: dict[str | None, str] | None = {None: uri} if uri != parent_uri else None
        if parent_uri is None and marked:
            nsmap = {None: uri, "oxsync": XML_MARKER_NS}
        node = etree.Element(f"{{{uri}}}{name}", nsmap=nsmap)
        try:
            if elem.opaque is not None:
                node.set(_TYPE_ATTR, "opaque")
                node.text = base64.b64encode(elem.opaque).decode("ascii")
            elif elem.text == "":
                node.set(_TYPE_ATTR, "string")
            elif elem.text is not None:
                node.text = elem.text
        except ValueError as exc:
            raise WBXMLError(f"text of {elem.tag} cannot be represented in XML: {exc}") from None
        for child in elem.children:
            node.append(build(child, uri))
        return node

    return build(root, None)


def to_xml(root: Element, *, pretty: bool = False) -> bytes:
    """Serialise as an XML document (with the ActiveSync DOCTYPE), as libwbxml2 would print it."""
    body = etree.tostring(to_lxml(root), encoding="unicode", pretty_print=pretty)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{ACTIVESYNC_DOCTYPE}\n{body}'.encode()


def from_lxml(node: etree._Element, *, max_depth: int = _LIMITS.max_wbxml_depth) -> Element:
    """Convert an lxml element (namespaces "AirSync:" or "AirSync") back to an `Element` tree."""

    def build(xml: etree._Element, depth: int) -> Element:
        if depth > max_depth:
            raise WBXMLError(f"elements nested deeper than {max_depth} levels")
        qname = etree.QName(xml)
        uri = qname.namespace or ""
        namespace = uri[:-1] if uri.endswith(":") else uri
        tag = f"{namespace}:{qname.localname}"
        if codepages.token_for_tag(tag, allow_decode_only=True) is None:
            raise WBXMLError(f"unknown ActiveSync element {{{uri}}}{qname.localname}")
        elem = Element(tag)
        children = [c for c in xml if isinstance(c.tag, str)]
        for child in children:
            elem.children.append(build(child, depth + 1))
        text = xml.text
        if children:
            if (text or "").strip() or any((c.tail or "").strip() for c in xml):
                raise WBXMLError(f"mixed content in {tag}")
        elif xml.get(_TYPE_ATTR) == "opaque":
            try:
                elem.opaque = base64.b64decode(text or "", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise WBXMLError(f"bad base64 in opaque {tag}: {exc}") from None
        elif text is not None or xml.get(_TYPE_ATTR) == "string":
            elem.text = text or ""
        return elem

    return build(node, 1)


def from_xml(data: bytes | str, *, max_depth: int = _LIMITS.max_wbxml_depth) -> Element:
    """Parse XML text (e.g. `to_xml` or ``wbxml2xml -l ACTIVESYNC`` output) into an `Element` tree."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True,
                             remove_pis=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        node = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise WBXMLError(f"not well-formed XML: {exc}") from None
    return from_lxml(node, max_depth=max_depth)
