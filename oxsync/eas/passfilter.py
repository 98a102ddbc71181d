"""Which objects a Sync pass sends under the collection's FilterType (MS-ASCMD 2.2.3.67), and what a
pass needs to know of an object to decide it: decoded objects, or `ObjectVersion`s where the filter reads
nothing of the objects' data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from oxsync.eas.protocol import FILTER_DAYS
from oxsync.model import Appointment, Module, Task, TaskStatus
from oxsync.store.bulk import ObjectVersion


def filter_reads_data(module: Module | None, filter_type: int) -> bool:
    """Does `in_window` need the objects' data (task status, event dates) under this filter?
    Not for contacts, nor without a date filter (0) for events, nor for tasks but with FilterType 8."""
    if module == Module.TASK:
        return filter_type == 8
    if module == Module.CALENDAR:
        return filter_type != 8 and FILTER_DAYS.get(filter_type) is not None
    return False


def is_exception(obj: Any) -> bool:
    """A change exception (an object of a series that is not its master), decoded or listed light."""
    if isinstance(obj, ObjectVersion):
        return obj.recurrence_id is not None and obj.recurrence_id != obj.object_id
    return isinstance(obj, Appointment) and obj.recurrence_id is not None and obj.is_exception


def in_window(obj: Any, filter_type: int, now: datetime) -> bool:
    if filter_type == 8:
        return not isinstance(obj, Task) or obj.status != TaskStatus.DONE
    days = FILTER_DAYS.get(filter_type)
    if days is None or not isinstance(obj, Appointment):
        return True
    if obj.is_series:
        return True  # a series may still have occurrences in the window (bounded check would cost an expansion)
    end = obj.end_date or obj.start_date
    if end is None:
        return True
    end_dt = end if isinstance(end, datetime) else datetime.combine(end, datetime.min.time(), UTC)
    return end_dt >= now - timedelta(days=days)
