"""The work of one CalDAV/CardDAV PUT above the store, counted (and the renderings it shares with every read): how many times the client's text is
parsed (icalendar, our vCard reader, the kept-text tree of formats/kept.py) and rendered back, for the
bench's event (external organizer, 2 attendees, alarm, VTIMEZONE) and the bench's vCard, created and
then updated, on a real server over loopback. The answers are checked too: a strong ETag (the served
text is the client's, byte for byte) and that text on GET. Wall-clock time is bench/'s
(bench_peers.py put_N_cpu_ms)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.peers_data import card as bench_card
from bench.peers_data import event as bench_event
from oxsync.dialects import install_all
from oxsync.formats import kept
from oxsync.formats.ical import (
    NOT_RENDERED,
    CalendarItem,
    items_to_ical,
    parse_calendar,
    render_inputs,
)
from oxsync.formats.vcard import card_inputs, contact_to_vcard, parse_vcards
from oxsync.formats.vcard_tables import NOT_IN_VCARD
from oxsync.model.appointment import Confirmation, ParticipantKind
from oxsync.store import schema
from tests.davhelp import Dav, event, todo, vcard
from tests.fixtures import counted_renders


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Calls per kind of work, in this process, from now on."""
    seen: Counter[str] = Counter()

    def counting(module, name: str) -> None:  # type: ignore[no-untyped-def]
        real = getattr(module, name)

        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            seen[f"{module.__name__.rsplit('.', 1)[-1]}.{name}"] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counting(kept, "parse")

    class Stamps:  # kept._STAMP_LINE, counted
        def sub(self, *args):  # type: ignore[no-untyped-def]
            seen["kept.stamp_sub"] += 1
            return real_stamps.sub(*args)
    real_stamps = kept._STAMP_LINE
    monkeypatch.setattr(kept, "_STAMP_LINE", Stamps())
    yield seen


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, auth={"account_poll_seconds": 0},
                          dav={"texts_ahead_delay_seconds": 600.0})
    dav = Dav(running.port, world)
    assert dav.put(f"{dav.calendar()}warm.ics", bench_event(0, 100)).status == 201
    assert dav.put(f"{dav.addressbook()}warm.vcf", bench_card(0)).status == 201
    return dav


@pytest.mark.parametrize("kind", ["event", "card"])
def test_a_put_served_as_sent_builds_no_kept_trees(dav: Dav, work: Counter[str], kind: str) -> None:
    """The PUT's served text equals what the client sent: the strong-ETag check compares the strings
    and parses neither (kept.equivalent parsed both into trees). The served text, the kept text
    patched against the baseline itself, is the source without stripping the stamps of either."""
    folder = dav.calendar() if kind == "event" else dav.addressbook()
    href = folder + ("a.ics" if kind == "event" else "a.vcf")
    texts = [bench_event(1, 100), bench_event(1, 100, "Changed")] if kind == "event" else \
        [bench_card(1), bench_card(1, "Changed")]
    work.clear()
    created = dav.put(href, texts[0], If_None_Match="*")
    assert created.status == 201 and created.headers.get("etag")
    assert work["kept.parse"] == 0 and work["kept.stamp_sub"] == 0, work
    updated = dav.put(href, texts[1], If_Match=created.headers["etag"])
    assert updated.status == 204 and updated.headers.get("etag") not in (None, created.headers["etag"])
    assert work["kept.parse"] == 0 and work["kept.stamp_sub"] == 0, work
    got = dav.request("GET", href)
    assert got.text == texts[1] and got.headers["etag"] == updated.headers["etag"]


OVERRIDE = bench_event(3, 100).replace("RRULE", "X-NONE").replace(  # a series with one moved occurrence
    "SUMMARY:", "RRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:", 1).replace(
    "END:VCALENDAR", bench_event(3, 100).split("END:VTIMEZONE\r\n")[1].replace(
        "BEGIN:VEVENT\r\n", "BEGIN:VEVENT\r\nRECURRENCE-ID;TZID=Europe/Paris:20270104T090000\r\n").replace(
        "END:VCALENDAR\r\n", ""), 1) + "END:VCALENDAR\r\n"
BODIES = {
    "bench.ics": bench_event(2, 100),
    "weekly.ics": bench_event(10, 100),
    "endless.ics": bench_event(30, 100),
    "moved.ics": OVERRIDE,
    "mine.ics": event("mine", extra="ORGANIZER;CN=Alice:mailto:alice@example.com\r\n"
                      "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\nX-ODD;Y=1:kept\r\n"),
    "plain.ics": event("plain", extra="CLASS:CONFIDENTIAL\r\n"),
}


