"""Hardened XML parsing shared by every XML dialect (OX WebDAV/XML, CalDAV/CardDAV).

What must hold (anchors §3.3): no DTD at all (so no entity expansion, XXE or billion laughs), no
network access, and bounded element depth and count. The API is deliberately tiny:
`parse(data, limits) -> root element` or `XmlRejected(reason)`.
"""

from __future__ import annotations

from lxml import etree

from oxsync.config import LimitSettings

__all__ = ["XmlRejected", "parse"]


class XmlRejected(ValueError):
    """The body is not acceptable XML; `reason` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def parse(data: bytes, limits: LimitSettings) -> etree._Element:
    """Parse `data`; raise `XmlRejected` for a DTD, malformed XML or a tree over the configured bounds."""
    if not data or not data.strip():
        raise XmlRejected("empty body")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlRejected("DTDs and entity declarations are not accepted")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(f"malformed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. an unsupported encoding declaration
        raise XmlRejected(f"malformed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # e.g. a UTF-16 body hiding the keyword
        raise XmlRejected("DTDs and entity declarations are not accepted")
    _check_bounds(root, limits.max_xml_depth, limits.max_xml_elements)
    return root


def _check_bounds(root: etree._Element, max_depth: int, max_elements: int) -> None:
    count = 0
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if not isinstance(element.tag, str):
            if isinstance(element, etree._Entity):
                raise XmlRejected("entity references are not accepted")
            continue
        count += 1
        if count > max_elements:
            raise XmlRejected(f"more than {max_elements} elements")
        if depth > max_depth:
            raise XmlRejected(f"elements nested deeper than {max_depth}")
        stack.extend((child, depth + 1) for child in element)
