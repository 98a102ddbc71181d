"""Text every dialect can carry: XML 1.0 refuses most C0 controls, U+FFFE/U+FFFF and lone surrogates.

Used twice on purpose: at the store boundary (so what is stored can be served) and at render time
(so rows written before that check, or by a mapper bug, still give a well-formed response).
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry (TAB, LF and CR are allowed)."""


def has_unsafe_chars(value: str) -> bool:
    return XML_UNSAFE.search(value) is not None


def xml_safe(value: str) -> str:
    """`value` with every character XML 1.0 cannot carry replaced by U+FFFD (the same object if clean).

    Printable text is clean without a regex search: every character `XML_UNSAFE` matches is a control, a
    surrogate or a noncharacter, none of which `str.isprintable` accepts (every code point checked in
    `tests/test_render.py`). A store read and a Sync window pass each of an item's strings here, most of
    them names, numbers and addresses; text with a line break or a tab still takes the search."""
    if value.isprintable() or XML_UNSAFE.search(value) is None:
        return value
    return XML_UNSAFE.sub(REPLACEMENT, value)
