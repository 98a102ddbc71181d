"""What a REPORT asks of each member (RFC 4791 §7.8-7.9, RFC 6352 §8.6-8.7, RFC 6578 §3.2): the
requested property names, and the calendar-data / address-data values served with them (expanded or
limited recurrence sets, the vCard version asked for). Shared by the query, multiget and
sync-collection reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from oxsync.dav import filters
from oxsync.dav.context import Ctx
from oxsync.dav.layout import ObjectRes, member_uids, object_text
from oxsync.dav.xml import CALDAV, CARDDAV, DAV, first, qn
from oxsync.model import Module

C = lambda name: qn(CALDAV, name)  # noqa: E731
CR = lambda name: qn(CARDDAV, name)  # noqa: E731
D = lambda name: qn(DAV, name)  # noqa: E731


def report_props(root: etree._Element) -> tuple[list[str] | None, etree._Element | None]:
    """Requested property names and the calendar-data / address-data request element."""
    prop = first(root, D("prop"))
    if prop is None:
        return None, None
    names = [c.tag for c in prop if isinstance(c.tag, str)]
    data = first(prop, C("calendar-data"))
    if data is None:
        data = first(prop, CR("address-data"))
    return names, data


def data_getters(ctx: Ctx, data_el: etree._Element | None) -> dict[str, Callable[[ObjectRes], Any]]:
    """calendar-data / address-data, with expand (RFC 4791 §9.6.5) and vCard version (RFC 6352 §10.4)."""
    expand = first(data_el, C("expand")) if data_el is not None else None
    limit_set = first(data_el, C("limit-recurrence-set")) if data_el is not None else None
    version: str | None = None  # None: 3.0
    if data_el is not None and data_el.tag == CR("address-data") and data_el.get("version") in ("3.0", "4.0"):
        version = data_el.get("version")
    if data_el is None or data_el.tag == CR("address-data"):
        accept = ctx.req.header("accept")
        if "version=4.0" in accept.replace(" ", ""):
            version = "4.0"

    def calendar_data(res: ObjectRes) -> str | None:
        if res.collection.module == Module.CONTACT:
            return None
        text = object_text(res)
        if expand is not None:
            start, end = filters.time_range(expand)
            text = filters.expand_text(text, res.collection.component, start, end,
                                       ctx.req.settings.limits.max_recurrence_instances)
        elif limit_set is not None:
            start, end = filters.time_range(limit_set)
            text = filters.limit_text(text, res.collection.component, start, end)
        return text

    def address_data(res: ObjectRes) -> str | None:
        if res.collection.module != Module.CONTACT:
            return None
        return object_text(res, version, member_uids(ctx.session))

    return {C("calendar-data"): calendar_data, CR("address-data"): address_data}
