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
    """`value` with every character XML 1.0 cannot carry replaced by U+FFFD (the same object if clean)."""
    if XML_UNSAFE.search(value) is None:
        return value
    return XML_UNSAFE.sub(REPLACEMENT, value)
