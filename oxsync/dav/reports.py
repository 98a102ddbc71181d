"""REPORTs on one collection: calendar-query, calendar-multiget, addressbook-query, addressbook-multiget
and free-busy-query. sync-collection is sync.py, the principal reports principals.py; `resource.REPORTS`
dispatches them all by the body's root element."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import unquote, urlsplit

from lxml import etree

from oxsync.dav import filters
from oxsync.dav.context import Ctx
from oxsync.dav.freebusy import HIDDEN_FBTYPE, vfreebusy
from oxsync.dav.layout import Collection, DavError, ObjectRes, object_text
from oxsync.dav.multistatus import Response, add_status, describe, drain, multistatus_response
from oxsync.dav.reportdata import data_getters, report_props
from oxsync.dav.stream import Multistatus
from oxsync.dav.tree import resolve
from oxsync.dav.xml import CALDAV, CARDDAV, DAV, first, qn
from oxsync.metrics import DAV_QUERY_OBJECTS as QUERY_OBJECTS
from oxsync.model import Module
from oxsync.model.common import ObjectKind
from oxsync.render import note_skipped
from oxsync.store import budget

C = lambda name: qn(CALDAV, name)  # noqa: E731
CR = lambda name: qn(CARDDAV, name)  # noqa: E731
D = lambda name: qn(DAV, name)  # noqa: E731


def _collection(ctx: Ctx) -> Collection:
    res = resolve(ctx, ctx.req.path)
    if not isinstance(res, Collection):
        raise DavError(403, D("supported-report"), "this report needs a calendar or address book")
    return res


def calendar_query(ctx: Ctx, root: etree._Element) -> Response:
    collection = _collection(ctx)
    if collection.module == Module.CONTACT:
        raise DavError(403, D("supported-report"))
    names, data_el = report_props(root)
    filter_el = first(root, C("filter"))
    if filter_el is None:
        raise DavError(403, C("valid-filter"), "calendar-query needs a filter")
    top = first(filter_el, C("comp-filter"))
    if top is not None and (top.get("name") or "").upper() != "VCALENDAR":
        raise DavError(403, C("valid-filter"), "the outer comp-filter must be VCALENDAR")
    out = Multistatus()
    extra = data_getters(ctx, data_el)
    window = filters.query_window(top)
    decided: set[int] = set()
    members: Iterable[ObjectRes]
    if window is None:
        members = ctx.members(collection)
    elif top is not None and filters.index_decidable(top) == "VEVENT":
        found, decided = ctx.members_decided(collection, *filters.decided_window(top), ObjectKind.APPOINTMENT.value)
        members = drain(found)
    else:
        members = drain(ctx.members_in_range(collection, *window, light=True))
    for res in members:
        if res.object_id in decided and not res.exceptions:
            budget.check_time()  # as calendar_matches does per object
            QUERY_OBJECTS.labels("index").inc()
            describe(ctx, out.root, res, names, extra=extra)
            out.step()
            continue
        QUERY_OBJECTS.labels("parsed").inc()
        try:
            ok = filters.calendar_matches(object_text(res), filter_el)
        except DavError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unreadable object must not fail the query
            note_skipped("dav", exc, object_id=res.object_id, folder_id=collection.folder_id)
            ok = False
        if ok:
            describe(ctx, out.root, res, names, extra=extra)
            out.step()
    return multistatus_response(out)


def _hrefs(root: etree._Element, ctx: Ctx) -> list[str]:
    found = [(h.text or "").strip() for h in root if h.tag == D("href")]
    limit = ctx.req.settings.limits.max_multiget_hrefs
    if len(found) > limit:
        raise DavError(403, D("number-of-matches-within-limits"), f"more than {limit} hrefs")
    return found


def multiget(ctx: Ctx, root: etree._Element) -> Response:
    collection = _collection(ctx)
    names, data_el = report_props(root)
    extra = data_getters(ctx, data_el)
    out = Multistatus()
    wanted: list[tuple[str, str | None]] = []  # (href as sent, resource name or None if outside)
    for raw in _hrefs(root, ctx):
        path = unquote(urlsplit(raw).path)
        inside = path.startswith(collection.path.rstrip("/") + "/") or unquote(collection.path) in path
        wanted.append((raw, path.rstrip("/").rsplit("/", 1)[-1] if inside else None))
    found = ctx.find_objects(collection, [name for _, name in wanted if name is not None], light=True)
    for raw, name in wanted:
        res = found.pop(name, None) if name is not None else None  # popped: described, then let go
        if res is None:
            add_status(out.root, raw, 404)
        else:
            describe(ctx, out.root, res, names, extra=extra)
        out.step()
    return multistatus_response(out)


def addressbook_query(ctx: Ctx, root: etree._Element) -> Response:
    collection = _collection(ctx)
    if collection.module != Module.CONTACT:
        raise DavError(403, D("supported-report"))
    names, data_el = report_props(root)
    filter_el = first(root, CR("filter"))
    limit_el = first(first(root, CR("limit")), CR("nresults"))
    limit = None
    if limit_el is not None:
        try:
            limit = max(0, int((limit_el.text or "").strip()))
        except ValueError as exc:
            raise DavError(400, text="bad nresults") from exc
    extra = data_getters(ctx, data_el)
    out = Multistatus()
    ms = out.root
    count = 0
    truncated = False
    for res in ctx.members(collection):
        try:
            matches = filters.card_matches(object_text(res), filter_el)
        except DavError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unreadable object must not fail the query
            note_skipped("dav", exc, object_id=res.object_id, folder_id=collection.folder_id)
            matches = False
        if matches:
            if limit is not None and count >= limit:
                truncated = True
                break
            describe(ctx, ms, res, names, extra=extra)
            out.step()
            count += 1
    if truncated:
        resp = etree.SubElement(ms, D("response"))
        etree.SubElement(resp, D("href")).text = collection.path
        etree.SubElement(resp, D("status")).text = "HTTP/1.1 507 Insufficient Storage"
        etree.SubElement(etree.SubElement(resp, D("error")), D("number-of-matches-within-limits"))
    return multistatus_response(out)


def free_busy_query(ctx: Ctx, root: etree._Element) -> Response:
    collection = _collection(ctx)
    if collection.module != Module.CALENDAR:
        raise DavError(403, D("supported-report"))
    tr = first(root, C("time-range"))
    if tr is None:
        raise DavError(400, C("valid-filter"), "free-busy-query needs a time-range")
    start, end = filters.time_range(tr)
    periods: list[tuple[datetime, datetime, str]] = []
    for res in ctx.members_in_range(collection, *filters.window_ms(start, end)):
        try:
            periods.extend(filters.busy_periods(object_text(res), start, end))
        except DavError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unreadable object must not fail the report
            note_skipped("dav", exc, object_id=res.object_id, folder_id=collection.folder_id)
    for begin, finish, shown_as in ctx.session.hidden_busy(collection.folder_id, start, end):  # others' private
        periods.append((begin, finish, HIDDEN_FBTYPE.get(shown_as, "BUSY")))
    body = vfreebusy(start, end, sorted(periods))
    return Response(200, body.encode("utf-8"), "text/calendar; charset=utf-8")
