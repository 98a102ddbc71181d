"""Multistatus building, PROPFIND and PROPPATCH."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from oxsync.dav.context import MAX_DEAD_VALUE, Ctx
from oxsync.dav.layout import Collection, DavError, ObjectRes
from oxsync.dav.props import ALLPROP, PROPS, get_prop, privileges
from oxsync.dav.tree import children, resolve
from oxsync.dav.xml import (
    APPLE,
    CALDAV,
    CARDDAV,
    DAV,
    BadXml,
    element,
    first,
    href,
    new_root,
    parse_xml,
    qn,
    tostring,
)
from oxsync.render import render_one, xml_safe
from oxsync.store.errors import InvalidData, PermissionDenied

STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 403: "Forbidden", 404: "Not Found",
               409: "Conflict", 412: "Precondition Failed", 424: "Failed Dependency", 507: "Insufficient Storage"}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


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


def requested_props(root: etree._Element | None) -> tuple[list[str] | None, bool]:
    """(property names or None for allprop, names-only flag)."""
    if root is None:
        return None, False
    if first(root, qn(DAV, "propname")) is not None:
        return None, True
    prop = first(root, qn(DAV, "prop"))
    if prop is None:
        names: list[str] = []
        include = first(root, qn(DAV, "include"))
        if first(root, qn(DAV, "allprop")) is not None:
            return (None if include is None else ALLPROP + [c.tag for c in include if isinstance(c.tag, str)]), False
        raise DavError(400, text="PROPFIND needs prop, allprop or propname")
    names = [c.tag for c in prop if isinstance(c.tag, str)]
    return names, False


def describe(ctx: Ctx, ms: etree._Element, res: Any, names: list[str] | None, names_only: bool = False,
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


def _response_of(ctx: Ctx, res: Any, names: list[str] | None, names_only: bool,
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


def propfind(ctx: Ctx) -> Response:
    root = parse_body(ctx)
    if root is not None and root.tag != qn(DAV, "propfind"):
        raise DavError(400, text="expected DAV:propfind")
    names, names_only = requested_props(root)
    res = resolve(ctx, ctx.req.path)
    depth = ctx.req.depth
    ms = multistatus()
    describe(ctx, ms, res, names, names_only)
    if depth in ("1", "infinity"):
        for child in children(ctx, res, light=listing_is_light(names)):
            describe(ctx, ms, child, names, names_only)
    return Response(207, tostring(ms), "application/xml; charset=utf-8")


STORED = {qn(DAV, "displayname"), qn(APPLE, "calendar-color")}
"""Properties kept on the folder itself (visible to every dialect); other non-live properties are
dead properties kept per user."""


def proppatch(ctx: Ctx) -> Response:
    root = parse_body(ctx)
    if root is None or root.tag != qn(DAV, "propertyupdate"):
        raise DavError(400, text="expected DAV:propertyupdate")
    res = resolve(ctx, ctx.req.path)
    ms = multistatus()
    changes: list[tuple[str, str | None]] = []
    for op in root:
        prop = first(op, qn(DAV, "prop"))
        for el in (prop if prop is not None else []):
            if not isinstance(el.tag, str):
                continue
            value = (el.text or "").strip() if op.tag == qn(DAV, "set") else None
            changes.append((el.tag, value))
    if not isinstance(res, Collection) or qn(DAV, "write-properties") not in privileges(res):
        add_response_status(ms, ctx.req.path, [n for n, _ in changes], 403)
        return Response(207, tostring(ms), "application/xml; charset=utf-8")
    refused = [n for n, v in changes if (n in PROPS and n not in STORED) or len(v or "") > MAX_DEAD_VALUE]
    if refused:
        add_response_status(ms, res.path, refused, 403, [n for n, _ in changes if n not in refused], 424)
        return Response(207, tostring(ms), "application/xml; charset=utf-8")
    title = color = None
    dead: dict[str, str | None] = {}
    default = res.access.folder.default_folder
    for name, value in changes:
        if name == qn(DAV, "displayname") and not default:
            title = value or None
        elif name == qn(APPLE, "calendar-color"):
            color = value or ""
        else:  # a default folder keeps its name: the user's own display name is a dead property
            dead[name] = value
    if title is not None or color is not None:
        try:
            ctx.session.update_folder(res.folder_id, title=title, color=color)
        except (PermissionDenied, InvalidData) as exc:  # RFC 4918 §9.2: atomic, a status per property
            failed = [n for n, _ in changes if n in STORED]
            add_response_status(ms, res.path, failed, 403, [n for n, _ in changes if n not in STORED], 424,
                                description=str(exc))
            return Response(207, tostring(ms), "application/xml; charset=utf-8")
    if dead:
        ctx.save_dead_props(res.folder_id, dead)
    add_response_status(ms, res.path, [n for n, _ in changes], 200)
    return Response(207, tostring(ms), "application/xml; charset=utf-8")


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


def set_props_from(ctx: Ctx, root: etree._Element | None) -> tuple[str | None, str | None, list[str] | None]:
    """displayname, color and component names from a MKCALENDAR/extended MKCOL body."""
    title = color = None
    comps: list[str] | None = None
    resourcetypes: list[str] = []
    for s in (root if root is not None else []):
        prop = first(s, qn(DAV, "prop"))
        for el in (prop if prop is not None else []):
            if el.tag == qn(DAV, "displayname"):
                title = (el.text or "").strip() or None
            elif el.tag == qn(APPLE, "calendar-color"):
                color = (el.text or "").strip() or None
            elif el.tag.endswith("}supported-calendar-component-set"):
                comps = [(c.get("name") or "").upper() for c in el if isinstance(c.tag, str)]
            elif el.tag == qn(DAV, "resourcetype"):
                resourcetypes = [c.tag for c in el if isinstance(c.tag, str)]
    if resourcetypes:
        comps = (comps or []) + ["@" + t for t in resourcetypes]
    return title, color, comps


__all__ = ["Response", "add_response", "add_status", "describe", "element", "multistatus", "parse_body",
           "propfind", "proppatch"]
