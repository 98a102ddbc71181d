"""Tasks (ox-webdav-xml.md §2.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum

from oxsync.model.appointment import Participant, Recurrence
from oxsync.model.common import ObjectBase


class TaskStatus(IntEnum):
    NOT_STARTED = 1
    IN_PROGRESS = 2
    DONE = 3
    WAITING = 4
    DEFERRED = 5


class TaskPriority(IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3


@dataclass(kw_only=True)
class Task(ObjectBase):
    title: str = ""
    note: str = ""
    start_date: date | None = None
    end_date: date | None = None
    """The due date."""
    status: TaskStatus = TaskStatus.NOT_STARTED
    priority: TaskPriority = TaskPriority.NORMAL
    percent_completed: int = 0
    date_completed: datetime | None = None
    alarm: datetime | None = None
    """Absolute reminder time (UTC), unlike appointments."""
    target_duration: int | None = None
    actual_duration: int | None = None
    target_costs: Decimal | None = None
    actual_costs: Decimal | None = None
    currency: str = ""
    trip_meter: str = ""
    billing_information: str = ""
    companies: str = ""
    uid: str = ""
    participants: list[Participant] = field(default_factory=list)
    recurrence: Recurrence | None = None
    delete_exceptions: list[date] = field(default_factory=list)
    change_exceptions: list[date] = field(default_factory=list)
