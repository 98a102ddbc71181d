"""Errors raised by the store API. Dialects translate each into their own protocol error."""

from __future__ import annotations


class StoreError(Exception):
    """Base class; `code` is a short stable identifier for logs and dialect mapping."""

    code = "error"


class NotFound(StoreError):
    code = "not_found"


class PermissionDenied(StoreError):
    code = "permission_denied"


class StaleObject(StoreError):
    """The client's version is older than the stored one (optimistic concurrency); nothing changed."""

    code = "stale"

    def __init__(self, message: str, current_last_modified: int | None = None) -> None:
        super().__init__(message)
        self.current_last_modified = current_last_modified


class Conflict(StoreError):
    """A uniqueness or state conflict (duplicate login, UID already used, non-empty default folder...)."""

    code = "conflict"


class InvalidData(StoreError):
    """A field is missing or out of range; `field` names it when known."""

    code = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidInput(InvalidData):
    """A value the store refuses at its boundary (oxsync.store.validate): text XML cannot carry under
    the `reject` policy, a date outside [limits] min_year..max_year, a number beyond what the database
    or the dialects hold. Every dialect answers its own "invalid input" (OX [1100], DAV 400/403, EAS
    Status 6, the importer a per-record error); nothing was written."""

    code = "invalid_input"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)
        self.reason = reason


class QuotaExceeded(StoreError):
    code = "quota"


class ResyncRequired(StoreError):
    """The sync token predates the tombstone pruning horizon; the client must resynchronise fully."""

    code = "resync"


class AuthenticationFailed(StoreError):
    code = "auth_failed"


class AccessRefused(StoreError):
    """Credentials are right but the account is suspended or lacks the protocol right."""

    code = "access_refused"


class AppointmentConflict(StoreError):
    """The appointment overlaps others of its participants. `hard` = a resource is double-booked
    (never allowed); otherwise the caller may save anyway with ignore_conflicts. Nothing was written."""

    code = "appointment_conflict"

    def __init__(self, items: list, hard: bool) -> None:
        kind = "resource double-booked" if hard else "overlaps appointments of participants"
        super().__init__(f"{kind}: {len(items)} conflicting appointment(s)")
        self.items = items
        self.hard = hard
