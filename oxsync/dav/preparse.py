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

The kept baseline (our rendering of the parsed item, kept with the client's text, formats/kept.py) and
the item's render inputs are made there too (`render_written`), for a body of one item with a master: the
handler uses them only for that very item of the early parse (`written_ahead`), which nothing changed
since but its UID (set to the same value first) and its resource name (never rendered). So are the
master's time-range rows (`store.timeranges.rows_ahead`), which the write takes only for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oxsync.dav.context import DavRequest
from oxsync.dav.layout import PrincipalAnswer as Answer
from oxsync.dav.layout import principal_participant, resolver
from oxsync.formats import kept
from oxsync.formats.ical import (
    CalendarItem,
    ICalLimitError,
    ParseError,
    items_to_ical,
    parse_calendar,
    render_inputs,
)
from oxsync.model.appointment import Participant
from oxsync.store import timeranges

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
    written: tuple[CalendarItem, AsWritten] | None = None
    """The body's one item and what `render_written` made of it, if it has a master."""


AsWritten = tuple[tuple[Any, ...] | None, str]
"""What a PUT writes: the render inputs of its body's objects (None for master-less overrides), and
their rendering (the kept baseline); see layout.written_text."""


def render_written(item: CalendarItem, text: str, orphans: bool = False) -> AsWritten:
    """The item's master takes the item's UID; its rendering is the kept baseline of the client's `text`
    (kept with the master); and the render inputs of the master with its exceptions (None if `orphans`:
    master-less overrides, the first standing in for the master)."""
    master: Any = item.master
    master.uid = item.uid
    baseline = items_to_ical([item])
    kept.keep(master.extra, text, baseline)
    return (None if orphans else render_inputs(master, item.exceptions)), baseline


def written_ahead(req: DavRequest, item: CalendarItem) -> AsWritten | None:
    """`render_written` of `item` made before the write, if `item` is the early parse's (taken once)."""
    ahead, req.written_ahead = req.written_ahead, None
    if ahead is None or ahead[0] is not item or item.master is None or item.master.uid != item.uid:
        return None
    return ahead[1]


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
    items = [r for r in results if isinstance(r, CalendarItem)]
    written = None
    if len(results) == 1 and len(items) == 1 and items[0].master is not None:
        written = items[0], render_written(items[0], text)
        assert items[0].master is not None
        timeranges.rows_ahead(items[0].master, req.settings.limits)  # the write's time-range rows
    req.preparsed = PreParsed(text, asked, results, guesses, written)


def preparsed_results(req: DavRequest, session: Any, text: str) -> list[CalendarItem | ParseError] | None:
    """Inside the write: the early parse of `text` if the directory answers every address it asked for
    as guessed (one statement); else `text` parsed again with those answers (plus a look-up per address
    the new parse asks beyond them, as `layout.resolver` does). None: no early parse, parse as usual."""
    pre, req.preparsed = req.preparsed, None
    if not isinstance(pre, PreParsed) or pre.text != text:
        return None
    items = [r for r in pre.results if isinstance(r, CalendarItem)]
    uid = items[0].uid if len(items) == 1 else None  # the UID the write checks, read with the addresses
    found: dict[str, Answer] = session.find_principals(list(pre.asked), uid=uid) if pre.asked or uid else {}
    pre.guesses.learn(req.principal.tenant_id, found)
    if found == pre.asked:
        req.written_ahead = pre.written
        return pre.results
    return parse_calendar(text, resolve=resolver(session, answers=found), limits=req.settings.limits)
