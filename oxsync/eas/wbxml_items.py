"""An item's ApplicationData written straight to WBXML bytes, for the Sync windows that send thousands.

`ClassMapping.to_eas` builds an `Element` per field, which the encoder then walks again (its tag looked up,
its content checked, its text encoded). An initial Sync does that for every field of every item of the
folder, and only to encode it: the window's elements are read by nothing else. `ItemWriter` writes the same
bytes as it goes (the text fields directly, any other element through `wbxml.encode_element`) and hands
back one sealed element (`Element.sealed`), which the encoder copies into the response. Same bytes as
`encode` of `to_eas`'s tree, page switches included (`tests/test_eas_item_work.py` compares them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from oxsync.eas import codepages
from oxsync.eas.wbxml import END, STR_I, SWITCH_PAGE, Element, WBXMLError, encode_element
from oxsync.model.text import xml_safe

_STR_END: Final = bytes((0, END))
"""The end of an inline string (its NUL) and of its element."""


@dataclass(frozen=True, slots=True)
class TextTag:
    """What goes before a text element's inline string: its tag token from its own page (`same`), or from
    another page (`switch`: SWITCH_PAGE to `page` first). Built once per tag."""

    tag: str
    page: int
    same: bytes
    switch: bytes


@cache
def page_token(tag: str) -> tuple[int, int]:
    """(code page, token) of an emitted ``"Namespace:Name"`` tag (`WBXMLError` for an unknown one, as `encode`)."""
    found = codepages.token_for_tag(tag)
    if found is None:
        raise WBXMLError(f"cannot encode unknown tag {tag!r}")
    return found


@cache
def text_tag(tag: str) -> TextTag:
    """The `TextTag` of an emitted tag (`page_token`)."""
    page, token = page_token(tag)
    return TextTag(tag, page, bytes((token | 0x40, STR_I)), bytes((SWITCH_PAGE, page, token | 0x40, STR_I)))


class ItemWriter:
    """The bytes of one element `tag`'s children, written in document order from the page of its own tag
    (where the encoder stands once it has opened it), then sealed into that element (`seal`)."""

    __slots__ = ("tag", "token", "first_page", "out", "page")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.first_page, self.token = page_token(tag)
        self.out = bytearray()
        self.page = self.first_page

    def text(self, tag: TextTag, text: str) -> None:
        """One text element; `text` is XML-safe already (so no NUL, no lone surrogate: it encodes)."""
        if tag.page == self.page:
            self.out += tag.same
        else:
            self.out += tag.switch
            self.page = tag.page
        self.out += text.encode("utf-8")
        self.out += _STR_END

    def texts(self, tags: tuple[TextTag, ...], values: tuple[Any, ...]) -> None:
        """A run of text fields as `to_eas` writes them: each value but "" and None as its str(), made
        XML-safe (`_str_out`, then `E`). One call per run: most of a run's fields are empty."""
        out = self.out
        page = self.page
        for tag, value in zip(tags, values, strict=True):
            if value:
                text = xml_safe(value) if value.__class__ is str else xml_safe(str(value))
            elif value is None or value.__class__ is str:
                continue
            else:  # 0, False...: written as their str(), as `to_eas` does
                text = xml_safe(str(value))
            if tag.page == page:
                out += tag.same
            else:
                out += tag.switch
                page = tag.page
            out += text.encode("utf-8")
            out += _STR_END
        self.page = page

    def start(self, tag: str) -> None:
        """Open an element that will have children (close it with `end`)."""
        page, token = page_token(tag)
        if page != self.page:
            self.out += bytes((SWITCH_PAGE, page))
            self.page = page
        self.out.append(token | 0x40)

    def end(self) -> None:
        """Close the element `start` opened last."""
        self.out.append(END)

    def elements(self, elems: Iterable[Element]) -> None:
        """Elements built as `Element`s (structured ones: Body, Categories, Recurrence...)."""
        for elem in elems:
            self.page = encode_element(self.out, elem, self.page)

    def seal(self) -> Element:
        """The element holding what was written, sealed (`Element.sealed`): the encoder copies these bytes
        (an element with nothing written is its bare token, as `encode` writes an empty element)."""
        body = bytes((self.token | 0x40,)) + self.out + bytes((END,)) if self.out else bytes((self.token,))
        return Element(self.tag, sealed=(self.first_page, body, self.page))
