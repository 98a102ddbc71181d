"""Folders: system roots, private/public folders, default folders."""

from __future__ import annotations

from dataclasses import dataclass, field

from oxsync.model.common import FolderType, Module
from oxsync.model.permissions import Permission, Rights

ROOT = 0
PRIVATE_ROOT = 1
PUBLIC_ROOT = 2
SHARED_ROOT = 3
SYSTEM_ROOT = 4
GLOBAL_ADDRESS_BOOK = 6
FIRST_REAL_FOLDER = 20
SYSTEM_FOLDER_IDS = (PRIVATE_ROOT, PUBLIC_ROOT, SHARED_ROOT, SYSTEM_ROOT, GLOBAL_ADDRESS_BOOK)


@dataclass
class Folder:
    id: int | None = None
    parent_id: int = PRIVATE_ROOT
    title: str = ""
    module: Module | None = None
    type: FolderType = FolderType.PRIVATE
    owner: int | None = None
    default_folder: bool = False
    permissions: list[Permission] = field(default_factory=list)
    created_by: int | None = None
    modified_by: int | None = None
    last_modified: int | None = None
    color: str | None = None
    """Display colour for DAV clients (#RRGGBB), None when unset."""

    @property
    def is_system(self) -> bool:
        return self.id is not None and self.id < FIRST_REAL_FOLDER

    @property
    def stored_id(self) -> int:
        """`id` of a folder the store returned (always set there); refuses one never stored."""
        if self.id is None:
            raise ValueError(f"folder {self.title!r} has no id: it was never stored")
        return self.id


@dataclass
class FolderAccess:
    """A folder as one user sees it: their effective rights, and whether it is another user's folder."""

    folder: Folder
    rights: Rights
    shared: bool = False
    """True for another user's private folder (OX shows it as type `shared` under root 3)."""
