"""A CalDAV PUT's body parsed before its write transaction, where the store serialises writers (SQLite).

On SQLite a write holds the process's writer's turn from BEGIN to COMMIT (`store.engine.WriterTurn`),
and a PUT's handler did all its work inside it, so 8 clients got no more PUTs through than 1: the
iCalendar parse of one PUT could not run while another wrote. `prepare_put` parses the body on the pool
thread before the write transaction, with no store access: the ORGANIZER/ATTENDEE addresses are taken
as this process last found them (`PrincipalGuesses`, learnt from earlier writes; unknown = external).
Inside the write, the addresses the parse asked for are looked up in the one statement the parse would
have run there anyway, and the early parse is used only if every answer equals the guess; otherwise
the body is parsed again with those answers, as before. What is written is therefore exactly what the
parse inside the write gives, with the same statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oxsync.dav.context import DavRequest
from oxsync.dav.layout import PrincipalAnswer as Answer
from oxsync.dav.layout import principal_participant, resolver
from oxsync.formats.ical import CalendarItem, ICalLimitError, ParseError, parse_calendar
from oxsync.model.appointment import Participant

GUESSES_KEPT = 10_000
"""Addresses remembered per process (all forgotten at once past it: only a guess, checked on use)."""


class PrincipalGuesses:
    """(tenant, lowercased address) -> the answer the directory gave in the last write that asked."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, str], Answer] = {}

    def get(self, tenant_id: int, key: str) -> Answer:
        return self._known.get((tenant_id, key))

    def learn(self, tenant_id: int, answers: dict[str, Answer]) -> None:
        if len(self._known) > GUESSES_KEPT:
            self._known.clear()
        self._known.update(((tenant_id, key), found) for key, found in answers.items())


@dataclass
class PreParsed:
    text: str
    asked: dict[str, Answer]
    """Every address the parse asked for (lowercased) -> the guess it was given."""
    results: list[CalendarItem | ParseError]
    guesses: PrincipalGuesses


def body_text(body: bytes) -> str:
    """A request body as text: UTF-8, or Latin-1 when it is not UTF-8 (every byte decodes)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def prepare_put(req: DavRequest, guesses: PrincipalGuesses) -> None:
    """Parse a PUT's iCalendar body ahead, on the guessed principals; anything unusual (not a calendar,
    over a limit) is left to the handler."""
    text = body_text(req.body)
    if not text.lstrip()[:15].upper().startswith("BEGIN:VCALENDAR"):
        return
    tenant_id = req.principal.tenant_id
    asked: dict[str, Answer] = {}

    def resolve(address: str) -> Participant | None:
        key = address.strip().lower()
        if key not in asked:
            asked[key] = guesses.get(tenant_id, key)
        return principal_participant(key, asked[key])

    try:
        results = parse_calendar(text, resolve=resolve, limits=req.settings.limits)
    except ICalLimitError:
        return
    req.preparsed = PreParsed(text, asked, results, guesses)


def preparsed_results(req: DavRequest, session: Any, text: str) -> list[CalendarItem | ParseError] | None:
    """Inside the write: the early parse of `text` if the directory answers every address it asked for
    as guessed (one statement); else `text` parsed again with those answers (plus a look-up per address
    the new parse asks beyond them, as `layout.resolver` does). None: no early parse, parse as usual."""
    pre, req.preparsed = req.preparsed, None
    if not isinstance(pre, PreParsed) or pre.text != text:
        return None
    found: dict[str, Answer] = session.find_principals(list(pre.asked)) if pre.asked else {}
    pre.guesses.learn(req.principal.tenant_id, found)
    if found == pre.asked:
        return pre.results
    return parse_calendar(text, resolve=resolver(session, answers=found), limits=req.settings.limits)
