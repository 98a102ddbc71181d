"""Tenants (OX contexts), accounts, groups and resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Protocol(StrEnum):
    """Per-account access rights to the client dialects."""

    OUTLOOK = "outlook"  # OX WebDAV/XML, free/busy servlet, UDP push
    MOBILE = "mobile"  # Exchange ActiveSync
    DAV = "dav"  # CalDAV / CardDAV
    IMAP = "imap"  # the mailbox over IMAP (checked by Dovecot's passdb query, docs/mail.md)


ALL_PROTOCOLS = frozenset(Protocol)


class ResourceKind(StrEnum):
    ROOM = "room"
    EQUIPMENT = "equipment"


@dataclass
class Tenant:
    id: int
    domain: str
    max_accounts: int | None = None
    quota_bytes: int | None = None


@dataclass
class User:
    id: int
    tenant_id: int
    login: str
    display_name: str
    email: str
    aliases: list[str] = field(default_factory=list)
    protocols: frozenset[Protocol] = ALL_PROTOCOLS
    active: bool = True
    quota_bytes: int | None = None
    contact_id: int | None = None
    """This account's entry in the global address book (folder 6)."""
    first_name: str = ""
    last_name: str = ""
    last_modified: int | None = None
    tenant_admin: bool = False
    """May administer this tenant in the console and admin API."""
    platform_admin: bool = False
    """May administer every tenant (the hosting provider)."""
    public_folders: bool = True
    """Right: public folders are visible (off: invisible in every dialect)."""
    sharing: bool = True
    """Right: collaborative sharing (invite others, delegate tasks, share own folders)."""


ACCOUNT_FLAGS = ("tenant_admin", "platform_admin", "public_folders", "sharing")
"""Boolean account attributes an administrator sets (users table columns of the same names)."""


@dataclass
class Group:
    id: int
    tenant_id: int
    name: str
    display_name: str
    members: list[int] = field(default_factory=list)
    last_modified: int | None = None


@dataclass
class Resource:
    id: int
    tenant_id: int
    name: str
    display_name: str
    email: str
    kind: ResourceKind = ResourceKind.ROOM
    description: str = ""
    last_modified: int | None = None
