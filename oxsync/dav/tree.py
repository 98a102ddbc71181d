"""Resolving request paths to resources and listing a resource's members, for one request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from oxsync.dav.context import Ctx
from oxsync.dav.inbox import Resource, find_inbox_item, inbox_items
from oxsync.dav.layout import (
    BASE,
    HOME_MODULES,
    Box,
    Collection,
    DavError,
    Home,
    PrincipalCollection,
    Root,
)


def split_path(path: str) -> list[str]:
    """Path segments below /dav (URL-decoded); raises 404 outside /dav."""
    path = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    if path.rstrip("/") in ("", BASE) and (path in ("", "/") or path.startswith(BASE)):
        return [] if path.startswith(BASE) else ["<root>"]
    if not path.startswith(BASE + "/"):
        raise DavError(404, text="not a DAV path")
    segments = [unquote(s) for s in path[len(BASE) + 1:].split("/") if s]
    if any(s in (".", "..") or "/" in s for s in segments):
        raise DavError(404)
    return segments


def resolve(ctx: Ctx, path: str, *, allow_missing: bool = False) -> Any:
    """The resource at `path`; with `allow_missing`, a missing last segment gives ("missing", parent, name)."""
    segments = split_path(path)
    if segments in ([], ["<root>"]):
        return Root()
    top, rest = segments[0], segments[1:]
    if top == "principals":
        if not rest:
            return PrincipalCollection("")
        if rest[0] not in ("users", "groups", "resources") or len(rest) > 2:
            raise DavError(404)
        if len(rest) == 1:
            return PrincipalCollection(rest[0])
        found = ctx.principal(rest[0], rest[1])
        if found is None:
            raise DavError(404)
        return found
    if top in HOME_MODULES:
        if not rest:
            raise DavError(404)
        home = ctx.home(top)
        if rest[0].lower() != home.login.lower():
            raise DavError(403 if ctx.principal("users", rest[0]) else 404, text="only your own home is served")
        if len(rest) == 1:
            return home
        segment = rest[1]
        if top == "calendars" and segment in ("inbox", "outbox"):
            box = Box(home, segment)
            if len(rest) == 2:
                return box
            item = find_inbox_item(ctx, box, rest[2]) if segment == "inbox" and len(rest) == 3 else None
            if item is None:
                raise DavError(404)
            return item
        collection = ctx.collection(home, segment)
        if collection is None:
            if allow_missing and len(rest) == 2:
                return ("missing", home, segment)
            raise DavError(404)
        if len(rest) == 2:
            return collection
        if len(rest) > 3:
            raise DavError(404)
        member = ctx.find_object(collection, rest[2])
        if member is None:
            if allow_missing:
                return ("missing", collection, rest[2])
            raise DavError(404)
        return member
    raise DavError(404)


def children(ctx: Ctx, res: Resource, light: bool = False) -> Iterable[Resource]:
    """Members listed by a Depth: 1 PROPFIND (`light`: object members as `ObjectVersion`s); a
    collection's are read page by page as they are consumed (`Ctx.members`)."""
    if isinstance(res, Root):
        me = ctx.me()
        return [PrincipalCollection(""), Home("calendars", me.login or me.name, ctx.user_id),
                Home("addressbooks", me.login or me.name, ctx.user_id)]
    if isinstance(res, PrincipalCollection):
        if not res.kind:
            return [PrincipalCollection(k) for k in ("users", "groups", "resources")]
        if res.kind == "users":
            return [p for u in ctx.users() if (p := ctx.principal("users", u.login)) is not None]
        if res.kind == "groups":
            return [p for g in ctx.groups() if (p := ctx.principal("groups", g.name)) is not None]
        return [p for r in ctx.resources() if (p := ctx.principal("resources", r.name)) is not None]
    if isinstance(res, Home):
        found: list[Resource] = list(ctx.collections(res))
        if res.kind == "calendars":
            found += [Box(res, "inbox"), Box(res, "outbox")]
        return found
    if isinstance(res, Collection):
        return ctx.members(res, light)
    if isinstance(res, Box) and res.kind == "inbox":
        return list[Resource](inbox_items(ctx, res))
    return []
