"""Safe XML input and small helpers for DAV multistatus output.

Input goes through the shared hardened parser `oxsync.web.xmlsafe` (no DTD, no entities, no
network, depth and element count bounded by LimitSettings); any violation is a `BadXml` (400).
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from oxsync.config import LimitSettings
from oxsync.model.text import xml_safe
from oxsync.web import xmlsafe

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"
NSMAP = {"D": DAV, "C": CALDAV, "CR": CARDDAV, "CS": CS, "A": APPLE}


class BadXml(ValueError):
    """The body is not acceptable XML (malformed, DTD, too deep, too many elements)."""


def qn(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


def parse_xml(data: bytes, limits: LimitSettings) -> etree._Element | None:
    """Parse a request body with the shared hardened parser (web.xmlsafe); None for an empty body."""
    if not data.strip():
        return None
    try:
        return xmlsafe.parse(data, limits)
    except xmlsafe.XmlRejected as exc:
        raise BadXml(exc.reason) from None


def element(tag: str, text: str | None = None, children: Iterable[etree._Element] = ()) -> etree._Element:
    el = etree.Element(tag, nsmap=None)
    if text is not None:
        el.text = xml_safe(text)  # lxml refuses what XML cannot carry: one stored title must not fail a response
    for child in children:
        el.append(child)
    return el


def href(path: str) -> etree._Element:
    return element(qn(DAV, "href"), path)


def tostring(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def new_root(tag: str) -> etree._Element:
    return etree.Element(tag, nsmap={"D": DAV, "C": CALDAV, "CR": CARDDAV, "CS": CS, "A": APPLE})


def error_body(condition: str, text: str = "") -> bytes:
    """A DAV:error document naming one precondition/postcondition element (Clark notation)."""
    root = new_root(qn(DAV, "error"))
    cond = etree.SubElement(root, condition)
    if text and condition.endswith("}number-of-matches-within-limits"):
        cond.text = None
    if text:
        etree.SubElement(root, qn(DAV, "responsedescription")).text = xml_safe(text)  # may quote the client
    return tostring(root)


def children_named(parent: etree._Element | None, tag: str) -> list[etree._Element]:
    return [] if parent is None else [c for c in parent if c.tag == tag]


def first(parent: etree._Element | None, tag: str) -> etree._Element | None:
    found = children_named(parent, tag)
    return found[0] if found else None
