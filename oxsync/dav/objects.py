"""GET, PUT, DELETE and MOVE of calendar/address objects; MKCALENDAR, MKCOL and DELETE of collections.

What must hold: strong ETags from last_modified; If-Match / If-None-Match give 412 before anything is
written; a refused PUT (bad data, wrong component, duplicate UID, too large) changes nothing (the
whole request is one transaction and the error propagates); soft appointment conflicts are ignored,
hard ones (resource double-booked) are refused with a precondition.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.inbox import InboxItem, dismiss
from oxsync.dav.layout import (
    Collection,
    DavError,
    Home,
    ObjectRes,
    body_addresses_and_uid,
    member_uids,
    object_text,
    resolver,
    schedule_tag,
    written_text,
)
from oxsync.dav.multistatus import Response, parse_body
from oxsync.dav.preparse import AsWritten, body_text, preparsed_results, render_written, written_ahead
from oxsync.dav.tree import resolve
from oxsync.dav.xml import APPLE, CALDAV, CARDDAV, DAV, first, qn
from oxsync.formats import kept
from oxsync.formats.ical import CalendarItem, ICalLimitError, parse_calendar
from oxsync.formats.vcard import VCardError, card_inputs, contact_to_vcard, parse_vcards, source_version
from oxsync.formats.vcard_rows import MemberInfo, ResolveUid
from oxsync.model import Appointment, Module, Task
from oxsync.model.appointment import Confirmation, ParticipantKind
from oxsync.model.folder import PRIVATE_ROOT
from oxsync.render import render_one
from oxsync.store.errors import AppointmentConflict, Conflict, InvalidData, NotFound, PermissionDenied

C = lambda name: qn(CALDAV, name)  # noqa: E731
CR = lambda name: qn(CARDDAV, name)  # noqa: E731
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+\-]{0,99}$")


# ------------------------------------------------------------------------------ conditions


def check_conditions(ctx: Ctx, current: ObjectRes | None) -> None:
    """RFC 7232 If-Match / If-None-Match against the current representation (412 on failure)."""
    if_match = ctx.req.header("if-match").strip()
    if_none = ctx.req.header("if-none-match").strip()
    etag = current.etag if current is not None else None
    if if_match:
        tags = [t.strip() for t in if_match.split(",")]
        if etag is None or ("*" not in tags and etag not in tags):
            raise DavError(412, text="If-Match failed")
    schedule_match = ctx.req.header("if-schedule-tag-match").strip()
    # RFC 6638 §8.3: the organizer's version the client based its change on
    if schedule_match and (current is None or schedule_tag(current) != schedule_match):
        raise DavError(412, text="If-Schedule-Tag-Match failed")
    if if_none:
        tags = [t.strip() for t in if_none.split(",")]
        if etag is not None and ("*" in tags or etag in tags):
            if ctx.req.method in ("GET", "HEAD"):
                raise DavError(304)
            raise DavError(412, text="If-None-Match failed")


def vcard_version(ctx: Ctx) -> str | None:
    """The version the client asks for in Accept, or None (3.0)."""
    accept = ctx.req.header("accept").lower().replace(" ", "")
    return "4.0" if "version=4.0" in accept else "3.0" if "version=3.0" in accept else None


# ------------------------------------------------------------------------------ GET / HEAD


def get(ctx: Ctx) -> Response:
    res = resolve(ctx, ctx.req.path)
    if isinstance(res, InboxItem):
        return Response(200, res.text().encode("utf-8"), "text/calendar; charset=utf-8", {"ETag": res.etag})
    if not isinstance(res, ObjectRes):
        if isinstance(res, Collection | Home):
            return Response(200, b"", "text/plain; charset=utf-8")
        raise DavError(405, text="GET is served for objects only")
    check_conditions(ctx, res)
    if res.collection.module == Module.CONTACT:
        version = vcard_version(ctx)
        body = _rendered(res, lambda r: object_text(r, version, member_uids(ctx.session)))
        ctype = f"text/vcard; charset=utf-8; version={source_version(body) or '3.0'}"
    else:
        body, ctype = _rendered(res, object_text), "text/calendar; charset=utf-8"
    headers = {"ETag": res.etag}
    if res.collection.module == Module.CALENDAR:
        headers["Schedule-Tag"] = schedule_tag(res)
    return Response(200, body.encode("utf-8"), ctype, headers)


def _rendered(res: ObjectRes, render: Any) -> str:
    """The body of one resource; one that cannot be rendered (logged and counted) is a clean 409 for
    this resource alone, never a 500."""
    body = render_one("dav", res, render, folder_id=res.collection.folder_id, object_id=res.object_id)
    if body is None:
        raise DavError(409, text="this object cannot be rendered (the server logged it)")
    return str(body)


# ------------------------------------------------------------------------------ PUT


def _parse_calendar_body(ctx: Ctx, collection: Collection) -> CalendarItem:
    text = _text(ctx)
    try:
        results = preparsed_results(ctx.req, ctx.session, text)  # parsed before the write (SQLite)
        if results is None:  # every address in one statement, with the objects holding the body's UID
            addresses, uid = body_addresses_and_uid(text)
            principals = resolver(ctx.session, addresses, uid=uid)
            results = parse_calendar(text, resolve=principals, limits=ctx.req.settings.limits)
    except ICalLimitError as exc:
        raise DavError(403, C("max-resource-size"), str(exc)) from exc
    if not _looks_like(text, "VCALENDAR"):
        raise DavError(403, C("valid-calendar-data"), "not an iCalendar object")
    if _HOSTILE_RULE.search(text):
        raise DavError(403, C("valid-calendar-object-resource"), "sub-daily recurrence rules are not accepted")
    errors = [r for r in results if not isinstance(r, CalendarItem)]
    items = [r for r in results if isinstance(r, CalendarItem)]
    if errors:
        raise DavError(403, C("valid-calendar-data"), f"line {errors[0].line}: {errors[0]}")
    if not items:
        if re.search(r"^BEGIN:(VJOURNAL|VEVENT|VTODO)", text, re.M | re.I):
            raise DavError(403, C("supported-calendar-component"), "component not supported here")
        raise DavError(403, C("valid-calendar-object-resource"), "no VEVENT or VTODO")
    if len({(i.kind, i.uid) for i in items}) > 1 or len(items) > 1:
        raise DavError(403, C("valid-calendar-object-resource"), "one UID per resource")
    item = items[0]
    if item.kind != collection.component:
        raise DavError(403, C("supported-calendar-component"), f"this collection holds {collection.component}")
    return item


_HOSTILE_RULE = re.compile(r"^(?:RRULE|EXRULE)[;:].*(?:FREQ=(?:SECONDLY|MINUTELY|HOURLY)|BY(?:SECOND|MINUTE|HOUR)=[^;]*,)",
                           re.M | re.I)
"""Sub-daily rules: a sub-daily FREQ, or several times per day. One BYHOUR/BYMINUTE value is a time of day."""
_CONTENT_LINE = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)?[;:]")


def _looks_like(text: str, kind: str) -> bool:
    """BEGIN/END of `kind` around lines that are all content lines (RFC 5545 §3.1 / RFC 6350 §3.3)."""
    lines = [line for line in re.split(r"\r\n|\n|\r", text) if line and line[0] not in " \t"]
    return bool(lines) and lines[0].strip().upper() == f"BEGIN:{kind}" and \
        lines[-1].strip().upper() == f"END:{kind}" and all(_CONTENT_LINE.match(line) for line in lines)


def _text(ctx: Ctx) -> str:
    return body_text(ctx.req.body)


def _conflict_href(ctx: Ctx, collection: Collection, uid: str, name: str, current: ObjectRes | None) -> None:
    """403 when another resource of the collection holds `uid`. `current` (the resource being rewritten,
    same UID): its own objects are not read again (they are no conflict)."""
    own = () if current is None else {current.object_id, *(e.object_id for e in current.exceptions)}
    other = ctx.session.find_by_uid(collection.folder_id, uid, own)
    if other is not None:
        res = ctx.object_res(collection, other)
        if res.name != name:
            cond = CR("no-uid-conflict") if collection.module == Module.CONTACT else C("no-uid-conflict")
            raise DavError(403, cond, f"UID {uid} already used by {res.path}", extra=res.path)


def put(ctx: Ctx) -> Response:
    target = resolve(ctx, ctx.req.path, allow_missing=True)
    if isinstance(target, tuple):
        _, collection, name = target
        if not isinstance(collection, Collection):
            raise DavError(409, text="no such collection")
        current = None
    elif isinstance(target, ObjectRes):
        collection, name, current = target.collection, target.name, target
    else:
        raise DavError(405, text="PUT needs an object URL")
    limit = ctx.req.settings.dav.max_resource_bytes
    module = collection.module
    if len(ctx.req.body) > limit:
        cond = CR("max-resource-size") if module == Module.CONTACT else C("max-resource-size")
        raise DavError(403, cond, f"resource larger than {limit} bytes")
    check_conditions(ctx, current)
    if "/" in name or not name or len(name) > 255:
        raise DavError(400, text="bad resource name")
    written: AsWritten | None = None
    try:
        if module == Module.CONTACT:
            created_id, written = _put_contact(ctx, collection, name, current)
        else:
            created_id, written = _put_calendar(ctx, collection, name, current)
    except AppointmentConflict as exc:
        raise DavError(403, C("no-conflict"), str(exc)) from exc
    except InvalidData as exc:
        cond = CR("valid-address-data") if module == Module.CONTACT else C("valid-calendar-data")
        raise DavError(403, cond, str(exc)) from exc
    except Conflict as exc:
        cond = CR("no-uid-conflict") if module == Module.CONTACT else C("no-uid-conflict")
        raise DavError(403, cond, str(exc)) from exc
    created = created_id is not None
    if created_id is not None:
        object_id = created_id
    else:
        assert current is not None  # an update
        object_id = current.object_id
    # as a GET would load it, decoded from what the store just wrote (not read back; read if not known)
    found = ctx.session.written_object(collection.folder_id, object_id)
    saved = None if found is None else ctx.resources_for(collection, [found]).get(object_id)
    headers: dict[str, str] = {}
    if saved is not None and written is not None:
        written_text(saved, *written)  # not rendered again when it reads as written
    if saved is not None:
        sent = _text(ctx)
        as_written = source_version(sent) if module == Module.CONTACT else None  # what this client reads
        if kept.equivalent(object_text(saved, as_written, member_uids(ctx.session)), sent):
            headers["ETag"] = saved.etag  # else the store changed it: no strong ETag (RFC 4791 §5.3.4)
        if module == Module.CALENDAR:
            headers["Schedule-Tag"] = schedule_tag(saved)
    return Response(201 if created else 204, b"", headers=headers)


def _put_contact(ctx: Ctx, collection: Collection, name: str, current: ObjectRes | None
                 ) -> tuple[int | None, AsWritten | None]:
    """The id of the created contact, None when `current` was updated; and what was written (before the
    store saw it), None for a version not served as written."""
    text = _text(ctx)
    if not _looks_like(text, "VCARD"):
        raise DavError(403, CR("valid-address-data"), "not a vCard")
    try:
        cards = list(parse_vcards(text, limits=ctx.req.settings.limits, resolve_uid=_member_resolver(ctx)))
    except VCardError as exc:
        raise DavError(403, CR("max-resource-size"), str(exc)) from exc
    if len(cards) != 1 or cards[0].contact is None:
        why = cards[0].error if cards and cards[0].error else "exactly one vCard is required"
        raise DavError(403, CR("valid-address-data"), why or "")
    contact = cards[0].contact
    if not contact.uid:
        contact.uid = name.rsplit(".", 1)[0]
    _same_uid(collection, current, contact.uid)
    _conflict_href(ctx, collection, contact.uid, name, current)
    contact.resource_name = name
    version = source_version(text)
    written: AsWritten | None = None
    if version is not None:  # 2.1 is served as 3.0: nothing to keep verbatim
        baseline = contact_to_vcard(contact, version, uid_for_member=member_uids(ctx.session))
        kept.keep(contact.extra, text, baseline)
        written = card_inputs(contact), baseline
    if current is None:
        saved = ctx.session.create_object(collection.folder_id, contact)
        ctx.req.names.remember(ctx.tenant_id, saved.object_id, name)
        return int(saved.object_id), written
    contact.object_id = current.object_id
    ctx.session.update_object(collection.folder_id, contact)
    return None, written


def _member_resolver(ctx: Ctx) -> ResolveUid:
    """Distribution list member UID -> a contact of a visible address book."""
    def resolve_uid(uid: str) -> MemberInfo | None:
        for access in ctx.folders():
            if access.folder.module == Module.CONTACT:
                found = ctx.session.find_by_uid(access.folder.id, uid)
                if found is not None:
                    email = found.email1 or found.email2 or found.email3 or ""
                    return found.object_id, access.folder.id, email, found.display_name or ""
        return None
    return resolve_uid


def _standalone(item: CalendarItem) -> CalendarItem:
    """Overrides without their master (an attendee invited to some occurrences only): the first becomes
    a plain appointment, the others are stored as its instances; the kept text keeps RECURRENCE-ID."""
    first, *others = item.exceptions
    first.recurrence_date_position = None
    first.recurrence_position = None
    return CalendarItem(item.kind, item.uid, item.line, first, others)


def _same_uid(collection: Collection, current: ObjectRes | None, uid: str) -> None:
    """Overwriting a resource must not change its UID (RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1)."""
    if current is not None and current.master.uid and current.master.uid != uid:
        cond = CR("no-uid-conflict") if collection.module == Module.CONTACT else C("no-uid-conflict")
        raise DavError(409, cond, f"{current.path} holds UID {current.master.uid}, not {uid}", extra=current.path)


def _put_calendar(ctx: Ctx, collection: Collection, name: str, current: ObjectRes | None
                  ) -> tuple[int | None, AsWritten]:
    """The id of the created resource (its master, or the first of master-less overrides), None when
    `current` was updated; and what was written (before the store saw it)."""
    item = _parse_calendar_body(ctx, collection)
    orphans = item.master is None
    if orphans:
        item = _standalone(item)
    master: Any = item.master
    uid = item.uid
    _same_uid(collection, current, uid)
    _conflict_href(ctx, collection, uid, name, current)
    master.resource_name = name  # never rendered
    written = written_ahead(ctx.req, item) or render_written(item, _text(ctx), orphans)  # sets master.uid = uid
    if isinstance(master, Appointment):
        master.ignore_conflicts = True
    if current is not None and _attendee_reply(ctx, collection, current, master):
        return None, written
    if current is None:
        saved = ctx.session.create_object(collection.folder_id, master)
        ctx.req.names.remember(ctx.tenant_id, saved.object_id, name)
        series_id = saved.object_id
        old_exceptions: dict[Any, Any] = {}
    else:
        master.object_id = current.object_id
        if isinstance(master, Appointment) and isinstance(current.master, Appointment):
            master.recurrence_id = None if orphans else current.master.recurrence_id
        ctx.session.update_object(collection.folder_id, master)
        series_id = current.object_id
        old_exceptions = {e.recurrence_date_position: e for e in current.exceptions}
    if isinstance(master, Appointment):
        for exception in item.exceptions:
            exception.ignore_conflicts = True
            exception.resource_name = ""
            day = exception.recurrence_date_position
            if day is None:
                raise DavError(403, C("valid-calendar-object-resource"), "override without a usable RECURRENCE-ID")
            old = old_exceptions.pop(day, None)
            if old is not None:
                exception.object_id = old.object_id
            try:
                if orphans:
                    _save_instance(ctx, collection, series_id, exception)
                else:
                    ctx.session.change_occurrence(collection.folder_id, series_id, day, exception)
            except NotFound as exc:
                raise DavError(403, C("valid-calendar-object-resource"), str(exc)) from exc
        for old in old_exceptions.values():
            ctx.session.delete_object(collection.folder_id, old.object_id)
        if orphans and item.exceptions:  # the first lists the others, so the resource holds them all
            first = ctx.session.get_object(collection.folder_id, series_id)
            first.recurrence_id = series_id  # heads its family, as a series master does
            first.change_exceptions = sorted(e.recurrence_date_position for e in item.exceptions)
            first.ignore_conflicts = True
            ctx.session.update_object(collection.folder_id, first)
    return (series_id if current is None else None), written


def _save_instance(ctx: Ctx, collection: Collection, first_id: int, instance: Appointment) -> None:
    """A further occurrence of a master-less resource: its own appointment, linked to the first."""
    instance.recurrence_id = first_id
    if instance.object_id is None:
        ctx.session.create_object(collection.folder_id, instance)
    else:
        ctx.session.update_object(collection.folder_id, instance)


def _attendee_reply(ctx: Ctx, collection: Collection, current: ObjectRes, new: Any) -> bool:
    """An attendee saving an organizer's meeting changes only their own PARTSTAT (RFC 6638 §3.2.2)."""
    obj = current.master
    if not isinstance(obj, Appointment | Task) or not obj.participants:
        return False
    organizer = getattr(obj, "organizer_id", None) or obj.created_by
    if organizer == ctx.user_id:
        return False
    mine = next((p for p in new.participants if p.kind == ParticipantKind.USER and p.entity == ctx.user_id), None)
    if mine is None:
        return False
    before = next((p for p in obj.participants if p.kind == ParticipantKind.USER and p.entity == ctx.user_id), None)
    if before is None:
        return False
    if before.confirmation != mine.confirmation:
        ctx.session.confirm(collection.folder_id, current.object_id, Confirmation(mine.confirmation), mine.message)
    return True


