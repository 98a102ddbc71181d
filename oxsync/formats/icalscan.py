"""iCalendar content lines: unfolding, folding, and splitting a stream into component blocks.

Works on text, before any typed parsing, so that every block keeps the physical line number it starts on
and a broken component (missing END, malformed line) is isolated without stopping its neighbours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Block", "ParseError", "content_name", "content_value", "fold", "logical_lines", "scan", "unescape",
]


class ParseError(ValueError):
    """A component that could not be read; `line` is the 1-based physical line of the problem."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line, self.message = line, message


COMPONENTS = ("VEVENT", "VTODO")
MAX_DEPTH = 6
"""VCALENDAR > VEVENT > VALARM is 3 deep; anything much deeper is hostile or broken."""
_BREAK = re.compile(r"\r\n|\n|\r")
_PARAM = r'(?:"[^"]*"|[^";:,]*)'
CONTENT_LINE = re.compile(rf'([A-Za-z0-9-]+)(?:;[A-Za-z0-9-]+={_PARAM}(?:,{_PARAM})*)*:')
NAME_TOKEN = re.compile(r"[A-Z0-9-]+")


def content_name(line: str) -> str:
    match = CONTENT_LINE.match(line)
    return match[1].upper() if match else ""


def content_value(line: str) -> str:
    match = CONTENT_LINE.match(line)
    return line[match.end():] if match else ""


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Unfolded content lines with the physical line number each starts on."""
    start = 0
    parts: list[str] = []
    for number, physical in enumerate(_BREAK.split(text), 1):
        if physical[:1] in (" ", "\t") and parts:
            parts.append(physical[1:])
            continue
        if parts:
            yield start, "".join(parts)
        start, parts = number, [physical] if physical.strip() else []
    if parts:
        yield start, "".join(parts)


@dataclass
class Block:
    name: str
    line: int
    raw: list[str] = field(default_factory=list)
    props: list[tuple[int, str]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)
    error: ParseError | None = None
    _names: list[str] = field(default_factory=list, repr=False, compare=False)

    def text(self) -> str:
        return "\r\n".join(self.raw) + "\r\n"

    def names(self) -> list[str]:
        """The name of each of `props` (`content_name`), matched once per line however many times a
        parse asks for a property (the UID, RECURRENCE-ID twice, each kept property, every line left
        over): `scan` notes them as it reads the lines; a block built otherwise has them matched on first use."""
        if len(self._names) != len(self.props):
            self._names = [content_name(line) for _, line in self.props]
        return self._names

    def add(self, number: int, line: str, name: str) -> str:
        """A content line of this block, and its `name` (`content_name(line)`, as `scan` matched it)."""
        self.props.append((number, line))
        self.raw.append(line)
        if len(self._names) == len(self.props) - 1:
            self._names.append(name)
        return name

    def lines_of(self, name: str) -> list[str]:
        return [line for (_, line), found in zip(self.props, self.names(), strict=True) if found == name]

    def line_of(self, name: str) -> int:
        return next((number for (number, _), found in zip(self.props, self.names(), strict=True) if found == name), self.line)


def scan(text: str) -> tuple[list[Block], list[Block], list[ParseError], dict[str, str]]:
    """Split the input into VTIMEZONE blocks, VEVENT/VTODO blocks, structural errors, calendar props."""
    zones: list[Block] = []
    components: list[Block] = []
    errors: list[ParseError] = []
    calendar: dict[str, str] = {}
    stack: list[Block] = []

    def owner() -> Block | None:
        return next((b for b in reversed(stack) if b.name in (*COMPONENTS, "VTIMEZONE")), None)

    def unterminated(blocks: list[Block], why: str) -> None:
        errors.extend(b.error or ParseError(b.line, f"BEGIN:{b.name} has no END:{b.name}{why}")
                      for b in blocks if b.name in COMPONENTS)

    def close(line: str) -> None:
        block = stack.pop()
        block.raw.append(line)
        if stack and stack[-1].name != "VCALENDAR":
            stack[-1].children.append(block)
            stack[-1].raw.extend(block.raw)
        elif block.name == "VTIMEZONE":
            zones.append(block)
        elif block.name in COMPONENTS:
            components.append(block)

    for number, line in logical_lines(text):
        upper = line[:6].upper()
        if upper.startswith("BEGIN:"):
            name = line[6:].strip().upper()
            open_at = next((i for i, b in enumerate(stack) if b.name in COMPONENTS), None)
            if name in COMPONENTS and open_at is not None:
                unterminated(stack[open_at:], f" (BEGIN:{name} at line {number})")
                del stack[open_at:]
            if len(stack) >= MAX_DEPTH:  # copying raw lines upwards must stay linear
                target = owner()
                if target is not None:
                    target.error = target.error or ParseError(number, f"components nested deeper than {MAX_DEPTH}")
                continue
            stack.append(Block(name, number, [line]))
        elif upper.startswith("END:"):
            name = line[4:].strip().upper()
            depth = next((i for i in range(len(stack) - 1, -1, -1) if stack[i].name == name), None)
            if depth is None:
                target = owner()
                problem = ParseError(number, f"END:{name} without BEGIN:{name}")
                if target is None:
                    errors.append(problem)
                else:
                    target.error = target.error or problem
                continue
            unterminated(stack[depth + 1:], f" (END:{name} at line {number})")
            del stack[depth + 1:]
            close(line)
        elif not stack:
            errors.append(ParseError(number, "content line outside BEGIN:VCALENDAR/END:VCALENDAR"))
        else:
            block = stack[-1]
            match = CONTENT_LINE.match(line)
            if not match:
                target = owner()
                if target is not None:
                    target.error = target.error or ParseError(number, f"malformed content line {line[:40]!r}")
            name = block.add(number, line, match[1].upper() if match else "")  # content_name(line), this match's
            if block.name == "VCALENDAR":
                calendar[name] = content_value(line)
    unterminated(stack, " (end of input)")
    return zones, components, errors, calendar


def unescape(text: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], text)


def fold(line: str) -> Iterator[str]:
    """RFC 5545 folding at 75 octets, never inside a UTF-8 sequence."""
    data, limit = line.encode("utf-8"), 75
    while len(data) > limit:
        cut = limit
        while cut and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        yield data[:cut].decode("utf-8")
        data, limit = b" " + data[cut:], 75
    yield data.decode("utf-8")
