"""Canonical data model: plain dataclasses named after the Open-Xchange object model.

Every dialect (EAS, OX WebDAV/XML, CalDAV/CardDAV) maps onto these classes; the store
persists them. Nothing here imports SQLAlchemy, XML or HTTP code.
"""

from oxsync.model.account import Group, Protocol, Resource, ResourceKind, Tenant, User
from oxsync.model.appointment import (
    Appointment,
    Confirmation,
    Participant,
    ParticipantKind,
    Recurrence,
    RecurrenceType,
    ShownAs,
)
from oxsync.model.common import AttachmentMeta, FolderType, Module, ObjectBase
from oxsync.model.contact import Contact, DistributionListMember
from oxsync.model.folder import Folder
from oxsync.model.permissions import Permission, Rights
from oxsync.model.task import Task, TaskPriority, TaskStatus

__all__ = [
    "Appointment", "AttachmentMeta", "Confirmation", "Contact", "DistributionListMember", "Folder",
    "FolderType", "Group", "Module", "ObjectBase", "Participant", "ParticipantKind", "Permission",
    "Protocol", "Recurrence", "RecurrenceType", "Resource", "ResourceKind", "Rights", "ShownAs", "Task",
    "TaskPriority", "TaskStatus", "Tenant", "User",
]
