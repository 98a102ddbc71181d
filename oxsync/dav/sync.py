"""sync-collection (RFC 6578) from the store's revisions.

A removed member is reported by the name it had: the store's tombstone keeps it (NameCache holds the
names of members this node wrote); when neither knows it (a tombstone older than the names kept in
tombstones) the client is sent to a full resync.

Tokens: `http://oxsync/ns/sync/<rev>` where rev is the collection's newest change revision. A reply
cut at DAV:limit carries a checkpoint token `<base>.<rev0>.<after>`: "changes since base, members
with id > after still to come, rev0 = the revision when paging began". Paging delivers members in id
order; the final page hands out rev0, so anything changed while paging is reported again next time
(duplicates, never misses). Unknown, malformed or pruned tokens get 403 DAV:valid-sync-token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from typing import Any
from urllib.parse import quote

from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.layout import (
    SYNC_PREFIX,
    Collection,
    DavError,
    ObjectRes,
    default_name,
)
from oxsync.dav.members import template_for, write_members
from oxsync.dav.multistatus import Response, drain, listing_is_light, multistatus_response
from oxsync.dav.reportdata import data_getters, report_props
from oxsync.dav.stream import Multistatus
from oxsync.dav.tree import resolve
from oxsync.dav.xml import DAV, first, qn
from oxsync.store.errors import ResyncRequired

D = lambda name: qn(DAV, name)  # noqa: E731
_TOKEN = re.compile(r"^(\d{1,18})(?:\.(\d{1,18})\.(\d{1,18}))?$")


Member = tuple[int, ObjectRes | str]
"""(object id, its resource, or the href of a removed member)."""


def parse_token(text: str) -> tuple[int, int | None, int]:
    """(base revision, paging rev0 or None, last id delivered)."""
    text = text.strip()
    if not text:
        return 0, None, 0
    if not text.startswith(SYNC_PREFIX):
        raise DavError(403, D("valid-sync-token"), "unknown sync token")
    found = _TOKEN.match(text[len(SYNC_PREFIX):])
    if found is None:
        raise DavError(403, D("valid-sync-token"), "malformed sync token")
    base = int(found.group(1))
    if found.group(2) is None:
        return base, None, 0
    return base, int(found.group(2)), int(found.group(3))


def _limit(root: etree._Element, ctx: Ctx) -> int:
    nresults = first(first(root, D("limit")), D("nresults"))
    default = ctx.req.settings.dav.sync_collection_default_limit
    if nresults is None:
        return default
    try:
        value = int((nresults.text or "").strip())
    except ValueError as exc:
        raise DavError(400, text="bad nresults") from exc
    if value <= 0:
        raise DavError(403, D("number-of-matches-within-limits"), "nresults must be positive")
    return min(value, default)


def sync_collection(ctx: Ctx, root: etree._Element) -> Response:
    res = resolve(ctx, ctx.req.path)
    if not isinstance(res, Collection):
        raise DavError(403, D("supported-report"), "sync-collection needs a collection")
    level_element = first(root, D("sync-level"))
    level = (level_element.text or "1").strip() if level_element is not None else "1"
    if level not in ("1", "infinite"):
        raise DavError(400, text="bad sync-level")
    token_el = first(root, D("sync-token"))
    base, rev0, after = parse_token(token_el.text or "" if token_el is not None else "")
    limit = _limit(root, ctx)
    names, data_el = report_props(root)
    extra = data_getters(ctx, data_el)
    current_rev = ctx.session.folder_revision(res.folder_id)[0]
    if rev0 is None:
        rev0 = current_rev
    if base > current_rev or rev0 > current_rev:
        raise DavError(403, D("valid-sync-token"), "token from the future")
    out = Multistatus()
    ms = out.root
    template = template_for(ctx, res, names, extra=extra)

    def removed(path: str) -> None:
        resp = etree.SubElement(ms, D("response"))
        etree.SubElement(resp, D("href")).text = path
        etree.SubElement(resp, D("status")).text = "HTTP/1.1 404 Not Found"

    if base == 0:  # read from the store in id ranges above `after`: a page costs what it delivers
        source = ctx.members(res, data_el is None and listing_is_light(names), after, orphans_last=False)
        delivered = _counted(islice(source, limit))
        write_members(ctx, out, delivered, template, names, extra=extra)
        truncated = next(source, None) is not None
        last = delivered.last
    else:
        members = sorted((m for m in _changes_since(ctx, res, base) if m[0] > after), key=lambda m: m[0])
        truncated = len(members) > limit
        last = members[limit - 1][0] if truncated else 0
        del members[limit:]
        write_members(ctx, out, (member for _, member in drain(members)), template, names, extra=extra,
                      removed=removed)
    if truncated:
        resp = etree.SubElement(ms, D("response"))
        etree.SubElement(resp, D("href")).text = res.path
        etree.SubElement(resp, D("status")).text = "HTTP/1.1 507 Insufficient Storage"
        etree.SubElement(etree.SubElement(resp, D("error")), D("number-of-matches-within-limits"))
        token = f"{SYNC_PREFIX}{base}.{rev0}.{last}"
    else:
        token = f"{SYNC_PREFIX}{rev0}"
    etree.SubElement(ms, D("sync-token")).text = token
    return multistatus_response(out)


class _counted:
    """The members as they pass, remembering the id of the last one."""

    def __init__(self, members: Iterator[ObjectRes]) -> None:
        self.members = members
        self.last = 0

    def __iter__(self) -> Iterator[ObjectRes]:
        for member in self.members:
            self.last = member.object_id
            yield member


def _changes_since(ctx: Ctx, res: Collection, base: int) -> list[Member]:
    """Members changed since revision `base` as resources, removed ones by the href they had."""
    try:
        delta = ctx.session.object_delta(res.folder_id, base)
    except ResyncRequired as exc:
        raise DavError(403, D("valid-sync-token"), str(exc)) from exc
    changed = _resources(ctx, res, delta.changed)
    members: list[Member] = [(m.object_id, m) for m in changed]
    present = {m.object_id for m in changed}
    for object_id in delta.gone:
        if object_id in present:
            continue
        name = ctx.req.names.get(ctx.tenant_id, object_id)
        if name is None:
            recorded = delta.gone_names.get(object_id)  # the store's tombstone keeps it (any node)
            if recorded is None:
                # a tombstone from before names were kept: the client must resync fully rather
                # than keep a stale resource
                raise DavError(403, D("valid-sync-token"), "a removed member is no longer known by name")
            name = recorded or default_name(object_id, res.module)
        members.append((object_id, res.path + quote(name)))  # as the resource's own href encodes it
    return members


def _resources(ctx: Ctx, res: Collection, changed: list[Any]) -> list[ObjectRes]:
    """Changed objects as resources: a changed exception reports its series' resource."""
    out: dict[int, ObjectRes] = {}
    for found in ctx.resources_for(res, changed).values():
        out[found.object_id] = found
    return list(out.values())
