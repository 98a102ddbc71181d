"""vCard 2.1/3.0/4.0 <-> `Contact`, driven by the mapping table in `vcard_tables`.

Input is split into cards by our own scanner, which unfolds lines (CRLF, LF or CR followed by space or
tab, plus vCard 2.1 quoted-printable soft breaks) and remembers where each logical line started. Each
line of a card is parsed by vobject's content-line grammar (`parseLine`, what `vobject.readOne` uses;
quoted-printable lines go through vobject's `ContentLine`, which decodes them honouring CHARSET).
Going line by line rather than through `readOne` keeps exact line numbers and the original spelling
of unknown lines, which are stored verbatim. A bad card is reported with its line number and parsing
goes on with the next card. Output is assembled and folded here (75 octets, never inside a UTF-8
sequence): vobject's per-character folding and ContentLine objects tripled the time per card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from vobject.base import ContentLine, VObjectError, dquoteEscape, parseLine

from oxsync.config import LimitSettings
from oxsync.formats.inputs import comparable, field_names
from oxsync.formats.vcard_rows import (
    EXTRA_GROUP,
    EXTRA_LINES,
    CardError,
    Ctx,
    Entry,
    Params,
    Prop,
    ResolveUid,
    UidForMember,
)
from oxsync.formats.vcard_tables import NOT_IN_VCARD, TABLE
from oxsync.model.contact import Contact

__all__ = ["ParsedCard", "VCardError", "card_inputs", "contact_to_vcard", "contacts_to_vcf", "parse_vcards",
           "source_version"]

VERSIONS = ("3.0", "4.0")
PRODID = "-//oxsync//oxsync vCard//EN"
LINE_OCTETS = 75

_NEWLINE = re.compile(r"\r\n|\r|\n")
_BEGIN = re.compile(r"^begin:vcard[ \t]*$", re.IGNORECASE)
_END = re.compile(r"^end:vcard[ \t]*$", re.IGNORECASE)
_VERSION = re.compile(r"^version:[ \t]*(\S+)", re.IGNORECASE)

DROPPED = frozenset({"VERSION", "PRODID", "REV", "LABEL", "BEGIN", "END"})
"""Regenerated, or derived from mapped data (LABEL from ADR): kept, they would go stale after an edit.
Stray BEGIN/END lines (a nested component) would end the card early in other clients' parsers."""


def _index(table: tuple[Entry, ...]) -> dict[str, tuple[Entry, ...]]:
    """Property name -> the rows reading it, in table order (a line goes to the first that takes it)."""
    index: dict[str, tuple[Entry, ...]] = {}
    for entry in table:
        for name in entry.names:
            index[name] = (*index.get(name, ()), entry)
    return index


ENTRIES_BY_NAME = _index(TABLE)


class VCardError(ValueError):
    """The input as a whole is refused (e.g. larger than limits.max_import_bytes)."""


@dataclass(frozen=True)
class ParsedCard:
    """One card of the input: `line` is its BEGIN:VCARD line (or the first stray line).

    Exactly one of `contact` and `error` is set; `error_line` is the offending line when known."""

    line: int
    contact: Contact | None = None
    error: str | None = None
    error_line: int | None = None


@dataclass
class _RawCard:
    start: int
    lines: list[tuple[int, str]]


# ---- splitting ----


