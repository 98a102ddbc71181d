"""PROPFIND and PROPPATCH of contacts, appointments and tasks (reference §1.4, §1.5, §2.3-2.5).

Runs on the store pool inside one transaction (`session`). What must hold: a delta is what the store's
change log says (so objects that became invisible come back as DELETE); an update or delete without
`last_modified` writes nothing ([1004]); a stale one writes nothing ([1000]).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from lxml import etree

from oxsync.model import Appointment, Contact, Module, Task
from oxsync.model.common import ObjectBase
from oxsync.model.timeutil import date_from_ms
from oxsync.ox import errors as E
from oxsync.ox.errors import OxFailure
from oxsync.ox.fields import attachments_xml, server_fields
from oxsync.ox.fields_calendar import appointment_xml, parse_confirm, read_appointment
from oxsync.ox.fields_contact import contact_xml, read_contact
from oxsync.ox.fields_task import read_task, task_xml
from oxsync.ox.query import Query
from oxsync.ox.wire import el, response, text
from oxsync.recurrence import occurrence_date
from oxsync.render import render_each, render_one
from oxsync.store.errors import NotFound, ResyncRequired
from oxsync.store.session import UserSession

CONTROL = frozenset({"method", "object_id", "folder_id", "folder", "last_modified", "client_id", "confirm",
                     "confirm_message", "recurrence_position", "recurrence_date_position", "object_status",
                     "created_by", "modified_by", "creation_time", "recurrence_id"})


@dataclass(frozen=True)
class ObjectModule:
    servlet: str
    module: Module
    cls: type
    write: Callable[..., str]
    read: Callable[..., None]
    scheduled: bool


MODULES = {
    "contacts": ObjectModule("contacts", Module.CONTACT, Contact, contact_xml,
                             lambda o, g, c, d: read_contact(o, g, c), False),
    "calendar": ObjectModule("calendar", Module.CALENDAR, Appointment, appointment_xml, read_appointment, True),
    "tasks": ObjectModule("tasks", Module.TASK, Task, task_xml, read_task, True),
}


# ------------------------------------------------------------------ PROPFIND


def object_response(spec: ObjectModule, obj: ObjectBase, folder_id: int) -> str:
    prop = el("object_status", "CREATE") + spec.write(obj) + server_fields(obj, folder_id) + attachments_xml(obj)
    return response(obj.object_id, prop)


def object_responses(spec: ObjectModule, objs: Sequence[ObjectBase], folder_id: int) -> list[str]:
    """CREATE responses of `objs`; one that cannot be rendered is left out (logged and counted)."""
    return render_each("ox", objs, lambda o: object_response(spec, o, folder_id), folder_id=folder_id)


def single_response(spec: ObjectModule, obj: ObjectBase, folder_id: int) -> str:
    """The response of one object read by id; one that cannot be rendered is a clean per-object error."""
    rendered = render_one("ox", obj, lambda o: object_response(spec, o, folder_id), folder_id=folder_id)
    if rendered is None:
        raise OxFailure(E.CONFLICT, f"object {obj.object_id} cannot be served")
    return rendered


def deleted_response(object_id: int, ms: int) -> str:
    return response(object_id, el("object_id", object_id) + el("last_modified", ms) + el("object_status", "DELETE"))


def _check_folder(session: UserSession, spec: ObjectModule, folder_id: int) -> None:
    access = session.get_folder(folder_id)
    if access.folder.module != spec.module:
        raise OxFailure(E.CONFLICT, f"folder {folder_id} does not hold {spec.servlet}")


def is_light(q: Query) -> bool:
    """A cheap PROPFIND (one object, or a delta since a sync): not the first listing of a folder."""
    return (q.object_id is not None and not q.modes) or q.lastsync > 0


def propfind(session: UserSession, spec: ObjectModule, q: Query) -> list[str]:
    try:
        if q.object_id is not None and not q.modes:
            return [_single(session, spec, q)]
        if q.folder_id is None:
            raise OxFailure(E.MISSING_FIELD, "folder_id")
        _check_folder(session, spec, q.folder_id)
        return _sync(session, spec, q.folder_id, q)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one error response
        status, description, _ = E.outcome_of(exc)
        return [response(0, "", status, description)]


def _sync(session: UserSession, spec: ObjectModule, folder_id: int, q: Query) -> list[str]:
    deletes: list[str] = []
    creates: list[str] = []
    wants_changes = "modified" in q.modes or "deleted" in q.modes
    if wants_changes and q.lastsync > 0:
        try:
            delta = session.object_delta(folder_id, session.rev_for_ms(q.lastsync))
        except ResyncRequired:
            delta = None
        if delta is not None:
            if "deleted" in q.modes:
                deletes = [deleted_response(i, delta.last_modified) for i in delta.gone]
            if "modified" in q.modes:
                creates = object_responses(spec, delta.changed, folder_id)
        elif "modified" in q.modes:
            creates = object_responses(spec, session.list_objects(folder_id), folder_id)
    elif "modified" in q.modes:
        creates = object_responses(spec, session.list_objects(folder_id), folder_id)
    out = deletes + creates
    if "list" in q.modes:
        ids = "".join(el("id", o.object_id) for o in session.list_objects(folder_id))
        out.append(response(0, el("object_status", "LIST") + f"<ox:object_list>{ids}</ox:object_list>"))
    return out


def _single(session: UserSession, spec: ObjectModule, q: Query) -> str:
    assert q.object_id is not None
    if q.folder_id is not None:
        _check_folder(session, spec, q.folder_id)
        return single_response(spec, session.get_object(q.folder_id, q.object_id), q.folder_id)
    for access in session.list_folders():  # KDE sends no folder: look in the caller's folders of the module
        if access.folder.module == spec.module and access.folder.id is not None:
            try:
                return single_response(spec, session.get_object(access.folder.id, q.object_id), access.folder.id)
            except NotFound:
                continue
    raise NotFound(f"object {q.object_id} not found")


# ------------------------------------------------------------------ PROPPATCH


def _int(given: dict[str, etree._Element], name: str, required: bool = False) -> int | None:
    if name not in given or not text(given[name]).strip():
        if required:
            raise OxFailure(E.MISSING_FIELD, name)
        return None
    try:
        number = int(text(given[name]).strip())
    except ValueError:
        raise OxFailure(E.CONFLICT, f"invalid number in element {name}") from None
    if abs(number) > 2**63 - 1:  # e.g. a 400-digit folder_id: no such id can exist
        raise OxFailure(E.INVALID_INPUT, f"number out of range in element {name}")
    return number


def proppatch(session: UserSession, spec: ObjectModule, given: dict[str, etree._Element],
              chained: dict[int, tuple[int, int]]) -> tuple[int, str]:
    """One `D:set`: returns (href, prop XML); raises for a failure (nothing written)."""
    method = text(given.get("method")).strip().upper() or "SAVE"
    object_id = _int(given, "object_id")
    folder_id = _int(given, "folder_id")
    has_data = any(name not in CONTROL for name in given)
    if method == "SAVE" and object_id is None:
        if folder_id is None:
            raise OxFailure(E.MISSING_FIELD, "folder_id")
        obj = spec.cls()
        _read(spec.read, obj, given, True)
        obj.uid = obj.uid or str(uuid.uuid4())  # every dialect needs a stable UID (OX 2011+ made one too)
        created = session.create_object(folder_id, obj)
        return created.stored_id, _answer(spec, created)
    if object_id is None:
        raise OxFailure(E.MISSING_FIELD, "object_id")
    if method == "CONFIRM":
        if not spec.scheduled:
            raise OxFailure(E.CONFLICT, "confirm is for appointments and tasks")
        where = folder_id if folder_id is not None else _int(given, "folder", required=True)
        assert where is not None
        confirmed = session.confirm(where, object_id, parse_confirm(text(given.get("confirm"))),
                                    text(given.get("confirm_message")))
        return object_id, _answer(spec, confirmed)
    expected = _int(given, "last_modified", required=True)
    assert expected is not None
    sent = expected
    if object_id in chained and expected >= chained[object_id][0]:  # chained saves of one object (§1.5)
        expected = max(expected, chained[object_id][1])
    if folder_id is None:
        raise OxFailure(E.MISSING_FIELD, "folder_id")
    if method == "DELETE":
        original = _occurrence(session, spec, given, folder_id, object_id, expected)
        if original is not None:
            session.delete_occurrence(folder_id, object_id, original)
        else:
            session.delete_object(folder_id, object_id, expected)
        return object_id, el("object_id", object_id)
    if method != "SAVE":
        raise OxFailure(E.CONFLICT, f"unknown method {method[:20]}")
    original = _occurrence(session, spec, given, folder_id, object_id, expected)
    if original is not None:
        changed = _change_occurrence(session, folder_id, object_id, original, given)
        return changed.stored_id, _answer(spec, changed)
    target = _int(given, "folder")
    current = session.get_object(folder_id, object_id)
    saved = current
    if has_data:
        _read(spec.read, current, given, False)
        saved = session.update_object(folder_id, current, expected)
        expected = None  # checked once, before the first write
    if target is not None and target != folder_id:
        saved = session.move_object(folder_id, object_id, target, expected)
    elif not has_data:
        session.require_unchanged(folder_id, expected, object_id=object_id)
    chained[object_id] = (sent, saved.last_modified or 0)
    return object_id, _answer(spec, saved)


def _read(read: Callable[..., None], obj: object, given: dict[str, etree._Element], creating: bool) -> None:
    """Apply the client's fields; a value no model can hold (a start of 10^17 ms, a year past 9999) is
    invalid input ([1100]), whichever field converter met it."""
    try:
        read(obj, given, creating, True)
    except (ValueError, OverflowError, OSError) as exc:
        raise OxFailure(E.INVALID_INPUT, f"value out of range ({type(exc).__name__})") from None


def _answer(spec: ObjectModule, obj: ObjectBase) -> str:
    prop = el("object_id", obj.object_id) + el("last_modified", obj.last_modified)
    if spec.scheduled:
        prop += el("recurrence_id", getattr(obj, "recurrence_id", None) or 0)
    return prop


def _occurrence(session: UserSession, spec: ObjectModule, given: dict[str, etree._Element], folder_id: int,
                object_id: int, expected: int | None) -> date | None:
    """The original date of the occurrence an operation on a series master addresses, else None."""
    if spec.cls is not Appointment or not ({"recurrence_position", "recurrence_date_position"} & given.keys()):
        return None
    session.require_unchanged(folder_id, expected, object_id=object_id)
    master = session.get_object(folder_id, object_id)
    assert isinstance(master, Appointment)
    ms = _int(given, "recurrence_date_position")
    if ms is not None:
        return date_from_ms(ms)
    position = _int(given, "recurrence_position")
    if not master.is_series or master.start_date is None or position is None or position < 1:
        raise OxFailure(E.CONFLICT, "recurrence_position needs a series")
    assert master.recurrence is not None
    found = occurrence_date(master.start_date, master.recurrence, master.timezone, position)
    if found is None:
        raise NotFound(f"series {object_id} has no occurrence {position}")
    return found


def _change_occurrence(session: UserSession, folder_id: int, series_id: int, original: date,
                       given: dict[str, etree._Element]) -> Appointment:
    master = session.get_object(folder_id, series_id)
    assert isinstance(master, Appointment)
    changes = copy.deepcopy(master)
    changes.object_id = None
    changes.attachments = []
    if master.start_date is not None and master.end_date is not None:  # the occurrence's own times
        duration = _as_dt(master.end_date) - _as_dt(master.start_date)
        start = _as_dt(master.start_date)
        start = datetime.combine(original, start.timetz()) if not master.full_time else datetime.combine(original, time(), UTC)
        changes.start_date = start.date() if master.full_time else start
        changes.end_date = (start + duration).date() if master.full_time else start + duration
    changes.recurrence = None
    _read(read_appointment, changes, given, True)
    changes.recurrence = None
    return session.change_occurrence(folder_id, series_id, original, changes)


def _as_dt(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(), UTC)


__all__ = ["MODULES", "ObjectModule", "propfind", "proppatch"]
