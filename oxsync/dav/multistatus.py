"""The pieces every DAV answer is built from: `Response`, the request body parsed safely, and the
207 multistatus with one DAV:response per resource (`describe`: the requested properties of one
resource, an object that cannot be rendered left out). PROPFIND, the REPORTs and PROPPATCH build on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.inbox import Resource
from oxsync.dav.layout import Collection, DavError, ObjectRes
from oxsync.dav.props import ALLPROP, get_prop
from oxsync.dav.stream import Multistatus
from oxsync.dav.xml import CALDAV, CARDDAV, DAV, BadXml, href, new_root, parse_xml, qn
from oxsync.render import render_one, xml_safe

XML = "application/xml; charset=utf-8"

STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 403: "Forbidden", 404: "Not Found",
               409: "Conflict", 412: "Precondition Failed", 424: "Failed Dependency", 507: "Insufficient Storage"}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    stream: IO[bytes] | None = None
    """A large body spooled to a file (see stream.Multistatus): sent in chunks instead of `body`."""


def multistatus_response(out: Multistatus, content_type: str = XML) -> Response:
    """The 207 answer of a multistatus written with `stream.Multistatus`."""
    body, spooled = out.finish()
    return Response(207, body, content_type, stream=spooled)


def drain(items: list[Any]) -> Iterator[Any]:
    """Yield and let go of the list's items in order: a resource described (its object loaded, its
    text rendered) is no longer held by the listing, so memory does not grow with the folder."""
    items.reverse()
    while items:
        yield items.pop()


def status_line(code: int) -> str:
    return f"HTTP/1.1 {code} {STATUS_TEXT.get(code, '')}".rstrip()


def parse_body(ctx: Ctx) -> etree._Element | None:
    try:
        return parse_xml(ctx.req.body, ctx.req.settings.limits)
    except BadXml as exc:
        raise DavError(400, text=str(exc)) from exc


def multistatus() -> etree._Element:
    return new_root(qn(DAV, "multistatus"))


def add_response(ms: etree._Element | None, path: str, found: list[tuple[str, Any]], missing: list[str]) -> etree._Element:
    """One DAV:response with a 200 propstat for `found` and a 404 propstat for `missing`, appended to
    `ms` once complete (None: only built, for the caller to append)."""
    resp = etree.Element(qn(DAV, "response"))
    resp.append(href(path))
    if found or not missing:
        stat = etree.SubElement(resp, qn(DAV, "propstat"))
        prop = etree.SubElement(stat, qn(DAV, "prop"))
        for name, value in found:
            el = etree.SubElement(prop, name)
            if isinstance(value, str):
                el.text = xml_safe(value)  # rows stored before the store checked text may hold U+000B
            elif isinstance(value, etree._Element):
                el.append(value)
            else:
                for child in value:
                    el.append(child)
        etree.SubElement(stat, qn(DAV, "status")).text = status_line(200)
    if missing:
        stat = etree.SubElement(resp, qn(DAV, "propstat"))
        prop = etree.SubElement(stat, qn(DAV, "prop"))
        for name in missing:
            etree.SubElement(prop, name)
        etree.SubElement(stat, qn(DAV, "status")).text = status_line(404)
    if ms is not None:
        ms.append(resp)
    return resp


def add_status(ms: etree._Element, path: str, code: int) -> None:
    resp = etree.SubElement(ms, qn(DAV, "response"))
    resp.append(href(path))
    etree.SubElement(resp, qn(DAV, "status")).text = status_line(code)


def describe(ctx: Ctx, ms: etree._Element, res: Resource, names: list[str] | None, names_only: bool = False,
             extra: dict[str, Any] | None = None) -> None:
    """Append the response for `res`; `extra` supplies report-only properties (calendar-data...).

    An object that cannot be rendered is left out (logged and counted by `oxsync.render`)."""
    if isinstance(res, ObjectRes):
        rendered = render_one("dav", res, lambda r: _response_of(ctx, r, names, names_only, extra),
                              folder_id=res.collection.folder_id, object_id=res.object_id)
    else:
        rendered = _response_of(ctx, res, names, names_only, extra)
    if rendered is not None:
        ms.append(rendered)


def _response_of(ctx: Ctx, res: Resource, names: list[str] | None, names_only: bool,
                 extra: dict[str, Any] | None) -> etree._Element:
    wanted = names if names is not None else ALLPROP
    found: list[tuple[str, Any]] = []
    missing: list[str] = []
    for name in wanted:
        value = extra[name](res) if extra is not None and name in extra else get_prop(ctx, res, name)
        if value is None and isinstance(res, Collection):
            value = ctx.dead_props(res.folder_id).get(name)
        if value is None:
            if names is not None:
                missing.append(name)
        else:
            found.append((name, [] if names_only else value))
    return add_response(None, res.path, found, missing)


BODY_PROPS = {qn(CALDAV, "schedule-tag"), qn(CALDAV, "calendar-data"), qn(CARDDAV, "address-data")}
"""Object properties computed from the object's body; every other one needs only its id and version."""


def listing_is_light(names: list[str] | None) -> bool:
    """Members can be listed without loading their objects (allprop has no body property)."""
    return names is None or not BODY_PROPS.intersection(names)


def add_response_status(ms: etree._Element, path: str, names: list[str], code: int,
                        others: list[str] | None = None, other_code: int = 424, description: str = "") -> None:
    resp = etree.SubElement(ms, qn(DAV, "response"))
    resp.append(href(path))
    for group, status in ((names, code), (others or [], other_code)):
        if not group:
            continue
        stat = etree.SubElement(resp, qn(DAV, "propstat"))
        prop = etree.SubElement(stat, qn(DAV, "prop"))
        for name in group:
            etree.SubElement(prop, name)
        etree.SubElement(stat, qn(DAV, "status")).text = status_line(status)
        if description and status == code:
            etree.SubElement(stat, qn(DAV, "responsedescription")).text = xml_safe(description)
