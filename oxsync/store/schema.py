"""Database schema (SQLAlchemy Core). Alembic migrations must produce exactly these tables.

Design notes that must hold:
- Every id is unique per tenant; rows are keyed (tenant_id, id) and ids come from `sequences`.
- `tenants.rev` is bumped once per write transaction while holding the tenant row, so commit order
  equals revision order; `tenants.last_ms` is the OX millisecond stamp, strictly increasing.
- `changes` keeps one row per (folder, object): its newest revision and whether the object is gone
  from that folder. A delta is an index range scan on (tenant_id, folder_id, rev).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(255), nullable=False, unique=True),
    Column("max_accounts", Integer),
    Column("quota_bytes", BigInteger),
    Column("usage_bytes", BigInteger, nullable=False, default=0),
    Column("rev", BigInteger, nullable=False, default=0),
    Column("last_ms", BigInteger, nullable=False, default=0),
    Column("min_valid_rev", BigInteger, nullable=False, default=0),
)

sequences = Table(
    "sequences",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("next_value", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
)

users = Table(
    "users",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("login", String(255), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("display_name", String(255), nullable=False, default=""),
    Column("first_name", String(255), nullable=False, default=""),
    Column("last_name", String(255), nullable=False, default=""),
    Column("email", String(320), nullable=False),
    Column("protocols", String(64), nullable=False, default="dav,imap,mobile,outlook"),
    Column("active", Boolean, nullable=False, default=True),
    Column("quota_bytes", BigInteger),
    Column("usage_bytes", BigInteger, nullable=False, default=0),
    Column("contact_id", BigInteger),
    Column("last_ms", BigInteger, nullable=False, default=0),
    Column("settings", Text, nullable=False, default="{}"),
    Column("tenant_admin", Boolean, nullable=False, default=False, server_default=false()),
    Column("platform_admin", Boolean, nullable=False, default=False, server_default=false()),
    Column("public_folders", Boolean, nullable=False, default=True, server_default=true()),
    Column("sharing", Boolean, nullable=False, default=True, server_default=true()),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_users_login", "tenant_id", "login", unique=True),
    Index("ix_users_login_global", "login", unique=True),
    # bare logins are unique across tenants: `alice` must name one account (migration 0006)
)
"""`tenant_admin`/`platform_admin`: who may use the console and admin API for their tenant / every tenant.
`public_folders`/`sharing`: the hosting FAQ's per-account rights (access to public folders; collaborative
sharing = invite others, delegate tasks, share folders), enforced in `UserSession`."""

addresses = Table(
    "addresses",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("tenant_id", Integer, nullable=False),
    Column("user_id", Integer),
    Column("resource_id", Integer),
    Column("is_primary", Boolean, nullable=False, default=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
)
"""Every e-mail address a user (primary + aliases) or resource answers to, lower-cased, unique."""

user_groups = Table(
    "user_groups",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),
    Column("display_name", String(255), nullable=False),
    Column("list_contact_id", BigInteger),
    Column("last_ms", BigInteger, nullable=False, default=0),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_user_groups_name", "tenant_id", "name", unique=True),
)

group_members = Table(
    "group_members",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("group_id", Integer, primary_key=True),
    Column("user_id", Integer, primary_key=True),
    ForeignKeyConstraint(["tenant_id", "group_id"], ["user_groups.tenant_id", "user_groups.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"),
    Index("ix_group_members_user", "tenant_id", "user_id"),
)

resources = Table(
    "resources",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),
    Column("display_name", String(255), nullable=False),
    Column("email", String(320), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("last_ms", BigInteger, nullable=False, default=0),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_resources_name", "tenant_id", "name", unique=True),
)

deleted_principals = Table(
    "deleted_principals",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("contact_id", BigInteger),
    Column("last_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
)
"""Users, groups and resources deleted, so directory deltas (OX groupuser) can report them."""

folders = Table(
    "folders",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("parent_id", Integer, nullable=False),
    Column("module", String(16)),
    Column("type", String(16), nullable=False),
    Column("title", String(255), nullable=False),
    Column("owner_id", Integer),
    Column("default_module", String(16)),
    Column("color", String(16)),
    Column("created_by", Integer),
    Column("modified_by", Integer),
    Column("creation_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_folders_parent", "tenant_id", "parent_id"),
    Index("ix_folders_owner", "tenant_id", "owner_id"),
)

permissions = Table(
    "permissions",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("folder_id", Integer, primary_key=True),
    Column("is_group", Boolean, primary_key=True),
    Column("entity", Integer, primary_key=True, autoincrement=False),
    Column("folder_right", Integer, nullable=False),
    Column("read_right", Integer, nullable=False),
    Column("write_right", Integer, nullable=False),
    Column("delete_right", Integer, nullable=False),
    Column("admin_flag", Boolean, nullable=False),
    ForeignKeyConstraint(["tenant_id", "folder_id"], ["folders.tenant_id", "folders.id"], ondelete="CASCADE"),
    Index("ix_permissions_entity", "tenant_id", "is_group", "entity"),
)

objects = Table(
    "objects",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("folder_id", Integer, nullable=False),
    Column("created_by", Integer),
    Column("modified_by", Integer),
    Column("creation_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    Column("private", Boolean, nullable=False, default=False),
    Column("uid", String(255)),
    Column("resource_name", String(255)),
    Column("title", String(512), nullable=False, default=""),
    Column("search_text", Text, nullable=False, default=""),
    Column("start_ms", BigInteger),
    Column("end_ms", BigInteger),
    Column("range_end_ms", BigInteger),
    Column("full_time", Boolean, nullable=False, default=False),
    Column("shown_as", Integer),
    Column("series_id", BigInteger),
    Column("user_id", Integer),
    Column("size", Integer, nullable=False, default=0),
    Column("data", Text, nullable=False),
    Column("has_attachments", Boolean, nullable=False, default=False, server_default=false()),
    # True while the object has a row in `attachments` (store/attachments.py keeps it): a read of objects
    # reads attachments only for those that have some
    ForeignKeyConstraint(["tenant_id", "folder_id"], ["folders.tenant_id", "folders.id"]),
    Index("ix_objects_folder", "tenant_id", "folder_id", "id"),
    Index("ix_objects_uid", "tenant_id", "uid"),
    Index("ix_objects_resource_name", "tenant_id", "resource_name"),
    Index("ix_objects_range", "tenant_id", "kind", "start_ms"),
    Index("ix_objects_series", "tenant_id", "series_id"),
    Index("ix_objects_creator", "tenant_id", "created_by"),
)

object_ranges = Table(
    "object_ranges",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("object_id", BigInteger, primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("start_ms", BigInteger),
    Column("end_ms", BigInteger),
    Column("exact", Boolean, nullable=False, default=False, server_default=false()),
    Column("long_span", Boolean, nullable=False, default=True, server_default=true()),
    ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"], ondelete="CASCADE"),
    Index("ix_object_ranges_start", "tenant_id", "long_span", "start_ms"),
)
"""Time-range index of events and tasks (store/timeranges.py): spans that cover every instance of the
object, NULL = open; a calendar-query selects its candidates here. `exact`: the row is the object's
only instance as served, so overlapping it decides a VEVENT time-range filter without parsing.
`long_span`: open or longer than timeranges.SHORT_MS; the short ones are found by a range of
`start_ms` (ix_object_ranges_start), never by scanning every row of the tenant."""

object_texts = Table(
    "object_texts",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("object_id", BigInteger, primary_key=True),
    Column("viewer_id", Integer, primary_key=True, autoincrement=False),
    Column("variant", String(16), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("text", Text, nullable=False),
    ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"], ondelete="CASCADE"),
)
"""Served text (iCalendar, vCard) of a resource as one viewer sees it, valid while `version` (the
resource's version: newest change of its members, which members, render generation) is current."""

participants = Table(
    "participants",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("object_id", BigInteger, primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("kind", Integer, nullable=False),
    Column("entity", Integer, nullable=False, default=0),
    Column("email", String(320), nullable=False, default=""),
    Column("display_name", String(255), nullable=False, default=""),
    Column("confirmation", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False, default=""),
    Column("folder_id", Integer),
    Column("alarm", BigInteger),
    Column("data", Text),
    ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"], ondelete="CASCADE"),
    Index("ix_participants_folder", "tenant_id", "folder_id"),
    Index("ix_participants_folder_object", "tenant_id", "folder_id", "object_id",
          sqlite_where=text("folder_id IS NOT NULL"), postgresql_where=text("folder_id IS NOT NULL")),
    Index("ix_participants_entity", "tenant_id", "kind", "entity"),
)
"""Participants of appointments and tasks. Internal users carry the folder the object sits in for them."""

list_members = Table(
    "list_members",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("list_id", BigInteger, primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("contact_id", BigInteger),
    Column("folder_id", Integer),
    Column("email_field", Integer, nullable=False, default=0),
    Column("email", String(320), nullable=False),
    Column("display_name", String(255), nullable=False, default=""),
    ForeignKeyConstraint(["tenant_id", "list_id"], ["objects.tenant_id", "objects.id"], ondelete="CASCADE"),
    Index("ix_list_members_contact", "tenant_id", "contact_id"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("object_id", BigInteger, nullable=False),
    Column("filename", String(255), nullable=False),
    Column("mimetype", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("rtf_flag", Boolean, nullable=False, default=False),
    Column("created_by", Integer),
    Column("creation_ms", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"], ondelete="CASCADE"),
    Index("ix_attachments_object", "tenant_id", "object_id"),
)

changes = Table(
    "changes",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("folder_id", Integer, primary_key=True),
    Column("object_id", BigInteger, primary_key=True, autoincrement=False),
    Column("rev", BigInteger, nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("gone", Boolean, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("resource_name", String(255)),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_changes_rev", "tenant_id", "folder_id", "rev"),
    Index("ix_changes_ms", "tenant_id", "folder_id", "ms"),
    Index("ix_changes_gone", "tenant_id", "gone", "rev"),
)
"""`resource_name` on a tombstone: the DAV name the object had ("" = none, NULL = not recorded), so any
node can report a deleted member by its href."""

folder_changes = Table(
    "folder_changes",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("folder_id", Integer, primary_key=True, autoincrement=False),
    Column("parent_id", Integer, nullable=False),
    Column("rev", BigInteger, nullable=False),
    Column("ms", BigInteger, nullable=False),
    Column("gone", Boolean, nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_folder_changes_rev", "tenant_id", "rev"),
)

revision_log = Table(
    "revision_log",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("rev", BigInteger, primary_key=True, autoincrement=False),
    Column("ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
)
"""When each revision was committed (for tombstone pruning by age and OX ms -> revision lookups)."""

device_state = Table(
    "device_state",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("user_id", Integer, primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("collection", String(64), primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"),
)
"""Opaque per-device, per-collection protocol state (EAS sync keys, devices), written atomically with data."""

push_logins = Table(
    "push_logins",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("user_id", Integer, primary_key=True),
    Column("address", String(64), primary_key=True),
    Column("last_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"),
    Index("ix_push_logins_last", "last_ms"),
)
"""Recent HTTP logins per (user, client address), shared by all nodes: a UDP push registration counts
only for a user who logged in from that address recently, whichever node saw the login."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ms", BigInteger, nullable=False),
    Column("tenant_id", Integer),
    Column("actor", String(320), nullable=False),
    Column("via", String(16), nullable=False),
    Column("address", String(64), nullable=False, default=""),
    Column("action", String(64), nullable=False),
    Column("target", String(320), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_audit_log_tenant", "tenant_id", "id"),
)
"""Every administrative action (console, admin API, CLI): who, what, when, from where. No foreign key on
the tenant: the record of a tenant's deletion outlives it. Never holds a password or a token."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("tenant_id", Integer),
    Column("created_by", String(320), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_used_ms", BigInteger),
    Column("revoked_ms", BigInteger),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_api_tokens_hash", "token_hash", unique=True),
)
"""Admin API tokens: SHA-256 of a 256-bit random secret (shown once); `tenant_id` NULL = platform scope."""
outbound_mail = Table(
    "outbound_mail",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("user_id", Integer),
    Column("kind", String(16), nullable=False),
    Column("idem_key", String(255), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipients", Text, nullable=False),
    Column("subject", String(255), nullable=False, default=""),
    Column("message", LargeBinary),
    Column("payload", Text),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try_ms", BigInteger, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("lease_owner", String(64)),
    Column("lease_until_ms", BigInteger),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger),
    ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    Index("ix_outbound_mail_idem_key", "idem_key", unique=True),
    Index("ix_outbound_mail_due", "state", "next_try_ms"),
)
"""The one outbound mail queue (docs/outbound-mail.md). `idem_key` is unique: a second enqueue of the same
mail (a replayed ClientId, an iMIP for the same UID/instance/sequence/attendee, a reminder already
queued) is a no-op. `message` is the MIME to submit, or NULL when the worker renders it from `payload`
(a snapshot taken in the transaction of the change). States: queued -> sending (leased) -> sent, or back
to queued with a later `next_try_ms`, or failed / dropped."""

send_as_addresses = Table(
    "send_as_addresses",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("user_id", Integer, primary_key=True),
    Column("address", String(320), primary_key=True),
    ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"),
)
"""Extra From addresses the admin allows an account to send as (the primary address always may)."""

mail_alarms = Table(
    "mail_alarms",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("object_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("due_ms", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
    ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"], ondelete="CASCADE"),
    Index("ix_mail_alarms_due", "done", "due_ms"),
)
"""Reminders to mail: one row per (object, user) with the absolute time of its alarm, rewritten when the
object is saved; the scanner enqueues due rows (idempotency key per object, occurrence and alarm time)."""