# ------------------------------------------------------------------------------ DELETE / MOVE


def delete(ctx: Ctx) -> Response:
    res = resolve(ctx, ctx.req.path)
    if isinstance(res, InboxItem):
        dismiss(ctx, res)
        return Response(204)
    if isinstance(res, ObjectRes):
        check_conditions(ctx, res)
        if not getattr(res.master, "is_series", True):  # occurrences without a series go with the resource
            for instance in res.exceptions:
                ctx.session.delete_object(res.collection.folder_id, instance.object_id)
        ctx.session.delete_object(res.collection.folder_id, res.object_id)
        return Response(204)
    if isinstance(res, Collection):
        ctx.session.delete_folder(res.folder_id)
        return Response(204)
    raise DavError(403, text="this resource cannot be deleted")


def move(ctx: Ctx) -> Response:
    res = resolve(ctx, ctx.req.path)
    if not isinstance(res, ObjectRes):
        raise DavError(403, text="only objects can be moved")
    check_conditions(ctx, res)
    destination = ctx.req.header("destination")
    if not destination:
        raise DavError(400, text="Destination header required")
    target = resolve(ctx, destination, allow_missing=True)
    overwrite = ctx.req.header("overwrite", "T").strip().upper() != "F"
    if isinstance(target, ObjectRes):
        if not overwrite:
            raise DavError(412, text="destination exists")
        if target.object_id == res.object_id:
            return Response(204)
        ctx.session.delete_object(target.collection.folder_id, target.object_id)
        collection, name, existed = target.collection, target.name, True
    elif isinstance(target, tuple) and isinstance(target[1], Collection):
        collection, name, existed = target[1], target[2], False
    else:
        raise DavError(409, text="destination collection does not exist")
    if collection.module != res.collection.module:
        raise DavError(403, text="destination holds another kind of object")
    moved = ctx.session.move_object(res.collection.folder_id, res.object_id, collection.folder_id)
    if (moved.resource_name or "") != name:
        moved.resource_name = name
        if isinstance(moved, Appointment):
            moved.ignore_conflicts = True
        ctx.session.update_object(collection.folder_id, moved)
    ctx.req.names.remember(ctx.tenant_id, res.object_id, name)
    return Response(204 if existed else 201)


