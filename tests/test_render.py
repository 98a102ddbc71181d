"""The per-item isolation helper (oxsync.render) and the render-time text sanitiser (oxsync.model.text)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from lxml import etree

from oxsync import render
from oxsync.model.text import has_unsafe_chars, xml_safe


@dataclass
class Item:
    object_id: int
    folder_id: int
    title: str


def _render(item: Item) -> str:
    if item.title == "boom":
        raise ValueError("year 10000 is out of range: secret personal text")
    return f"<{item.object_id}>"


def test_render_each_skips_the_broken_item_logs_once_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    before = render.skipped_items_total().get("test", 0)
    items = [Item(1, 7, "a"), Item(2, 7, "boom"), Item(3, 7, "c")]
    with caplog.at_level(logging.WARNING, logger="oxsync.render"):
        out = render.render_each("test", items, _render)
    assert out == ["<1>", "<3>"]
    assert render.skipped_items_total()["test"] == before + 1
    lines = [r for r in caplog.records if r.name == "oxsync.render"]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert "object=2" in message and "folder=7" in message and "dialect=test" in message and "ValueError" in message
    assert "secret" not in message and lines[0].exc_info is None  # no personal data, no traceback


def test_render_one_returns_none_and_listeners_hear_of_it() -> None:
    heard: list[str] = []
    render.add_skip_listener(heard.append)
    assert render.render_one("test-listener", Item(5, 1, "boom"), _render, folder_id=9) is None
    assert render.render_one("test-listener", Item(6, 1, "ok"), _render) == "<6>"
    assert heard == ["test-listener"]


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x0b", "\x0c", "\x1f", "\ufffe", "\uffff", "\ud800", "\udfff"])
def test_xml_safe_replaces_what_xml_cannot_carry(bad: str) -> None:
    text = f"a{bad}b\tc\nd\re"
    assert has_unsafe_chars(text)
    cleaned = xml_safe(text)
    assert cleaned == "a\ufffdb\tc\nd\re"
    etree.Element("x").text = cleaned  # lxml accepts it
    cleaned.encode("utf-8")


def test_xml_safe_keeps_clean_text_as_is() -> None:
    text = "Réunion \U0001f600 \t\n ok"
    assert xml_safe(text) is text and not has_unsafe_chars(text)


def test_printable_text_is_clean_without_a_search() -> None:
    """`xml_safe` takes `str.isprintable` as proof of clean text: no code point is printable and matched by
    `XML_UNSAFE` (all of them checked), so the short cut never lets one through."""
    from oxsync.model.text import XML_UNSAFE

    every = (chr(cp) for cp in range(0x110000))
    assert not [c for c in every if c.isprintable() and XML_UNSAFE.search(c)]


class _CountingPattern:
    def __init__(self, pattern) -> None:  # type: ignore[no-untyped-def]
        self.pattern, self.searches = pattern, 0

    def search(self, value: str):  # type: ignore[no-untyped-def]
        self.searches += 1
        return self.pattern.search(value)

    def sub(self, repl: str, value: str) -> str:
        return str(self.pattern.sub(repl, value))


def test_a_window_of_contacts_searches_no_printable_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store read and a Sync window pass every string of an item through `xml_safe` (twice: decoded, then
    written): for the bench's contacts that was 29 regex searches per item, none now (their texts are
    printable); a text with a line break is still searched, and a control character still replaced."""
    from bench.peers_objects import card_contacts
    from oxsync.eas.mapping.common import MapContext
    from oxsync.eas.mapping.contacts import CONTACTS
    from oxsync.model import text
    from oxsync.store import dataclass_json

    contacts = card_contacts(0, 20)
    docs = [dataclass_json.to_dict(c) for c in contacts]
    counting = _CountingPattern(text.XML_UNSAFE)
    monkeypatch.setattr(text, "XML_UNSAFE", counting)
    ctx = MapContext(14.1, user_id=1)
    for c, doc in zip(contacts, docs, strict=True):
        CONTACTS.to_wbxml(dataclass_json.from_dict(type(c), doc), ctx)
    assert counting.searches == 0, counting.searches / 20
    assert xml_safe("two\nlines") == "two\nlines" and counting.searches == 1
    assert xml_safe("bell\x07") == "bell\ufffd"
