"""Principal reports: principal-property-search, principal-search-property-set (RFC 3744 §9.4-9.5)
and a minimal expand-property (RFC 3253 §3.8)."""

from __future__ import annotations

from typing import Any

from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.layout import DavError, PrincipalCollection
from oxsync.dav.multistatus import XML, Response, add_response, describe, multistatus
from oxsync.dav.props import get_prop
from oxsync.dav.tree import children, resolve
from oxsync.dav.xml import CALDAV, CS, DAV, element, first, qn, tostring

D = lambda name: qn(DAV, name)  # noqa: E731

SEARCHABLE = {
    qn(DAV, "displayname"): "display name",
    qn(CALDAV, "calendar-user-address-set"): "calendar user addresses",
    qn(CS, "email-address-set"): "email addresses",
    qn(CALDAV, "calendar-user-type"): "calendar user type",
}


_STRUCTURE = {qn(DAV, "property-search"), qn(DAV, "prop"), qn(DAV, "apply-to-principal-collection-set")}


def _candidates(ctx: Ctx, root: etree._Element) -> list[Any]:
    """Users by default; groups/resources when searched at their collection, all with
    apply-to-principal-collection-set (clients expect a calendar home on plain search results)."""
    kinds: tuple[str, ...] = ("users",)
    target = resolve(ctx, ctx.req.path)
    if first(root, D("apply-to-principal-collection-set")) is not None:
        kinds = ("users", "groups", "resources")
    elif isinstance(target, PrincipalCollection) and target.kind:
        kinds = (target.kind,)
    found: list[Any] = []
    for kind in kinds:
        found.extend(children(ctx, PrincipalCollection(kind)))
    return found


def _text_values(ctx: Ctx, res: Any, name: str) -> list[str]:
    value = get_prop(ctx, res, name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out = []
    for el in value:
        out.append(el.text or "")
    if name == qn(CALDAV, "calendar-user-address-set"):
        out += [v[7:] for v in out if v.startswith("mailto:")]
    return out


def property_search(ctx: Ctx, root: etree._Element) -> Response:
    tests = [c for c in root if c.tag == D("property-search")]
    anyof = root.get("test", "allof") == "anyof"
    prop = first(root, D("prop"))
    names = [c.tag for c in prop if isinstance(c.tag, str)] if prop is not None else []
    # caldav (python) puts the wanted properties next to an empty DAV:prop: accept them there too
    names += [c.tag for c in root if isinstance(c.tag, str) and c.tag not in _STRUCTURE]
    names = names or [qn(DAV, "displayname"), qn(CALDAV, "calendar-home-set")]
    ms = multistatus()
    count = 0
    for res in _candidates(ctx, root):
        results = []
        for test in tests:
            match_element = first(test, D("match"))
            match = (match_element.text or "") if match_element is not None else ""
            match_type = match_element.get("match-type", "contains") if match_element is not None else "contains"
            props = first(test, D("prop"))
            wanted = [c.tag for c in props if isinstance(c.tag, str)] if props is not None else []
            needle = match.casefold()
            hit = False
            for name in wanted:
                for value in _text_values(ctx, res, name):
                    v = value.casefold()
                    if (match_type == "starts-with" and v.startswith(needle)) or \
                            (match_type == "equals" and v == needle) or (match_type == "contains" and needle in v):
                        hit = True
            results.append(hit)
        if (any(results) if anyof else all(results)):
            describe(ctx, ms, res, names)
            count += 1
            if count >= ctx.req.settings.dav.max_principal_search_results:
                break
    return Response(207, tostring(ms), XML)


def search_property_set(ctx: Ctx, root: etree._Element) -> Response:
    out = element(D("principal-search-property-set"))
    for name, description in SEARCHABLE.items():
        sp = etree.SubElement(out, D("principal-search-property"))
        etree.SubElement(etree.SubElement(sp, D("prop")), name)
        desc = etree.SubElement(sp, D("description"))
        desc.text = description
        desc.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return Response(200, tostring(out), XML)


def expand_property(ctx: Ctx, root: etree._Element) -> Response:
    """Properties of the target; hrefs of a requested property expanded one level."""
    res = resolve(ctx, ctx.req.path)
    ms = multistatus()
    found: list[tuple[str, Any]] = []
    missing: list[str] = []
    for prop in (c for c in root if c.tag == D("property")):
        name = qn(prop.get("namespace") or DAV, prop.get("name") or "")
        value = get_prop(ctx, res, name)
        if value is None:
            missing.append(name)
            continue
        inner = [qn(p.get("namespace") or DAV, p.get("name") or "") for p in prop if p.tag == D("property")]
        if inner and not isinstance(value, str):
            expanded = []
            for h in value:
                if h.tag != D("href"):
                    continue
                try:
                    target = resolve(ctx, h.text or "")
                except DavError:
                    continue
                sub = multistatus()
                describe(ctx, sub, target, inner)
                expanded.extend(list(sub))
            value = expanded
        found.append((name, value))
    add_response(ms, res.path, found, missing)
    return Response(207, tostring(ms), XML)
