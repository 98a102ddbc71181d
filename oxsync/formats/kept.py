"""The client's own text, kept with an object and patched where the model changed since.

Why: a mapper onto the OX model cannot reproduce every spelling a client uses (CLASS:CONFIDENTIAL,
TYPE=pref, X-AIM, its own VTIMEZONE, alarm texts, parameter order...). Instead of teaching every
converter every variant, a DAV PUT keeps three texts of one resource:

* `source`: what the client sent;
* `baseline`: our own rendering of what the mappers read from it (before the store saw it);
* `current`: our rendering of the object as stored now (after edits through OX, EAS, a store rule).

When `current` equals `baseline` (ignoring the volatile stamps DTSTAMP, LAST-MODIFIED, CREATED, REV),
nothing the model holds has changed and the source is served verbatim. Otherwise the source is
patched: component by component (matched by UID/RECURRENCE-ID, TZID, TRIGGER...) and property by
property, a property whose rendering differs between baseline and current is replaced by the current
one, keeping the source's parameters that our rendering does not speak about (TYPE=pref, ROLE, RSVP,
X- parameters) and the source's spelling of anything unchanged. A property the source wrote under
another name (X-AIM read as IMPP) is matched by its value.

Works on content lines only (RFC 5545 / RFC 6350 share the syntax), so it serves iCalendar and vCard.
`equivalent` is the normaliser used to decide whether a PUT may answer with a strong ETag: property
order and line folding do not count, everything else does.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from oxsync.formats.icalscan import fold

__all__ = ["BASELINE", "SOURCE", "Comp", "equivalent", "keep", "kept_text", "parse", "patch"]

SOURCE = "kept:source"
BASELINE = "kept:baseline"
"""Keys in `ObjectBase.extra`: not property names, so no mapper ever writes them out."""

VOLATILE = frozenset({"DTSTAMP", "LAST-MODIFIED", "REV", "CREATED"})
"""Stamps the server maintains: not compared; replaced by the current ones once a component changed
(but CREATED, which an edit does not move: the client's, or none if it sent none)."""
_REPLACED = VOLATILE - {"CREATED"}

_VALUE_PARAMS = ("TZID", "VALUE")
"""Parameters that say how a value is read: they come with a changed value, never from the source."""
_BREAK = re.compile(r"\r\n|\n|\r")
_NAME = re.compile(r"^(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?!//)")


# ------------------------------------------------------------------------------------ structure

@dataclass
class Comp:
    """One component: its property lines (unfolded) in order, and its sub-components."""

    name: str
    props: list[str] = field(default_factory=list)
    children: list[Comp] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        if self.name:
            yield f"BEGIN:{self.name}"
        yield from self.props
        for child in self.children:
            yield from child.lines()
        if self.name:
            yield f"END:{self.name}"


def _unfold(text: str) -> Iterator[str]:
    parts: list[str] = []
    for physical in _BREAK.split(text):
        if physical[:1] in (" ", "\t") and parts:
            parts.append(physical[1:])
            continue
        if parts:
            yield "".join(parts)
        parts = [physical] if physical.strip() else []
    if parts:
        yield "".join(parts)


def parse(text: str) -> Comp:
    """The component tree of a text (a nameless root holding VCALENDAR or VCARD components)."""
    root = Comp("")
    stack = [root]
    for line in _unfold(text):
        head = line[:6].upper()
        if head.startswith("BEGIN:"):
            child = Comp(line[6:].strip().upper())
            stack[-1].children.append(child)
            stack.append(child)
        elif head.startswith("END:") and len(stack) > 1 and line[4:].strip().upper() == stack[-1].name:
            stack.pop()
        else:
            stack[-1].props.append(line)
    return root


def render(comp: Comp) -> str:
    return "".join(f"{part}\r\n" for line in comp.lines() for part in fold(line))


# ------------------------------------------------------------------------------------ content lines

def prop_name(line: str) -> str:
    found = _NAME.match(line)
    return found[2].upper() if found else ""


def _split(line: str) -> tuple[list[str], str]:
    """(head pieces: name then each parameter, value): ';' and ':' inside quotes do not count."""
    pieces: list[str] = []
    start, quoted = 0, False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in ";:":
            pieces.append(line[start:index])
            start = index + 1
            if char == ":":
                return pieces, line[index + 1:]
    return [*pieces, line[start:]], ""


def _params(pieces: list[str]) -> dict[str, tuple[str, ...]]:
    """Parameter name -> its values, normalised for comparison (case, quotes, order, repetition)."""
    out: dict[str, set[str]] = {}
    for piece in pieces[1:]:
        key, _, value = piece.partition("=")
        values = out.setdefault(key.strip().upper(), set())
        values.update(v.strip().strip('"').lower() for v in value.split(","))
    return {key: tuple(sorted(values)) for key, values in out.items()}


def _value_key(line: str) -> str:
    """What identifies a line among its namesakes: its value, case and URI scheme aside."""
    value = _split(line)[1].strip().lower().replace("\\", "")
    return _SCHEME.sub("", value)


def _merge(source: str, base: str, current: str) -> str:
    """`current`'s data in `source`'s spelling: parameters and value unchanged since `base` stay."""
    s_head, s_value = _split(source)
    b_head, b_value = _split(base)
    c_head, c_value = _split(current)
    b_params, c_params = _params(b_head), _params(c_head)
    if b_value != c_value:  # a new value is read with the current zone and type
        for key in _VALUE_PARAMS:
            b_params[key], c_params[key] = ("-",), c_params.get(key, ("",))
    def key_of(piece: str) -> str:
        return piece.partition("=")[0].strip().upper()

    kept: list[str] = []
    seen: set[str] = set()
    for piece in s_head[1:]:
        key = key_of(piece)
        if b_params.get(key) != c_params.get(key):  # changed: the current spelling, in place
            if key not in seen:
                kept.extend(p for p in c_head[1:] if key_of(p) == key)
        else:
            kept.append(piece)
        seen.add(key)
    for piece in c_head[1:]:
        key = key_of(piece)
        if key not in seen and b_params.get(key) != c_params.get(key):
            kept.append(piece)
    value = s_value if b_value == c_value else c_value
    return ";".join([s_head[0], *kept]) + ":" + value


# ------------------------------------------------------------------------------------ pairing

def _child_key(comp: Comp) -> str:
    def first(name: str) -> str:
        return next((_split(line)[1].strip() for line in comp.props if prop_name(line) == name), "")

    if comp.name in ("VEVENT", "VTODO", "VJOURNAL"):
        return first("RECURRENCE-ID")[:8]
    if comp.name == "VTIMEZONE":
        return first("TZID")
    if comp.name == "VALARM":
        return _trigger_key(next((line for line in comp.props if prop_name(line) == "TRIGGER"), ""))
    if comp.name in ("STANDARD", "DAYLIGHT"):
        return first("DTSTART")
    return ""


def _trigger_key(line: str) -> str:
    head, value = _split(line)
    related = _params(head).get("RELATED", ("start",))[0]
    try:
        from icalendar import vDDDTypes

        return f"{related}|{vDDDTypes.from_ical(value.strip())}"
    except (ValueError, TypeError):
        return f"{related}|{value.strip()}"


def _pair(left: list[Comp], right: list[Comp], positional: bool) -> dict[int, int]:
    """Left index -> right index: same name and key first, then (if allowed) in order by name."""
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    right_keys = [(c.name, _child_key(c)) for c in right]
    for i, comp in enumerate(left):
        key = (comp.name, _child_key(comp))
        j = next((j for j, k in enumerate(right_keys) if k == key and j not in taken), None)
        if j is not None:
            pairs[i] = j
            taken.add(j)
    if positional:
        for i, comp in enumerate(left):
            if i in pairs or comp.name == "VTIMEZONE":
                continue
            j = next((j for j, c in enumerate(right) if c.name == comp.name and j not in taken), None)
            if j is not None:
                pairs[i] = j
                taken.add(j)
    return pairs


def _pair_lines(left: list[str], right: list[str]) -> dict[int, int]:
    """Left -> right among namesakes: equal text, then equal value, then in order."""
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for match in (lambda a, b: a == b, lambda a, b: _value_key(a) == _value_key(b), lambda a, b: True):
        for i, line in enumerate(left):
            if i in pairs:
                continue
            j = next((j for j, other in enumerate(right) if j not in taken and match(line, other)), None)
            if j is not None:
                pairs[i] = j
                taken.add(j)
    return pairs


# ------------------------------------------------------------------------------------ patching

def _stable(lines: Iterable[str]) -> Counter[str]:
    return Counter(line for line in lines if prop_name(line) not in VOLATILE)


def _same(base: Comp, current: Comp) -> bool:
    if base.name != current.name or _stable(base.props) != _stable(current.props):
        return False
    if len(base.children) != len(current.children):
        return False
    pairs = _pair(base.children, current.children, positional=False)
    return len(pairs) == len(base.children) and all(
        _same(base.children[i], current.children[j]) for i, j in pairs.items())


def _patch_unit(source: list[tuple[int, str]], base: list[str], current: list[str], renamed: bool
                ) -> tuple[list[str], list[int]]:
    """New lines for one property name, and the source positions they replace (`renamed`: the source
    wrote them under another name, so a changed one is written in our spelling)."""
    s_lines = [line for _, line in source]
    b_to_s = _pair_lines(base, s_lines)
    c_to_b = {c: b for b, c in _pair_lines(base, current).items()}
    b_to_c = {b: c for c, b in c_to_b.items()}
    s_to_b = {s: b for b, s in b_to_s.items()}
    out: list[str] = []
    last = 0
    for s, line in enumerate(s_lines):
        b = s_to_b.get(s)
        if b is None and base:  # several source lines we rendered as one (EXDATE, CATEGORIES)
            b = last
            if b in b_to_c and current[b_to_c[b]] == base[b]:
                out.append(line)
            continue
        if b is None:
            out.append(line)  # never rendered by us: not ours to change
        elif b in b_to_c:
            c_line = current[b_to_c[b]]
            out.append(line if c_line == base[b] else c_line if renamed else _merge(line, base[b], c_line))
        # else: the model no longer holds it
        last = b if b is not None else last
    for c, c_line in enumerate(current):
        b = c_to_b.get(c)
        if b is None or (b not in b_to_s and c_line != base[b]):
            out.append(c_line)
    return out, [position for position, _ in source]


def _by_name(lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(prop_name(line), []).append(line)
    return out


def _patch(source: Comp, base: Comp, current: Comp) -> Comp:
    if _same(base, current):
        return source
    out = Comp(source.name)
    names = list(dict.fromkeys(prop_name(line) for line in [*source.props, *base.props, *current.props]))
    base_names = {prop_name(line) for line in base.props}
    by_name: dict[str, list[tuple[int, str]]] = {}
    for position, line in enumerate(source.props):
        by_name.setdefault(prop_name(line), []).append((position, line))
    base_by, current_by = _by_name(base.props), _by_name(current.props)
    replaced: dict[int, list[str]] = {}
    dropped: set[int] = set()
    appended: list[str] = []
    claimed: set[int] = set()
    for name in names:
        b_lines, c_lines = base_by.get(name, []), current_by.get(name, [])
        if name in VOLATILE:
            b_lines = []  # stamps: the current ones once anything else changed
        elif Counter(b_lines) == Counter(c_lines):
            continue
        s_lines = [(p, line) for p, line in by_name.get(name, []) if p not in claimed]
        renamed = not s_lines and bool(b_lines)
        if renamed:  # written by the client under another name (X-AIM for IMPP)?
            keys = {_value_key(line) for line in b_lines}
            s_lines = [(p, line) for p, line in enumerate(source.props)
                       if prop_name(line) not in base_names and p not in claimed and _value_key(line) in keys]
        claimed.update(p for p, _ in s_lines)
        if name in VOLATILE:
            if not c_lines or name not in _REPLACED:
                continue
            new_lines, positions = c_lines, [p for p, _ in s_lines]
        else:
            new_lines, positions = _patch_unit(s_lines, b_lines, c_lines, renamed)
        if positions:
            replaced[positions[0]] = new_lines
            dropped.update(positions[1:])
        else:
            appended.extend(new_lines)
    for position, line in enumerate(source.props):
        if position in replaced:
            out.props.extend(replaced[position])
        elif position not in dropped:
            out.props.append(line)
    out.props.extend(appended)
    out.children = _patch_children(source.children, base.children, current.children)
    return out


def _patch_children(source: list[Comp], base: list[Comp], current: list[Comp]) -> list[Comp]:
    b_to_c = _pair(base, current, positional=True)
    b_to_s = _pair(base, source, positional=True)
    s_to_b = {s: b for b, s in b_to_s.items()}
    out: list[Comp] = []
    for s, comp in enumerate(source):
        b = s_to_b.get(s)
        if b is None or comp.name == "VTIMEZONE" and b not in b_to_c:
            out.append(comp)  # not ours, or a zone some kept line may still name
        elif b in b_to_c:
            out.append(_patch(comp, base[b], current[b_to_c[b]]))
    c_from_b = {c: b for b, c in b_to_c.items()}
    for c, comp in enumerate(current):
        b = c_from_b.get(c)
        if b is None or (b not in b_to_s and not _same(base[b], comp)):
            out.append(comp)
    zones = [comp for comp in out if comp.name == "VTIMEZONE"]
    return zones + [comp for comp in out if comp.name != "VTIMEZONE"] if zones else out


def patch(source: str, baseline: str, current: str) -> str:
    """`source` updated with every difference between `baseline` and `current` (see the module doc)."""
    if baseline == current or _STAMP_LINE.sub("", baseline) == _STAMP_LINE.sub("", current):
        return source  # the common case, without building trees
    base, now = parse(baseline), parse(current)
    if _same(base, now):
        return source
    given = parse(source)
    named_before = {tzid for calendar in given.children for tzid in _named_zones(calendar)}
    out = _patch(given, base, now)
    for calendar in out.children:
        _add_zones(calendar, now, named_before)
    return render(out)


_STAMP_LINE = re.compile(r"^(?:DTSTAMP|LAST-MODIFIED|REV|CREATED)[;:].*\r?\n(?:[ \t].*\r?\n)*", re.MULTILINE)


_TZID = re.compile(r';TZID=(?:"([^"]*)"|([^;:]*))', re.IGNORECASE)


def _named_zones(comp: Comp) -> Iterator[str]:
    for line in comp.props:
        for found in _TZID.finditer(";".join(_split(line)[0])):
            yield found[1] if found[1] is not None else found[2]
    for child in comp.children:
        yield from _named_zones(child)


def _add_zones(calendar: Comp, current: Comp, named_before: set[str]) -> None:
    """A patched line may name a zone the source never named: add our VTIMEZONE for it (a zone the
    client named without defining it, RFC 7809 style, stays undefined as sent)."""
    defined = {_child_key(c) for c in calendar.children if c.name == "VTIMEZONE"} | named_before
    ours = {_child_key(c): c for cal in current.children for c in cal.children if c.name == "VTIMEZONE"}
    missing = [ours[tzid] for tzid in dict.fromkeys(_named_zones(calendar)) if tzid not in defined and tzid in ours]
    calendar.children[:0] = missing


# ------------------------------------------------------------------------------------ helpers

def keep(extra: dict[str, str], source: str, baseline: str) -> None:
    """Remember the client's text and our reading of it with an object."""
    extra[SOURCE] = source
    extra[BASELINE] = baseline


def kept_text(extra: dict[str, str], current: str) -> str:
    """What to serve: the kept source patched with the model's changes, or `current` if none is kept."""
    source, baseline = extra.get(SOURCE), extra.get(BASELINE)
    if not source or baseline is None:
        return current
    return patch(source, baseline, current)


def _canonical(comp: Comp) -> tuple[str, tuple[str, ...], tuple[object, ...]]:
    return comp.name, tuple(sorted(comp.props)), tuple(sorted(_canonical(c) for c in comp.children))


def equivalent(left: str, right: str) -> bool:
    """Equal but for property (and sibling component) order, line folding and line endings. Equal texts
    are equivalent without building their trees (a PUT's served text is most often the client's own)."""
    return left == right or _canonical(parse(left)) == _canonical(parse(right))