# ------------------------------------------------------------------------------ collections


def make_collection(ctx: Ctx, calendar: bool) -> Response:
    target = resolve(ctx, ctx.req.path, allow_missing=True)
    if not isinstance(target, tuple) or not isinstance(target[1], Home):
        raise DavError(405 if not isinstance(target, tuple) else 409, text="collection exists or bad parent")
    _, home, segment = target
    if not _SEGMENT.match(segment) or segment in ("inbox", "outbox"):
        raise DavError(403, text="unsupported collection name")
    root = parse_body(ctx)
    title, color, comps = set_props_from(ctx, root)
    types = [c[1:] for c in (comps or []) if c.startswith("@")]
    comps = [c for c in (comps or []) if not c.startswith("@")]
    if home.kind == "addressbooks":
        if calendar or (types and CR("addressbook") not in types):
            raise DavError(403, qn(DAV, "valid-resourcetype"), "only address books here")
        module = Module.CONTACT
    else:
        if not calendar and types and C("calendar") not in types:
            raise DavError(403, qn(DAV, "valid-resourcetype"), "only calendars here")
        if comps and not set(comps) & {"VEVENT", "VTODO"}:
            raise DavError(403, C("supported-calendar-component"), "only VEVENT or VTODO collections")
        module = Module.TASK if comps and "VEVENT" not in comps else Module.CALENDAR
    try:
        created = ctx.session.create_folder(PRIVATE_ROOT, title or segment, module, color=color)
    except PermissionDenied as exc:
        raise DavError(403, qn(DAV, "need-privileges"), str(exc)) from exc
    ctx.save_alias(home.kind, segment, created.folder.id)
    return Response(201, b"", headers={"Cache-Control": "no-cache"})


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
            elif isinstance(el.tag, str) and el.tag.endswith("}supported-calendar-component-set"):
                comps = [(c.get("name") or "").upper() for c in el if isinstance(c.tag, str)]
            elif el.tag == qn(DAV, "resourcetype"):
                resourcetypes = [c.tag for c in el if isinstance(c.tag, str)]
    if resourcetypes:
        comps = (comps or []) + ["@" + t for t in resourcetypes]
    return title, color, comps
