"""PROPFIND (RFC 4918 §9.1) and PROPPATCH (§9.2) over the property table (`props.py`)."""

from __future__ import annotations

from lxml import etree

from oxsync.dav.context import MAX_DEAD_VALUE, Ctx
from oxsync.dav.layout import Collection, DavError
from oxsync.dav.members import template_for, write_members
from oxsync.dav.multistatus import (
    XML,
    Response,
    add_response_status,
    describe,
    drain,
    listing_is_light,
    multistatus,
    multistatus_response,
    parse_body,
)
from oxsync.dav.props import ALLPROP, PROPS, FolderChange, privileges
from oxsync.dav.stream import Multistatus
from oxsync.dav.tree import children, resolve
from oxsync.dav.xml import DAV, first, qn, tostring
from oxsync.store.errors import InvalidData, PermissionDenied


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


def propfind(ctx: Ctx) -> Response:
    root = parse_body(ctx)
    if root is not None and root.tag != qn(DAV, "propfind"):
        raise DavError(400, text="expected DAV:propfind")
    names, names_only = requested_props(root)
    res = resolve(ctx, ctx.req.path)
    depth = ctx.req.depth
    out = Multistatus()
    describe(ctx, out.root, res, names, names_only)
    if depth in ("1", "infinity"):
        members = children(ctx, res, light=listing_is_light(names))
        template = template_for(ctx, res, names, names_only) if isinstance(res, Collection) else None
        write_members(ctx, out, drain(members) if isinstance(members, list) else members, template, names,
                      names_only)
    return multistatus_response(out)


def _changes(root: etree._Element) -> list[tuple[str, str | None]]:
    """(property, value) in document order; None removes it (DAV:remove)."""
    changes: list[tuple[str, str | None]] = []
    for op in root:
        prop = first(op, qn(DAV, "prop"))
        for el in (prop if prop is not None else []):
            if not isinstance(el.tag, str):
                continue
            value = (el.text or "").strip() if op.tag == qn(DAV, "set") else None
            changes.append((el.tag, value))
    return changes


def _folder_change(res: Collection, changes: list[tuple[str, str | None]]) -> FolderChange:
    """Settable live properties through their setters, every other one a dead property."""
    change = FolderChange()
    for name, value in changes:
        prop = PROPS.get(name)
        if prop is not None and prop.set is not None:
            prop.set(change, res, value)
        else:
            change.dead[name] = value
    return change


def proppatch(ctx: Ctx) -> Response:
    root = parse_body(ctx)
    if root is None or root.tag != qn(DAV, "propertyupdate"):
        raise DavError(400, text="expected DAV:propertyupdate")
    res = resolve(ctx, ctx.req.path)
    ms = multistatus()
    changes = _changes(root)
    names = [n for n, _ in changes]
    if not isinstance(res, Collection) or qn(DAV, "write-properties") not in privileges(res):
        add_response_status(ms, ctx.req.path, names, 403)
        return Response(207, tostring(ms), XML)
    refused = [n for n, v in changes if (n in PROPS and PROPS[n].protected) or len(v or "") > MAX_DEAD_VALUE]
    if refused:
        add_response_status(ms, res.path, refused, 403, [n for n in names if n not in refused], 424)
        return Response(207, tostring(ms), XML)
    change = _folder_change(res, changes)
    if change.title is not None or change.color is not None:
        try:
            ctx.session.update_folder(res.folder_id, title=change.title, color=change.color)
        except (PermissionDenied, InvalidData) as exc:  # RFC 4918 §9.2: atomic, a status per property
            live = [n for n in names if n in PROPS]  # the settable ones: the protected were refused above
            add_response_status(ms, res.path, live, 403, [n for n in names if n not in PROPS], 424,
                                description=str(exc))
            return Response(207, tostring(ms), XML)
    if change.dead:
        ctx.save_dead_props(res.folder_id, change.dead)
    add_response_status(ms, res.path, names, 200)
    return Response(207, tostring(ms), XML)
