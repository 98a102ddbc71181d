"""Tasks <-> `ox:` elements (reference §2.5): the calendar base plus task fields.

Differences that must hold: start/end are dates (00:00 UTC), `alarm` is an absolute time in ms (not
minutes), `percent_completed` also accepted as KDE's `percent_complete`.
"""

from __future__ import annotations

from lxml import etree

from oxsync.model import Task, TaskPriority, TaskStatus
from oxsync.model.timeutil import to_ms
from oxsync.ox.errors import INVALID_INPUT, OxFailure
from oxsync.ox.fields import (
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    INT,
    INT0,
    Field,
    bool_out,
    common_fields,
    read_fields,
    write_fields,
)
from oxsync.ox.fields_calendar import (
    participants_xml,
    read_participants,
    read_recurrence,
    recurrence_xml,
)
from oxsync.ox.wire import el, text

TABLE: tuple[Field, ...] = (
    Field("title", "title"),
    Field("note", "note"),
    Field("start_date", "start_date", DATE),
    Field("end_date", "end_date", DATE),
    Field("percent_completed", "percent_completed", INT0, aliases=("percent_complete",)),
    Field("date_completed", "date_completed", DATETIME),
    Field("target_duration", "target_duration", INT),
    Field("actual_duration", "actual_duration", INT),
    Field("target_costs", "target_costs", DECIMAL),
    Field("actual_costs", "actual_costs", DECIMAL),
    Field("currency", "currency"),
    Field("trip_meter", "trip_meter"),
    Field("billing_information", "billing_information"),
    Field("companies", "companies"),
    Field("uid", "uid"),
    *common_fields(with_color=False),
)

ENUMS = (("status", TaskStatus, TaskStatus.NOT_STARTED), ("priority", TaskPriority, TaskPriority.NORMAL))


def task_xml(t: Task) -> str:
    return "".join((
        write_fields(t, TABLE),
        el("status", int(t.status)), el("priority", int(t.priority)),
        el("alarm_flag", bool_out(t.alarm is not None)), el("alarm", to_ms(t.alarm)),
        recurrence_xml(t),
        participants_xml(t.participants),
    ))


def read_task(t: Task, given: dict[str, etree._Element], creating: bool, has_data: bool) -> None:
    read_fields(t, TABLE, given)
    for name, enum, default in ENUMS:
        if name in given:
            raw = text(given[name]).strip()
            try:
                setattr(t, name, enum(int(raw)) if raw else default)
            except ValueError:
                raise OxFailure(INVALID_INPUT, f"{name} out of range: {raw[:20]!r}") from None
    if "alarm" in given:
        t.alarm = DATETIME.inp(text(given["alarm"]))
    if "alarm_flag" in given and not BOOL.inp(text(given["alarm_flag"])):
        t.alarm = None
    if "participants" in given:
        t.participants = read_participants(given["participants"])
    read_recurrence(t, given, creating, has_data)
