"""The DAV:responses of a collection's object members, written from one template per listing.

A PROPFIND Depth 1 or a sync-collection asking for getetag (and the like) gives every member the same
response but for its href, ETag and last-modified: the other properties of an object member depend on
its collection only (`props.Property.per_member` says which do not). So the response is built and
serialized once, through the same code as any other (`multistatus.add_response`, lxml), with markers
in place of the per-member values, and each member's response is that text with its values put in:
no element is built and no property getter runs per member. Byte for byte what `describe` writes
(tests/test_dav_listing_work.py compares them for every property).

A listing asking for anything else per member (calendar-data, schedule-tag, propname) gets no
template: `template_for` answers None and the caller describes each member.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.layout import Collection, ObjectRes
from oxsync.dav.multistatus import add_response, describe
from oxsync.dav.props import ALLPROP, PROPS, get_prop
from oxsync.dav.stream import Multistatus
from oxsync.dav.xml import DAV, new_root, qn
from oxsync.store.budget import check_time
from oxsync.store.bulk import ObjectVersion

D = lambda name: qn(DAV, name)  # noqa: E731

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.~/-]*\Z")
"""Names `urllib.parse.quote` leaves as they are (its always-safe characters and "/")."""
_MARKS = re.compile("([\ue000-\ue0ff])")
_HREF_MARK = "\ue000"


def http_date(ms: int) -> str:
    """`email.utils.format_datetime(datetime.fromtimestamp(ms / 1000, UTC), usegmt=True)`, about ten
    times cheaper (RFC 9110 IMF-fixdate)."""
    t = time.gmtime(ms / 1000)
    if not 1 <= t.tm_year <= 9999:
        raise ValueError(f"no HTTP date for {ms} ms")  # as datetime: the member is left out
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def _etag(object_id: int, last_modified: int) -> str:
    return f'"{object_id}-{last_modified}"'  # ObjectRes.etag


def _last_modified(object_id: int, last_modified: int) -> str:
    return http_date(last_modified)


ItemValue = Callable[[int, int], str]
"""(object id, last modified in ms) -> a per-member property's text."""
ITEM_VALUES: dict[str, ItemValue] = {D("getetag"): _etag, D("getlastmodified"): _last_modified}
"""Per-member properties a template fills in from the member's id and version (plain ASCII text,
nothing to escape); any other per-member property needs the member described on its own."""


class MemberTemplate:
    """The serialized DAV:response of an object member of `collection` with its per-member values as
    %s slots (`render`)."""

    def __init__(self, collection: Collection, text: str, values: list[ItemValue]) -> None:
        self.base = collection.path
        self.text = text
        self.values = values

    def render(self, res: ObjectRes) -> str:
        name = res.name
        href = self.base + (name if _SAFE_NAME.match(name) else quote(name))
        master = res.master
        object_id = int(master.object_id)
        last_modified = res.last_modified if res.exceptions else (master.last_modified or 0)
        return self.text % (href, *[value(object_id, last_modified) for value in self.values])


def template_for(ctx: Ctx, collection: Collection, names: list[str] | None, names_only: bool = False,
                 extra: dict[str, Any] | None = None) -> MemberTemplate | None:
    """The template of the members' responses, or None when a requested property varies per member
    in a way a template cannot fill in (see the module's docstring)."""
    if names_only:
        return None
    wanted = names if names is not None else ALLPROP
    if extra and any(name in extra for name in wanted):
        return None
    probe = ObjectRes(collection, "", ObjectVersion(0, "", 0, None))
    found: list[tuple[str, Any]] = []
    missing: list[str] = []
    values: list[ItemValue] = []
    for name in wanted:
        if name in ITEM_VALUES:
            values.append(ITEM_VALUES[name])
            found.append((name, chr(0xE000 + len(values))))
            continue
        prop = PROPS.get(name)
        if prop is not None and prop.per_member:
            return None
        value = get_prop(ctx, probe, name)  # the same for every object member of the collection
        if value is None:
            if names is not None:
                missing.append(name)
        else:
            found.append((name, value))
    if len(values) >= 0xFF:
        return None
    root = new_root(D("multistatus"))
    root.append(add_response(None, _HREF_MARK, found, missing))
    document = etree.tostring(root, encoding=str)
    body = document[document.index(">") + 1:document.rindex("</")]
    pieces = _MARKS.split(body)
    marks = pieces[1::2]
    if marks != [chr(0xE000 + k) for k in range(len(values) + 1)]:
        return None  # a constant value holding a marker character: describe each member
    return MemberTemplate(collection, "%s".join(p.replace("%", "%%") for p in pieces[0::2]), values)


CHECK_EVERY = 200
"""Members written between two checks of the request's time budget."""


def write_members(ctx: Ctx, out: Multistatus, members: Iterable[Any], template: MemberTemplate | None,
                  names: list[str] | None, names_only: bool = False, extra: dict[str, Any] | None = None,
                  removed: Callable[[str], None] | None = None) -> None:
    """Append the response of each member: an object member from `template` when there is one (a
    member it cannot render, e.g. a name that cannot be encoded, is described instead, which skips it
    with a log line), any other resource through `describe`; a str member is the href of a removed
    member, written by `removed`."""
    count = 0
    for res in members:
        if isinstance(res, str):
            assert removed is not None
            removed(res)
            out.step()
            continue
        if template is not None and isinstance(res, ObjectRes):
            count += 1
            if count % CHECK_EVERY == 0:
                check_time()
            try:
                text = template.render(res)
            except Exception:  # noqa: BLE001 - described below, which logs and skips it
                pass
            else:
                out.write(text)
                continue
        describe(ctx, out.root, res, names, names_only, extra)
        out.step()
