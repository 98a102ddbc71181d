"""Appointments, participants and OX-style recurrence patterns (ox-webdav-xml.md §2.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum, StrEnum

from oxsync.model.common import ObjectBase


class ShownAs(IntEnum):
    RESERVED = 1
    TEMPORARY = 2
    ABSENT = 3
    FREE = 4


class Confirmation(IntEnum):
    NONE = 0
    ACCEPT = 1
    DECLINE = 2
    TENTATIVE = 3


class ParticipantKind(IntEnum):
    """OX participant type numbers."""

    USER = 1
    GROUP = 2
    RESOURCE = 3
    RESOURCE_GROUP = 4
    EXTERNAL_USER = 5
    EXTERNAL_GROUP = 6


class RecurrenceType(StrEnum):
    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"


# OX weekday bitmask (Sunday 1 ... Saturday 64)
SUNDAY, MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY = (1, 2, 4, 8, 16, 32, 64)
LAST_WEEK_OF_MONTH = 5


@dataclass
class Recurrence:
    """An OX recurrence pattern. `month` is 0-based (0 = January) as in OX.

    `until` is the last day (inclusive); `occurrences` is the alternative count; neither = endless.
    """

    type: RecurrenceType = RecurrenceType.NONE
    interval: int = 1
    days: int | None = None
    day_in_month: int | None = None
    month: int | None = None
    until: date | None = None
    occurrences: int | None = None


@dataclass
class Participant:
    """Internal user, group, resource or external address, with per-user state for users."""

    kind: ParticipantKind
    entity: int = 0
    email: str = ""
    display_name: str = ""
    confirmation: Confirmation = Confirmation.NONE
    message: str = ""
    folder_id: int | None = None
    """For internal users: the folder the object sits in for that user."""
    alarm: int | None = None
    """For internal users: their own reminder (minutes before start; tasks: see Task.alarm)."""

    @property
    def is_external(self) -> bool:
        return self.kind in (ParticipantKind.EXTERNAL_USER, ParticipantKind.EXTERNAL_GROUP)


@dataclass(kw_only=True)
class Appointment(ObjectBase):
    title: str = ""
    location: str = ""
    note: str = ""
    start_date: datetime | date | None = None
    """UTC-aware datetime; a plain date when `full_time`."""
    end_date: datetime | date | None = None
    """Exclusive end; for a full-day event the day after the last day."""
    full_time: bool = False
    shown_as: ShownAs = ShownAs.RESERVED
    timezone: str = "UTC"
    """IANA zone the series is anchored in (recurrence expands in local time)."""
    alarm: int | None = None
    """Minutes before start, None = no reminder (the caller's own reminder for meetings)."""
    uid: str = ""
    organizer: str = ""
    organizer_id: int | None = None
    participants: list[Participant] = field(default_factory=list)
    recurrence: Recurrence | None = None
    delete_exceptions: list[date] = field(default_factory=list)
    change_exceptions: list[date] = field(default_factory=list)
    recurrence_id: int | None = None
    """On a change exception: the series master's id (on a master, its own id)."""
    recurrence_position: int | None = None
    recurrence_date_position: date | None = None
    ignore_conflicts: bool = False
    notify_participants: bool = False
    sequence: int = 0

    @property
    def is_series(self) -> bool:
        return self.recurrence is not None and self.recurrence.type != RecurrenceType.NONE

    @property
    def is_exception(self) -> bool:
        return self.recurrence_id is not None and self.recurrence_id != self.object_id
