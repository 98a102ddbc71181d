"""Fields shared by every folder child (reference ox-webdav-xml.md §2.1) and small enums."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Module(StrEnum):
    """Folder modules that are synchronised; OX names."""

    CONTACT = "contact"
    CALENDAR = "calendar"
    TASK = "task"


class FolderType(StrEnum):
    """Storage kind of a folder. `shared` is a view: a private folder seen by a grantee."""

    PRIVATE = "private"
    PUBLIC = "public"
    SHARED = "shared"
    SYSTEM = "system"


class ObjectKind(StrEnum):
    """What a stored object is; one id sequence per tenant covers all kinds."""

    CONTACT = "contact"
    APPOINTMENT = "appointment"
    TASK = "task"


MODULE_OF_KIND = {
    ObjectKind.CONTACT: Module.CONTACT,
    ObjectKind.APPOINTMENT: Module.CALENDAR,
    ObjectKind.TASK: Module.TASK,
}
KIND_OF_MODULE = {module: kind for kind, module in MODULE_OF_KIND.items()}


@dataclass
class AttachmentMeta:
    """An attachment as listed on its parent object (the bytes are fetched separately)."""

    id: int
    filename: str
    mimetype: str
    size: int
    creation_time: datetime | None = None
    rtf_flag: bool = False


@dataclass(kw_only=True)
class ObjectBase:
    """Server-maintained and common fields. `last_modified` is the OX millisecond stamp."""

    object_id: int | None = None
    folder_id: int | None = None
    created_by: int | None = None
    modified_by: int | None = None
    creation_time: datetime | None = None
    last_modified: int | None = None
    categories: str = ""
    private_flag: bool = False
    color_label: int = 0
    attachments: list[AttachmentMeta] = field(default_factory=list)
    resource_name: str = ""
    """The name a DAV client gave this object's resource (kept so its href stays stable)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Properties a dialect could not map (e.g. unknown iCalendar/vCard lines), kept for round trips."""

    @property
    def stored_id(self) -> int:
        """`object_id` of an object the store returned (always set there); refuses one never stored."""
        if self.object_id is None:
            raise ValueError(f"this {type(self).__name__} has no object_id: it was never stored")
        return self.object_id
