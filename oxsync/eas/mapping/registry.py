"""Which table serves which folder module / EAS class."""

from __future__ import annotations

from oxsync.eas.mapping import calendar, contacts, tasks
from oxsync.eas.mapping.common import ClassMapping
from oxsync.model import Module

BY_MODULE: dict[Module, ClassMapping] = {
    Module.CONTACT: contacts.CONTACTS, Module.CALENDAR: calendar.CALENDAR, Module.TASK: tasks.TASKS,
}
BY_CLASS: dict[str, ClassMapping] = {m.name: m for m in BY_MODULE.values()}
FILL_DEFAULTS = {"Contacts": contacts.fill_defaults, "Calendar": calendar.fill_defaults, "Tasks": tasks.fill_defaults}