def _cleared_texts(store) -> None:  # type: ignore[no-untyped-def]
    with store.engine.begin() as conn:
        conn.execute(schema.object_texts.delete())


def test_a_caldav_put_read_back_as_written_is_not_rendered_again(
        dav: Dav, store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The PUT's own object, read back after the write, renders from the same model values as the body
    the PUT rendered for its kept baseline (formats.ical.render_inputs): its served text is known without
    a second rendering. That text is exactly what a rendering gives: the same bodies read again after
    the served-text cache was emptied (rendered then) are byte-identical, ETags and Schedule-Tags too."""
    cal = dav.calendar()
    renders = counted_renders(monkeypatch)
    created = dav.put(f"{cal}b.ics", bench_event(1, 100), If_None_Match="*")
    assert created.status == 201 and created.headers.get("etag") and renders == []
    updated = dav.put(f"{cal}b.ics", bench_event(1, 100, "Changed"), If_Match=created.headers["etag"])
    assert updated.status == 204 and updated.headers.get("etag") and renders == []
    tasks = dav.tasks()
    assert dav.put(f"{tasks}t.ics", todo("t", extra="PRIORITY:1\r\n"), If_None_Match="*").status == 201
    assert renders == []
    puts = {name: dav.put(f"{cal}{name}", body) for name, body in BODIES.items()}
    assert {r.status for r in puts.values()} == {201}, {n: r.status for n, r in puts.items()}
    hrefs = [f"{cal}{name}" for name in BODIES] + [f"{cal}b.ics", f"{tasks}t.ics"]
    served = {href: dav.request("GET", href) for href in hrefs}
    _cleared_texts(store)
    before = len(renders)
    again = {href: dav.request("GET", href) for href in hrefs}
    assert len(renders) == before + len(hrefs)  # these were rendered
    for href in hrefs:
        assert again[href].body == served[href].body, href
        assert again[href].headers["etag"] == served[href].headers["etag"], href
        assert again[href].headers.get("schedule-tag") == served[href].headers.get("schedule-tag"), href
    for name, body in BODIES.items():
        assert (puts[name].headers.get("etag") is not None) == (served[f"{cal}{name}"].text == body), name


@pytest.mark.parametrize("kind", ["event", "card"])
def test_a_put_compares_its_inputs_without_listing_fields_again(
        dav: Dav, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """render_inputs / card_inputs (twice per PUT: the body's, the object read back) list a model type's
    fields once per type, not once per object and nested value: a PUT after one of the same shape asks
    `dataclasses.fields` and `is_dataclass` nothing (the answers are still compared in full: see the
    read-back test above and the inputs tests below)."""
    import oxsync.formats.ical as ical_module
    import oxsync.formats.inputs as inputs_module
    import oxsync.formats.vcard as vcard_module

    asked: Counter[str] = Counter()
    for module in (ical_module, inputs_module, vcard_module):
        for name in ("fields", "is_dataclass"):
            real = getattr(module, name, None)
            if real is not None:
                def counting(*args, _real=real, _name=name):  # type: ignore[no-untyped-def]
                    asked[_name] += 1
                    return _real(*args)
                monkeypatch.setattr(module, name, counting)
    folder = dav.calendar() if kind == "event" else dav.addressbook()
    bodies = [bench_event(5, 100), bench_event(7, 100)] if kind == "event" else [bench_card(5), bench_card(7)]
    suffix = ".ics" if kind == "event" else ".vcf"
    first = dav.put(f"{folder}shape-a{suffix}", bodies[0], If_None_Match="*")
    assert first.status == 201 and first.headers.get("etag")
    asked.clear()
    second = dav.put(f"{folder}shape-b{suffix}", bodies[1], If_None_Match="*")
    assert second.status == 201 and second.headers.get("etag")  # still read back as written
    assert asked == Counter(), asked


@pytest.mark.parametrize("body", [bench_event(1, 100), bench_event(10, 100), OVERRIDE])
def test_a_parse_names_each_content_line_once(body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The iCalendar parse of a PUT names each content line once, in `scan` (formats/icalscan.py), from the
    match that checks the line: `lines_of`, `line_of` and the lines left to `extra` read that name instead
    of matching the line again for each property they look for (44 more matches of the bench event). Same
    parse: the items, their `extra` and their line numbers are those of names matched anew."""
    from oxsync.config import LimitSettings
    from oxsync.formats import ical as ical_module
    from oxsync.formats import icalscan

    limits = LimitSettings()
    expected = parse_calendar(body, limits=limits)
    named: Counter[str] = Counter()
    real = icalscan.content_name

    def counting(line: str) -> str:
        named["content_name"] += 1
        return real(line)
    monkeypatch.setattr(icalscan, "content_name", counting)
    monkeypatch.setattr(ical_module, "content_name", counting)
    parsed = parse_calendar(body, limits=limits)
    assert named == Counter()
    assert all(isinstance(r, CalendarItem) for r in [*parsed, *expected])
    assert [(r.uid, r.line, r.master.extra, [e.extra for e in r.exceptions]) for r in parsed] == \
        [(r.uid, r.line, r.master.extra, [e.extra for e in r.exceptions]) for r in expected]  # type: ignore[union-attr]
    block = icalscan.Block("VEVENT", 1, props=[(2, "UID:x"), (3, "SUMMARY;LANGUAGE=en:y")])  # built otherwise
    assert block.lines_of("SUMMARY") == ["SUMMARY;LANGUAGE=en:y"] and block.line_of("UID") == 2


NOT_RENDERED_VALUES = {"object_id": 99, "folder_id": 98, "created_by": 97, "modified_by": 96, "recurrence_id": 95,
                       "organizer_id": 94, "resource_name": "elsewhere.ics", "ignore_conflicts": True,
                       "notify_participants": True, "creation_time": datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
                       "last_modified": 1_600_000_000_000}


@pytest.mark.parametrize("body", [bench_event(1, 100), bench_event(10, 100), todo("t", extra="PRIORITY:1\r\n")])
def test_render_inputs_leave_out_only_what_rendering_does_not_write(body: str) -> None:
    """What `render_inputs` leaves out changes nothing but the stamp lines kept.patch ignores (so equal
    inputs mean the same served text), and what it keeps is compared: a title or a participant's
    status changes the inputs."""
    [item] = parse_calendar(body)
    assert isinstance(item, CalendarItem) and item.master is not None
    master = item.master
    master.extra = {**master.extra, kept.SOURCE: body, kept.BASELINE: items_to_ical([item])}

    def text(obj) -> str:  # type: ignore[no-untyped-def]
        return kept._STAMP_LINE.sub("", items_to_ical([CalendarItem(item.kind, item.uid, 0, obj, item.exceptions)]))

    inputs = render_inputs(master, item.exceptions)
    assert NOT_RENDERED - {"extra"} == set(NOT_RENDERED_VALUES)
    for name, value in NOT_RENDERED_VALUES.items():
        if hasattr(master, name):
            changed = replace(master, **{name: value})
            assert text(changed) == text(master) and render_inputs(changed, item.exceptions) == inputs, name
    moved = {**master.extra}
    moved[kept.SOURCE] = moved.pop(kept.SOURCE)  # the store gives the kept texts back in another order
    assert render_inputs(replace(master, extra=moved), item.exceptions) == inputs
    assert render_inputs(replace(master, title="Other"), item.exceptions) != inputs
    assert render_inputs(replace(master, extra={**master.extra, kept.SOURCE: "x"}), item.exceptions) != inputs
    if master.participants:  # a participant's entity, folder, alarm and message are not written out
        first, *rest = master.participants
        for f in fields(first):
            other = replace(first, **{f.name: PARTICIPANT_VALUES[f.name]})
            changed = replace(master, participants=[other, *rest])
            if f.name in ("entity", "folder_id", "alarm", "message"):
                assert text(changed) == text(master) and render_inputs(changed, item.exceptions) == inputs, f.name
            else:
                assert render_inputs(changed, item.exceptions) != inputs, f.name


PARTICIPANT_VALUES = {"kind": ParticipantKind.RESOURCE, "entity": 41, "email": "x@y.test", "display_name": "X",
                      "confirmation": Confirmation.TENTATIVE, "message": "m", "folder_id": 42, "alarm": 43}


CARDS = {"bench.vcf": bench_card(2), "four.vcf": vcard("four", "Ada Lovelace", "TEL;TYPE=cell:+1 555\r\nX-ODD:1\r\n", "4.0"),
         "old.vcf": vcard("old", "Old Timer", version="2.1")}


def test_a_carddav_put_read_back_as_written_is_not_rendered_again(
        dav: Dav, store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """As for events: the vCard read back after the PUT renders from the same values as the body did
    (formats.vcard.card_inputs), so it is not rendered again; its text is what a rendering gives."""
    book = dav.addressbook()
    renders = counted_renders(monkeypatch)
    created = dav.put(f"{book}b.vcf", bench_card(1), If_None_Match="*")
    assert created.status == 201 and created.headers.get("etag") and renders == []
    updated = dav.put(f"{book}b.vcf", bench_card(1, "Changed"), If_Match=created.headers["etag"])
    assert updated.status == 204 and updated.headers.get("etag") and renders == []
    assert {dav.put(f"{book}{name}", body).status for name, body in CARDS.items()} == {201}
    hrefs = [f"{book}{name}" for name in CARDS] + [f"{book}b.vcf"]
    served = {(href, accept): dav.request("GET", href, Accept=accept) for href in hrefs
              for accept in ("text/vcard", "text/vcard; version=4.0")}
    _cleared_texts(store)
    before = len(renders)
    again = {(href, accept): dav.request("GET", href, Accept=accept) for href in hrefs
             for accept in ("text/vcard", "text/vcard; version=4.0")}
    assert len(renders) == before + len(again)  # these were rendered
    assert {key: r.body for key, r in again.items()} == {key: r.body for key, r in served.items()}
    assert served[(f"{book}b.vcf", "text/vcard")].text == bench_card(1, "Changed")
    assert served[(f"{book}four.vcf", "text/vcard; version=4.0")].text == CARDS["four.vcf"]


@pytest.mark.parametrize("body", [bench_card(1), vcard("four", "Ada Lovelace", "X-ODD:1\r\n", "4.0")])
def test_card_inputs_leave_out_only_what_rendering_does_not_write(body: str) -> None:
    [card] = list(parse_vcards(body))
    contact = card.contact
    assert contact is not None
    contact.extra = {**contact.extra, kept.SOURCE: body, kept.BASELINE: "b"}
    inputs = card_inputs(contact)
    for f in fields(contact):
        if f.name in NOT_IN_VCARD - {"extra"}:
            changed = replace(contact, **{f.name: {"resource_name": "x.vcf", "attachments": [],
                                                   "creation_time": datetime(2020, 1, 2, tzinfo=UTC)}.get(f.name, 77)})
            for version in ("3.0", "4.0"):
                assert contact_to_vcard(changed, version) == contact_to_vcard(contact, version), f.name
            assert card_inputs(changed) == inputs, f.name
    assert card_inputs(replace(contact, extra=dict(reversed(contact.extra.items())))) == inputs
    assert card_inputs(replace(contact, last_name="Other")) != inputs
    assert card_inputs(replace(contact, extra={**contact.extra, kept.SOURCE: "x"})) != inputs
    assert card_inputs(replace(contact, distribution_list=[])) is None


CORPUS = sorted((Path(__file__).parent / "data").glob("*/*.ics"))


def test_a_rendering_folds_only_long_lines_through_icalendar(monkeypatch: pytest.MonkeyPatch) -> None:
    """icalendar folds each content line character by character; a line of at most 74 octets is never
    folded, so only the longer ones go through it, and every rendering is byte-identical to icalendar's
    own `to_ical` (the bench event, a long UTF-8 summary, and every parsable item of the test corpus)."""
    from icalendar.parser.content_line import Contentline

    from oxsync.formats import ical

    folded: list[str] = []
    real = Contentline.to_ical

    def counting(line):  # type: ignore[no-untyped-def]
        folded.append(str(line))
        return real(line)
    monkeypatch.setattr(Contentline, "to_ical", counting)
    [bench] = parse_calendar(bench_event(1, 100))
    assert isinstance(bench, CalendarItem)
    text = items_to_ical([bench])
    assert folded == [] and max(len(line) for line in text.split("\r\n")) < 75
    items = [bench, *(r for path in CORPUS for r in parse_calendar(path.read_text(encoding="utf-8", errors="replace"))
                      if isinstance(r, CalendarItem))]
    [long] = parse_calendar(bench_event(2, 100, "Ünïcödé — a summary long enough to be folded " * 4))
    items.append(long)
    for item in items:
        for obj in (item.master, *item.exceptions):
            if obj is not None:
                obj.last_modified = 1_700_000_000_000  # DTSTAMP: not now
    ours = [items_to_ical([item]) for item in items]
    assert len(items) > 20 and any(len(line) >= 75 for line in folded), len(items)
    monkeypatch.setattr(ical, "_ical_text", lambda comp: comp.to_ical().decode())
    assert ours == [items_to_ical([item]) for item in items]
