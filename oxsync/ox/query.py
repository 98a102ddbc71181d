"""The PROPFIND request forms (reference §1.4), parsed leniently on the reactor before any store work.

Presence of `lastsync` or `objectmode` selects the sync form; a missing objectmode means
`NEW_AND_MODIFIED,DELETED`, a missing lastsync 0; `object_id` alone selects the single-object form.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from oxsync.ox.wire import RequestError, parse_int, text

MODE_TOKENS = {"NEW_AND_MODIFIED": "modified", "MODIFIED": "modified", "DELETED": "deleted", "LIST": "list"}


@dataclass(frozen=True)
class Query:
    folder_id: int | None
    object_id: int | None
    lastsync: int
    modes: frozenset[str]
    """Empty for the single-object form."""


def parse_query(given: dict[str, etree._Element]) -> Query:
    folder_id = _opt_int(given, "folder_id")
    object_id = _opt_int(given, "object_id")
    lastsync = 0
    if "lastsync" in given:
        try:
            lastsync = max(0, int(text(given["lastsync"]).strip()))
        except ValueError:
            lastsync = 0  # OX: unparsable -> 0
    modes: set[str] = set()
    if "objectmode" in given:
        for token in text(given["objectmode"]).split(","):
            token = token.strip().upper()
            if not token:
                continue
            if token not in MODE_TOKENS:
                raise RequestError(409, f"Conflict: invalid value in element objectmode: {token[:40]}")
            modes.add(MODE_TOKENS[token])
    if not modes and ("lastsync" in given or "objectmode" in given):
        modes = {"modified", "deleted"}
    if not modes and object_id is None:
        raise RequestError(400, "expected element: object_id or lastsync")
    return Query(folder_id, object_id, lastsync, frozenset(modes))


def _opt_int(given: dict[str, etree._Element], name: str) -> int | None:
    if name not in given or not text(given[name]).strip():
        return None
    return parse_int(text(given[name]), name)
