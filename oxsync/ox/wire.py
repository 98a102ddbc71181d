"""OX WebDAV/XML wire helpers: reading `ox:` elements and writing the compact 207 shapes.

Output follows reference ox-webdav-xml.md §1.3-1.5 exactly: a hand-written multistatus root with
`version`/`buildname`, each `D:response` re-declaring both namespaces, bare-number `D:status`.
Input accepts namespace-qualified and unqualified attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from oxsync.model.text import xml_safe

DAV = "DAV:"
OX = "http://www.open-xchange.org"
NS_DECL = f'xmlns:D="{DAV}" xmlns:ox="{OX}"'


class RequestError(Exception):
    """A request-level error answered as a plain HTTP status page (reference §1.4)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ reading


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def is_dav(element: etree._Element, name: str) -> bool:
    return isinstance(element.tag, str) and element.tag == f"{{{DAV}}}{name}"


def ox_fields(prop: etree._Element) -> dict[str, etree._Element]:
    """Direct `ox:` children of a `D:prop` by local name (first occurrence wins, except objectmode)."""
    out: dict[str, etree._Element] = {}
    for child in prop:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{OX}}}"):
            name = local(child)
            if name == "objectmode" and name in out:  # KDE may repeat it: keep the union
                out[name].text = f"{out[name].text or ''},{child.text or ''}"
                continue
            out.setdefault(name, child)
    return out


def text(element: etree._Element | None) -> str:
    return "" if element is None else "".join(element.itertext())


def attr(element: etree._Element, name: str, default: str | None = None) -> str | None:
    """An attribute in the OX namespace or unqualified (clients differ, reference §1.3)."""
    value = element.get(f"{{{OX}}}{name}")
    if value is None:
        value = element.get(name)
    return default if value is None else value


def parse_int(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise RequestError(409, f"Conflict: invalid number in element {what}") from None


def find_prop(root: etree._Element) -> etree._Element | None:
    """The first `D:prop` of a PROPFIND body (root `D:propfind` or, as KDE sends, `D:multistatus`)."""
    for element in root.iter(f"{{{DAV}}}prop"):
        return element
    return None


# ------------------------------------------------------------------ writing


def el(name: str, value: object) -> str:
    """`<ox:name>value</ox:name>`; None writes nothing."""
    if value is None:
        return ""
    return f"<ox:{name}>{escape(xml_safe(str(value)))}</ox:{name}>"


def attrs(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(f" ox:{k}={quoteattr(xml_safe(str(v)))}" for k, v in pairs if v is not None)


def multistatus(responses: Iterable[str], version: str) -> bytes:
    head = f'<?xml version="1.0" encoding="UTF-8"?>\r\n<D:multistatus xmlns:D="DAV:" version={quoteattr(version)} buildname="Open-Xchange">'
    return (head + "".join(responses) + "</D:multistatus>").encode("utf-8")


def response(href: object, prop_xml: str, status: int = 200, description: str = "OK", extra: str = "") -> str:
    """One `D:response` of the PROPFIND/PROPPATCH shape; `extra` goes after the description."""
    return (f"<D:response {NS_DECL}><D:href>{escape(str(href))}</D:href><D:propstat><D:prop>{prop_xml}</D:prop>"
            f"<D:status>{status}</D:status><D:responsedescription>{escape(xml_safe(description))}</D:responsedescription>"
            f"{extra}</D:propstat></D:response>")