def _is_qp_pending(parts: list[str]) -> bool:
    """A quoted-printable value ending in '=' continues on the next physical line (vCard 2.1)."""
    if not parts[-1].endswith("="):
        return False
    head = parts[0].split(":", 1)[0].upper()
    return "QUOTED-PRINTABLE" in head


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first physical line number, unfolded line); blank lines end a line and are skipped."""
    parts: list[str] = []
    start = 0
    qp = False
    for number, physical in enumerate(_NEWLINE.split(text), 1):
        if parts and qp:
            parts.append("\n" + physical)  # keep "=\n": the QP decoder drops soft breaks itself
        elif parts and physical[:1] in (" ", "\t"):
            parts.append(physical[1:])
        else:
            if parts:
                yield start, "".join(parts)
            parts, start = ([physical], number) if physical.strip() else ([], number)
        qp = bool(parts) and _is_qp_pending(parts)
    if parts:
        yield start, "".join(parts)


def _split_cards(text: str) -> Iterator[_RawCard | ParsedCard]:
    """Group logical lines into cards; structural problems come out as ParsedCard errors."""
    card: _RawCard | None = None
    stray: int | None = None
    for number, line in _logical_lines(text):
        if _BEGIN.match(line):
            if card is not None:
                yield ParsedCard(card.start, error=f"vCard starting at line {card.start} has no END:VCARD "
                                 f"before the next BEGIN:VCARD at line {number}", error_line=number)
            card, stray = _RawCard(number, []), None
        elif _END.match(line):
            if card is None:
                yield ParsedCard(number, error=f"line {number}: END:VCARD without BEGIN:VCARD",
                                 error_line=number)
            else:
                yield card
            card = None
        elif card is not None:
            card.lines.append((number, line))
        elif stray is None:
            stray = number
            yield ParsedCard(number, error=f"line {number}: text outside BEGIN:VCARD ... END:VCARD",
                             error_line=number)
    if card is not None:
        last = card.lines[-1][0] if card.lines else card.start
        yield ParsedCard(card.start, error=f"vCard starting at line {card.start} has no END:VCARD "
                         "before the end of the input", error_line=last)


# ---- reading ----


def _is_qp(raw: str) -> bool:
    return "QUOTED-PRINTABLE" in raw.split(":", 1)[0].upper()


def _prop(raw: str, number: int) -> Prop:
    """Parse with vobject's content-line grammar; only quoted-printable lines pay for a ContentLine
    (which decodes them, honouring CHARSET): building one per line doubles the parsing time."""
    try:
        name, param_list, value, group = parseLine(raw, number)
        params: Params = {}
        singles: list[str] = []
        if _is_qp(raw):
            line = ContentLine(name, param_list, value, group, encoded=True, lineNumber=number)
            params, singles, value = line.params, line.singletonparams, line.value
        else:
            for param in param_list:
                if len(param) == 1:
                    singles.append(param[0])
                else:
                    params.setdefault(param[0].upper(), []).extend(param[1:])
    except (LookupError, UnicodeError) as exc:  # unknown CHARSET, bytes not in it
        raise CardError(f"line {number}: cannot decode quoted-printable value ({exc})", number) from exc
    except (VObjectError, ValueError) as exc:
        raise CardError(f"line {number}: not a vCard content line: {raw[:60]!r}", number) from exc
    types = {t.strip().lower() for v in params.get("TYPE", []) for t in v.split(",")}
    types.update(s.lower() for s in singles)  # vCard 2.1: TEL;WORK;VOICE
    if "PREF" in params:  # vCard 4.0: PREF=1 instead of TYPE=pref
        types.add("pref")
    types.discard("")
    return Prop(name.upper(), group, params, frozenset(types), value, number)


def _verbatim(raw: str, prop: Prop) -> str:
    """The line as read; a quoted-printable one is rewritten decoded (it may span physical lines)."""
    if not _is_qp(raw):
        return raw
    params = {k: v for k, v in prop.params.items() if k not in ("ENCODING", "CHARSET")}
    return _format(prop.group, prop.name, params, prop.value.replace("\r\n", "\\n").replace("\n", "\\n"))


def _card_size(card: _RawCard) -> int:
    return sum(len(line.encode("utf-8", "surrogatepass")) + 2 for _, line in card.lines)


def _read_card(card: _RawCard, ctx: Ctx) -> Contact:
    cap = ctx.limits.max_object_bytes
    if sum(len(line) for _, line in card.lines) * 4 > cap and _card_size(card) > cap:
        raise CardError(f"card of {_card_size(card)} bytes exceeds limits.max_object_bytes ({cap})")
    ctx.version = next((m[1] for _, line in card.lines if (m := _VERSION.match(line))), "3.0")
    contact = Contact()
    unknown: list[str] = []
    for number, raw in card.lines:
        prop = _prop(raw, number)
        if prop.name in DROPPED:
            continue
        key: str | None = None
        for entry in ENTRIES_BY_NAME.get(prop.name, ()):
            try:
                key = entry.read(prop, contact, ctx)
            except ValueError:
                key = None
            if key is not None:
                break
        if key is None:
            unknown.append(_verbatim(raw, prop))
        elif key and prop.group:
            contact.extra[EXTRA_GROUP + key] = prop.group
    if unknown:
        contact.extra[EXTRA_LINES] = "\r\n".join(unknown)
    return contact


def parse_vcards(
    text: str, *, resolve_uid: ResolveUid | None = None, limits: LimitSettings | None = None
) -> Iterator[ParsedCard]:
    """Parse every card of `text` lazily, one ParsedCard each; a bad card does not stop the rest.

    `resolve_uid(uid)` maps a group member's contact UID to (contact_id, folder_id, email,
    display_name), or None (the MEMBER line is then kept verbatim in `extra`). Input larger than
    `limits.max_import_bytes` is refused at once with VCardError."""
    limits = limits or LimitSettings()
    cap = limits.max_import_bytes
    if len(text) > cap or (len(text) * 4 > cap and len(text.encode("utf-8", "surrogatepass")) > cap):
        raise VCardError(f"vCard input exceeds limits.max_import_bytes ({cap} bytes)")
    return _parse(text, resolve_uid, limits)


def _parse(text: str, resolve_uid: ResolveUid | None, limits: LimitSettings) -> Iterator[ParsedCard]:
    for item in _split_cards(text):
        if isinstance(item, ParsedCard):
            yield item
            continue
        try:
            contact = _read_card(item, Ctx(limits=limits, resolve_uid=resolve_uid))
        except CardError as exc:
            where = exc.line if exc.line is not None else item.start
            yield ParsedCard(item.start, error=f"vCard at line {item.start}: {exc}", error_line=where)
        else:
            yield ParsedCard(item.start, contact=contact)


# ---- writing ----


def _format(group: str | None, name: str, params: Params, value: str) -> str:
    head = f"{group}.{name}" if group else name
    for key in sorted(params):
        head += f";{key}={','.join(dquoteEscape(v) for v in params[key])}"
    return f"{head}:{value}"


def _fold(line: str) -> str:
    """Fold at 75 octets (RFC 6350 §3.2) without splitting a UTF-8 sequence; CRLF-terminated."""
    data = line.encode("utf-8", "surrogatepass")
    if len(data) <= LINE_OCTETS:
        return line + "\r\n"
    chunks: list[str] = []
    start, width = 0, LINE_OCTETS
    while start < len(data):
        end = min(start + width, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        chunks.append(data[start:end].decode("utf-8", "surrogatepass"))
        start, width = end, LINE_OCTETS - 1
    return "\r\n ".join(chunks) + "\r\n"


def contact_to_vcard(
    contact: Contact, version: str = "3.0", *, uid_for_member: UidForMember | None = None
) -> str:
    """Serialise one contact (or distribution list) as a vCard 3.0 or 4.0, CRLF, folded at 75 octets.

    `uid_for_member(member)` gives the UID of a member's contact, so it can be written as urn:uuid:;
    without it (or when it returns None) the member is written as mailto:."""
    if version not in VERSIONS:
        raise ValueError(f"vCard version must be one of {VERSIONS}, not {version!r}")
    ctx = Ctx(version=version, uid_for_member=uid_for_member)
    out = ["BEGIN:VCARD\r\n", f"VERSION:{version}\r\n", f"PRODID:{PRODID}\r\n"]
    for entry in TABLE:
        for line in entry.write(contact, ctx):
            group = contact.extra.get(EXTRA_GROUP + line.key) if line.key else None
            out.append(_fold(_format(group, line.name, line.params, line.value)))
    out.extend(_fold(raw) for raw in contact.extra.get(EXTRA_LINES, "").split("\r\n") if raw)
    out.append("END:VCARD\r\n")
    return "".join(out)


def card_inputs(contact: Contact) -> tuple[Any, ...] | None:
    """What `contact_to_vcard` reads of a contact, as a value: equal inputs give the same text in the
    same version (fields NOT_IN_VCARD are not written; `extra` is read by key, so compared by key).
    None for a distribution list (its members' UIDs are read from other objects)."""
    if contact.distribution_list is not None:
        return None
    values = (comparable(getattr(contact, name)) for name in field_names(type(contact), NOT_IN_VCARD))
    return type(contact), *values, comparable(sorted(contact.extra.items()))


def source_version(text: str) -> str | None:
    """The VERSION of a single vCard text if we can write that version (3.0, 4.0), else None."""
    found = re.search(r"^version:[ \t]*(\S+)", text, re.IGNORECASE | re.MULTILINE)
    return found[1] if found and found[1] in VERSIONS else None


def contacts_to_vcf(
    contacts: Iterable[Contact], version: str = "3.0", *, uid_for_member: UidForMember | None = None
) -> str:
    """Concatenate the vCards of `contacts` (a .vcf export / CardDAV address book dump)."""
    return "".join(contact_to_vcard(c, version, uid_for_member=uid_for_member) for c in contacts)
