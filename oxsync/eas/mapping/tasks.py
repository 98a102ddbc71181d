"""Tasks (MS-ASTASK) <-> `oxsync.model.Task`, as one table.

Start and due dates are dates; EAS sends them twice (local-as-UTC and real UTC): both are read,
the local form wins, both are written. Complete maps to status DONE; reminders are absolute times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from oxsync.eas.mapping.common import (
    ATTACHMENTS_ROW,
    BIRTHDAY,
    ClassMapping,
    Conv,
    Field,
    MapContext,
    Row,
    Special,
    body_row,
    categories_row,
    enum_conv,
    extended,
    parse_datetime,
)
from oxsync.eas.mapping.recurrence import recurrence_in, recurrence_out, until_plain
from oxsync.eas.wbxml import E, Element
from oxsync.model import Task, TaskPriority, TaskStatus

P = "Tasks"
IMPORTANCE = {TaskPriority.LOW: "0", TaskPriority.NORMAL: "1", TaskPriority.HIGH: "2"}


def _complete_out(obj: Task, ctx: MapContext) -> list[Element]:
    done = obj.status == TaskStatus.DONE
    out = [E(f"{P}:Complete", "1" if done else "0")]
    if done:
        out.append(E(f"{P}:DateCompleted", extended(obj.date_completed or datetime.now(UTC))))
    return out


def _complete_in(obj: Task, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    done = elem is not None and elem.value_text().strip() == "1"
    if done:
        obj.status, obj.percent_completed = TaskStatus.DONE, 100
        completed = ctx.data.findtext(f"{P}:DateCompleted") if ctx.data is not None else None
        obj.date_completed = parse_datetime(completed) if completed else (obj.date_completed or datetime.now(UTC))
    elif obj.status == TaskStatus.DONE:
        obj.status, obj.percent_completed, obj.date_completed = TaskStatus.NOT_STARTED, 0, None


def _reminder_out(obj: Task, ctx: MapContext) -> list[Element]:
    if obj.alarm is None:
        return [E(f"{P}:ReminderSet", "0")]
    return [E(f"{P}:ReminderSet", "1"), E(f"{P}:ReminderTime", extended(obj.alarm))]


def _reminder_in(obj: Task, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    when = ctx.data.findtext(f"{P}:ReminderTime") if ctx.data is not None else None
    if elem is not None and elem.value_text().strip() == "1" and when:
        obj.alarm = parse_datetime(when)
    elif elem is not None or clear:
        obj.alarm = None


def _recurrence_out(obj: Task, ctx: MapContext) -> list[Element]:
    out, _ = until_plain()
    start = obj.start_date or obj.end_date
    extra = [E(f"{P}:Start", out(start))] if start else []
    elems = recurrence_out(obj.recurrence, P, out, extra)
    for elem in elems:
        elem.append(E(f"{P}:Regenerate", "0"))
        elem.append(E(f"{P}:DeadOccur", "0"))
    return elems


def _recurrence_in(obj: Task, elem: Element | None, ctx: MapContext, clear: bool) -> None:
    if elem is None:
        obj.recurrence = None
        return
    _, into = until_plain()
    obj.recurrence = recurrence_in(elem, P, into)
    start = elem.findtext(f"{P}:Start")
    if start and obj.start_date is None:
        obj.start_date = into(start)


ROWS: tuple[Row, ...] = (
    ATTACHMENTS_ROW,
    body_row("note"),
    categories_row(P),
    Special((f"{P}:Complete", f"{P}:DateCompleted"), _complete_out, _complete_in),
    Field(f"{P}:UtcDueDate", "end_date", BIRTHDAY),
    Field(f"{P}:DueDate", "end_date", BIRTHDAY),
    Field(f"{P}:Importance", "priority", enum_conv(IMPORTANCE, TaskPriority.NORMAL, TaskPriority.NORMAL)),
    Special((f"{P}:Recurrence",), _recurrence_out, _recurrence_in),
    Special((f"{P}:ReminderSet", f"{P}:ReminderTime"), _reminder_out, _reminder_in),
    Field(f"{P}:Sensitivity", "private_flag", Conv(lambda v: "2" if v else "0", lambda t: t.strip() in ("2", "3"), False)),
    Field(f"{P}:UtcStartDate", "start_date", BIRTHDAY),
    Field(f"{P}:StartDate", "start_date", BIRTHDAY),
    Field(f"{P}:Subject", "title"),
)

TASKS = ClassMapping("Tasks", ROWS, Task)


def fill_defaults(obj: Any) -> Any:
    return obj
