"""Open-Xchange folder permissions and Outlook's permission levels as presets over them.

Values are OX's internal ones (ox-webdav-xml.md §2.2): checks are `>=` comparisons, 128 is the
maximum. Outlook levels follow the OXtender manual, chapter 7.5 (level 0 "vide - Voir" keeps the
folder visible and nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class FolderRight(IntEnum):
    NONE = 0
    SEE = 2
    CREATE_OBJECTS = 4
    CREATE_SUBFOLDERS = 8
    ADMIN = 128


class ObjectRight(IntEnum):
    NONE = 0
    OWN = 2
    ALL = 4
    ADMIN = 128


@dataclass(frozen=True)
class Rights:
    """Effective rights of one user on one folder (or one permission entry's values)."""

    folder: int = 0
    read: int = 0
    write: int = 0
    delete: int = 0
    admin: bool = False

    def merge(self, other: Rights) -> Rights:
        """Effective right = maximum over the user's entry and their groups' entries."""
        return Rights(
            max(self.folder, other.folder),
            max(self.read, other.read),
            max(self.write, other.write),
            max(self.delete, other.delete),
            self.admin or other.admin,
        )

    @property
    def can_see_folder(self) -> bool:
        return self.folder >= FolderRight.SEE

    @property
    def can_create_objects(self) -> bool:
        return self.folder >= FolderRight.CREATE_OBJECTS

    @property
    def can_create_subfolders(self) -> bool:
        return self.folder >= FolderRight.CREATE_SUBFOLDERS

    def can_read(self, is_own: bool) -> bool:
        return self.read >= ObjectRight.ALL or (is_own and self.read >= ObjectRight.OWN)

    def can_write(self, is_own: bool) -> bool:
        return self.write >= ObjectRight.ALL or (is_own and self.write >= ObjectRight.OWN)

    def can_delete(self, is_own: bool) -> bool:
        return self.delete >= ObjectRight.ALL or (is_own and self.delete >= ObjectRight.OWN)


NO_RIGHTS = Rights()
OWNER_RIGHTS = Rights(128, 128, 128, 128, True)

OUTLOOK_LEVELS: dict[int, Rights] = {
    0: Rights(2, 0, 0, 0, False),  # folder visible only
    1: Rights(4, 0, 0, 0, False),  # create items, read none
    2: Rights(2, 4, 0, 0, False),  # read all items
    3: Rights(4, 4, 0, 2, False),  # + create, delete own
    4: Rights(4, 4, 2, 2, False),  # + edit own
    5: Rights(8, 4, 2, 2, False),  # + create subfolders
    6: Rights(4, 4, 4, 4, False),  # edit/delete all, no subfolders
    7: Rights(8, 4, 4, 4, False),  # full access without changing permissions
    8: OWNER_RIGHTS,  # folder owner
}
"""Outlook level -> OX values; the reverse is exact match or "custom" (None)."""

LEVEL_NAMES = {
    0: "None (visible)", 1: "Contributor", 2: "Reviewer", 3: "Nonediting Author", 4: "Author",
    5: "Publishing Author", 6: "Editor", 7: "Publishing Editor", 8: "Owner",
}
"""Outlook's names for its permission levels 0-8 (OXtender manual 7.5)."""

_LEVEL_OF_RIGHTS = {rights: level for level, rights in OUTLOOK_LEVELS.items()}


def rights_for_level(level: int) -> Rights:
    if level not in OUTLOOK_LEVELS:
        raise ValueError(f"Outlook permission level must be 0-8, got {level}")
    return OUTLOOK_LEVELS[level]


def level_for_rights(rights: Rights) -> int | None:
    """The Outlook level whose preset equals `rights`, or None for a custom combination."""
    return _LEVEL_OF_RIGHTS.get(rights)


VALID_FOLDER_VALUES = frozenset(int(v) for v in FolderRight)
VALID_OBJECT_VALUES = frozenset(int(v) for v in ObjectRight)


@dataclass(frozen=True)
class Permission:
    """One permission entry on a folder: a user, or a group (group 0 = all users)."""

    entity: int
    is_group: bool
    rights: Rights

    def validate(self) -> None:
        r = self.rights
        if r.folder not in VALID_FOLDER_VALUES:
            raise ValueError(f"invalid folder permission {r.folder}")
        for name in ("read", "write", "delete"):
            value = getattr(r, name)
            if value not in VALID_OBJECT_VALUES:
                raise ValueError(f"invalid object {name} permission {value}")
