"""IMAP operations the ActiveSync Email class needs, on one borrowed connection (an IMAP pool thread).

Every function takes an `IMAPClient` already logged in (QRESYNC enabled) and returns plain data.
What must hold:
- folders are identified by Dovecot's X-GUID (stable across renames); special folders by SPECIAL-USE,
  with configured fallback names;
- a delta is `EXAMINE` + one `UID FETCH 1:* (FLAGS INTERNALDATE) (CHANGEDSINCE m VANISHED)`, and only
  the EXAMINE when HIGHESTMODSEQ did not move: the cost does not grow with the folder;
- bodies are fetched with BODY.PEEK (reading a mail on the phone never marks it read by accident);
- MOVE reports the new UIDs from COPYUID (UIDPLUS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response

from oxsync.mail.pool import imaplib_of

SPECIAL_USE = {b"\\Drafts": "drafts", b"\\Sent": "sent", b"\\Trash": "trash", b"\\Junk": "junk"}
UID_MAX = 4294967295


@dataclass(frozen=True)
class MailFolder:
    name: str
    guid: str
    special: str | None
    """`inbox`, `drafts`, `sent`, `trash`, `junk` or None (a user folder)."""
    parent: str | None
    delimiter: str


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int
    modseq: int
    messages: int


@dataclass
class Delta:
    state: FolderState
    changed: dict[int, tuple[tuple[bytes, ...], datetime | None]] = field(default_factory=dict)
    """UID -> (flags, INTERNALDATE) of every message whose MODSEQ moved (new ones included)."""
    vanished: set[int] = field(default_factory=set)


@dataclass
class Fetched:
    uid: int
    flags: tuple[bytes, ...]
    internaldate: datetime | None
    size: int
    raw: bytes


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def list_folders(conn: IMAPClient, fallback: dict[str, str]) -> list[MailFolder]:
    """All selectable folders with their X-GUID and special use (`fallback`: use -> folder name)."""
    listed = conn.list_folders()
    by_name_use = {name.lower(): use for use, name in fallback.items()}
    seen_uses: set[str] = set()
    rows = []
    for flags, delimiter, name in listed:
        if b"\\Noselect" in flags or b"\\NonExistent" in flags:
            continue
        special = "inbox" if name.upper() == "INBOX" else next(
            (SPECIAL_USE[f] for f in flags if f in SPECIAL_USE), None)
        rows.append([name, _text(delimiter) if delimiter else "/", special])
        if special:
            seen_uses.add(special)
    for row in rows:
        use = by_name_use.get(row[0].lower())
        if row[2] is None and use is not None and use not in seen_uses:
            row[2] = use
            seen_uses.add(use)
    out = []
    names = {row[0] for row in rows}
    for name, delimiter, special in rows:
        status = conn.folder_status(name, [b"X-GUID"])
        guid = _text(status.get(b"X-GUID", b"")) or f"name:{name}"
        parent = name.rsplit(delimiter, 1)[0] if delimiter in name else None
        out.append(MailFolder(name, guid, special, parent if parent in names else None, delimiter))
    return out


def examine(conn: IMAPClient, name: str) -> FolderState:
    info = conn.select_folder(name, readonly=True)
    return FolderState(int(info.get(b"UIDVALIDITY", 0)), int(info.get(b"UIDNEXT", 0)),
                       int(info.get(b"HIGHESTMODSEQ", 0)), int(info.get(b"EXISTS", 0)))


def status(conn: IMAPClient, name: str) -> FolderState:
    """STATUS of a folder; a selected mailbox is unselected first (Dovecot answers STATUS of the selected
    mailbox from the connection's own, not yet refreshed, view)."""
    if imaplib_of(conn).state == "SELECTED":
        conn.unselect_folder()
    got = conn.folder_status(name, [b"UIDVALIDITY", b"UIDNEXT", b"HIGHESTMODSEQ", b"MESSAGES"])
    return FolderState(int(got.get(b"UIDVALIDITY", 0)), int(got.get(b"UIDNEXT", 0)),
                       int(got.get(b"HIGHESTMODSEQ", 0)), int(got.get(b"MESSAGES", 0)))


def uid_fetch(conn: IMAPClient, spec: str, items: list[str], modifiers: list[str] | None = None) -> dict[int, Any]:
    """`UID FETCH spec items (modifiers)` with a sequence-set string (imapclient's fetch wants id lists)."""
    args = ["UID", "FETCH", spec, "(" + " ".join(items) + ")"]
    if modifiers:
        args.append("(" + " ".join(modifiers) + ")")
    typ, data = imaplib_of(conn).uid(*args[1:])  # imaplib's own UID command: its untagged FETCH responses
    if typ != "OK":
        raise IMAPClientError(f"fetch failed: {data!r}")
    return parse_fetch_response(data, conn.normalise_times, True)


def _pop_vanished(conn: IMAPClient) -> set[int]:
    out: set[int] = set()
    for line in imaplib_of(conn).untagged_responses.pop("VANISHED", []):
        text = _text(line).replace("(EARLIER)", "").strip()
        out |= parse_uid_set(text)
    return out


def parse_uid_set(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            out.update(range(int(low), int(high or low) + 1))
    return out


def uid_set(uids: list[int] | set[int]) -> str:
    ordered = sorted(uids)
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def delta(conn: IMAPClient, name: str, modseq: int) -> Delta:
    """What changed in `name` since `modseq` (new mail included): one EXAMINE, plus one FETCH if anything did."""
    imaplib_of(conn).untagged_responses.pop("VANISHED", None)
    state = examine(conn, name)
    out = Delta(state, vanished=_pop_vanished(conn))
    if state.modseq <= modseq:
        return out
    rows = uid_fetch(conn, f"1:{UID_MAX}", ["FLAGS", "INTERNALDATE"], [f"CHANGEDSINCE {modseq}", "VANISHED"])
    for uid, row in rows.items():
        if b"FLAGS" in row:
            out.changed[int(uid)] = (tuple(row[b"FLAGS"]), row.get(b"INTERNALDATE"))
    out.vanished |= _pop_vanished(conn)
    return out


def uids_newest_first(conn: IMAPClient, name: str, since: datetime | None) -> tuple[FolderState, list[int]]:
    """Every UID of the folder (arrived since `since`), newest arrival first (SORT REVERSE ARRIVAL)."""
    state = examine(conn, name)
    criteria: list[Any] = ["SINCE", since.date()] if since is not None else ["ALL"]
    return state, [int(u) for u in conn.sort(["REVERSE ARRIVAL"], criteria)]


def arrived_before(conn: IMAPClient, uids: set[int], cutoff: datetime) -> set[int]:
    """Which of `uids` (in the selected folder) arrived before `cutoff` (INTERNALDATE, day precision)."""
    if not uids:
        return set()
    return {int(u) for u in conn.search(["UID", uid_set(uids), "BEFORE", cutoff.date()])}


def fetch_meta(conn: IMAPClient, uids: list[int]) -> dict[int, tuple[tuple[bytes, ...], datetime | None]]:
    if not uids:
        return {}
    rows = uid_fetch(conn, uid_set(uids), ["FLAGS", "INTERNALDATE"])
    return {int(u): (tuple(r.get(b"FLAGS", ())), r.get(b"INTERNALDATE")) for u, r in rows.items()}


def fetch_messages(conn: IMAPClient, name: str | None, uids: list[int], max_bytes: int) -> dict[int, Fetched]:
    """Whole messages (at most `max_bytes` of each), without setting \\Seen."""
    if name is not None:
        conn.select_folder(name, readonly=True)
    if not uids:
        return {}
    rows = uid_fetch(conn, uid_set(uids), ["FLAGS", "INTERNALDATE", "RFC822.SIZE", f"BODY.PEEK[]<0.{max_bytes}>"])
    out = {}
    for uid, row in rows.items():
        raw = next((v for k, v in row.items() if isinstance(k, bytes) and k.startswith(b"BODY[")), None)
        if raw is None:
            continue
        out[int(uid)] = Fetched(int(uid), tuple(row.get(b"FLAGS", ())), row.get(b"INTERNALDATE"),
                                int(row.get(b"RFC822.SIZE", len(raw))), bytes(raw))
    return out


def set_flags(conn: IMAPClient, name: str, uid: int, add: list[bytes], remove: list[bytes]) -> bool:
    """Returns False when the message is gone."""
    conn.select_folder(name)
    if not conn.search(["UID", str(uid)]):
        return False
    if add:
        conn.add_flags([uid], add, silent=True)
    if remove:
        conn.remove_flags([uid], remove, silent=True)
    return True


def move(conn: IMAPClient, name: str, uids: list[int], target: str) -> dict[int, int]:
    """UID MOVE; returns old UID -> new UID (COPYUID). Missing UIDs are left out."""
    conn.select_folder(name)
    present = [u for u in conn.search(["UID", uid_set(uids)])] if uids else []
    if not present:
        return {}
    imaplib_of(conn).untagged_responses.pop("COPYUID", None)
    conn.move(present, target)
    mapping: dict[int, int] = {}
    for line in imaplib_of(conn).untagged_responses.pop("COPYUID", []):
        parts = _text(line).split()
        if len(parts) >= 3:
            src, dst = sorted(parse_uid_set(parts[1])), sorted(parse_uid_set(parts[2]))
            mapping.update(zip(src, dst, strict=False))
    return mapping


def expunge(conn: IMAPClient, name: str, uids: list[int]) -> None:
    conn.select_folder(name)
    if uids:
        conn.add_flags(uids, [b"\\Deleted"], silent=True)
        conn.uid_expunge(uids)


def empty_folder(conn: IMAPClient, name: str) -> int:
    conn.select_folder(name)
    uids = conn.search(["ALL"])
    if uids:
        conn.add_flags(uids, [b"\\Deleted"], silent=True)
        conn.expunge()
    return len(uids)


SAFE_SEARCH = re.compile(r"[\x00-\x1f]")


def search(conn: IMAPClient, name: str, text: str | None, since: datetime | None, before: datetime | None,
           in_body: bool = False) -> list[int]:
    """UIDs matching free text (subject or sender, body if asked) within dates, newest first."""
    conn.select_folder(name, readonly=True)
    criteria: list[Any] = []
    if since is not None:
        criteria += ["SINCE", since.date()]
    if before is not None:
        criteria += ["BEFORE", before.date()]
    if text:
        clean = SAFE_SEARCH.sub(" ", text)[:200]
        if in_body:
            criteria += ["TEXT", clean]
        else:
            criteria += ["OR", "SUBJECT", clean, "FROM", clean]
    # newest first by UID: UIDs grow with arrival in a folder, and SORT's tie-break on equal arrival
    # times (sequence order, not reversed by Dovecot) would put same-second mails oldest first
    return sorted((int(u) for u in conn.search(criteria or ["ALL"], charset="UTF-8")), reverse=True)


def create_folder(conn: IMAPClient, name: str) -> str:
    conn.create_folder(name)
    conn.subscribe_folder(name)
    return _text(conn.folder_status(name, [b"X-GUID"]).get(b"X-GUID", b"")) or f"name:{name}"


def rename_folder(conn: IMAPClient, old: str, new: str) -> None:
    conn.rename_folder(old, new)
    conn.subscribe_folder(new)


def delete_folder(conn: IMAPClient, name: str) -> None:
    conn.delete_folder(name)


def append(conn: IMAPClient, name: str, raw: bytes, flags: tuple[bytes, ...] = ()) -> None:
    conn.append(name, raw, flags)
