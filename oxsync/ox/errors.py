"""OX per-object outcome codes (reference ox-webdav-xml.md §1.5), as data.

The numeric 2007 forms are used (`[1000]` ...): the only format older OXtenders can be assumed to
parse (characters 1-4 of `D:responsedescription`).
"""

from __future__ import annotations

import logging

from oxsync.model.timeutil import to_ms
from oxsync.ox.wire import attrs
from oxsync.store.budget import WorkLimitExceeded
from oxsync.store.errors import (
    AppointmentConflict,
    Conflict,
    InvalidData,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StaleObject,
    StoreError,
)

log = logging.getLogger("oxsync.ox")

OK = (200, "[1200] OK")
STALE = (409, "[1000] This object was modified on the server")
NOT_FOUND = (404, "[1001] Object not found")
NO_PERMISSION = (403, "[1002] No permission")
CONFLICT = (409, "[1003] Conflict")
MISSING_FIELD = (409, "[1004] Missing field")
APPOINTMENT_CONFLICT = (409, "[1006] Appointments Conflicted")
INVALID_INPUT = (409, "[1100] invalid user input")
BAD_XML = (400, "[1400] bad xml request")
SERVER_ERROR = (500, "[1500] Server Error")


class OxFailure(Exception):
    """A per-object failure decided by the dialect itself (e.g. a missing last_modified)."""

    def __init__(self, outcome: tuple[int, str], detail: str = "") -> None:
        super().__init__(detail or outcome[1])
        self.outcome = outcome
        self.detail = detail


STORE_ERRORS: tuple[tuple[type[StoreError], tuple[int, str]], ...] = (
    (StaleObject, STALE),
    (NotFound, NOT_FOUND),
    (PermissionDenied, NO_PERMISSION),
    (AppointmentConflict, APPOINTMENT_CONFLICT),
    (QuotaExceeded, INVALID_INPUT),
    (InvalidInput, INVALID_INPUT),
    (InvalidData, CONFLICT),
    (Conflict, CONFLICT),
    (WorkLimitExceeded, INVALID_INPUT),
)


def outcome_of(exc: BaseException) -> tuple[int, str, str]:
    """(D:status, description, extra XML after the description) for a failed operation."""
    if isinstance(exc, OxFailure):
        status, text = exc.outcome
        return status, _with_detail(text, exc.detail), ""
    for kind, (status, text) in STORE_ERRORS:
        if isinstance(exc, kind):
            extra = conflict_items(exc) if isinstance(exc, AppointmentConflict) else ""
            if isinstance(exc, InvalidData) and exc.field == "title":
                status, text = MISSING_FIELD
            return status, _with_detail(text, str(exc)), extra
    log.error("OX request failed", exc_info=exc, extra={"event": "ox.server_error"})
    return SERVER_ERROR[0], f"{SERVER_ERROR[1]} - {type(exc).__name__}", ""


DETAILED = frozenset({CONFLICT[1], MISSING_FIELD[1], INVALID_INPUT[1], BAD_XML[1]})
"""Descriptions that carry a detail; the others keep OX's exact text (clients match on it)."""


def _with_detail(text: str, detail: str) -> str:
    return f"{text} - {detail}" if detail and detail != text and text in DETAILED else text


def conflict_items(exc: AppointmentConflict) -> str:
    items = []
    for item in exc.items:
        subject = attrs([("subject", item.title)])
        items.append(f"<D:conflictitem{subject}>{to_ms(item.start)},{to_ms(item.end)},"
                     f"{'true' if item.full_time else 'false'}</D:conflictitem>")
    return f"<D:conflictitems>{''.join(items)}</D:conflictitems>"
