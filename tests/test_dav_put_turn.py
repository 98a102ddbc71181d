"""A CalDAV PUT on SQLite parses its body before its write transaction, outside the writer's turn that
every write of the process takes in order (dav/preparse.py), so that one PUT's parse overlaps another's
write; what is written is what the parse inside the write gives. Counted: the iCalendar parses a PUT
runs while its thread holds the turn (0; 1 before), and the early parse's result against the parse
with the directory's answers inside the same write transaction, with wrong guesses and learnt ones.
The kept baseline's rendering goes with the early parse: renderings of the body's item inside the turn
(0; 1 before), and what the early one made against what the write would make of the same parse."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest

from bench.peers_data import event as bench_event
from oxsync.dav import objects, preparse
from oxsync.dav.layout import body_addresses, resolver
from oxsync.dialects import install_all
from oxsync.formats import ical, kept
from oxsync.formats.ical import parse_calendar
from oxsync.model import Module
from oxsync.store import timeranges
from oxsync.store.api import Principal
from tests.davhelp import Dav


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install_all, auth={"account_poll_seconds": 0},
                       dav={"texts_ahead_delay_seconds": 600.0})


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # writers take turns on SQLite only
def test_put_parses_outside_the_writers_turn(store, running, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    writers = store._writers
    in_turn: list[bool] = []

    def counting(real):  # type: ignore[no-untyped-def]
        def parse(*args, **kw):  # type: ignore[no-untyped-def]
            in_turn.append(writers._owner == threading.get_ident())
            return real(*args, **kw)
        return parse

    monkeypatch.setattr(preparse, "parse_calendar", counting(preparse.parse_calendar))
    monkeypatch.setattr(objects, "parse_calendar", counting(objects.parse_calendar))
    rendered: list[bool] = []

    def rendering(items):  # type: ignore[no-untyped-def]
        rendered.append(writers._owner == threading.get_ident())
        return ical.items_to_ical(items)

    monkeypatch.setattr(preparse, "items_to_ical", rendering)  # the kept baseline (the PUT renders nothing else)
    dav = Dav(running.port, world)
    cal = dav.calendar()
    # alice (an attendee) is not known yet: the early parse took her for external, so it is parsed again
    assert dav.put(f"{cal}a.ics", bench_event(1, 100), If_None_Match="*").status == 201
    first, in_turn[:] = list(in_turn), []
    first_rendered, rendered[:] = list(rendered), []
    assert dav.put(f"{cal}b.ics", bench_event(2, 100), If_None_Match="*").status == 201
    assert first == [False, True]
    assert in_turn == [False]  # parsed once, before the turn
    assert first_rendered == [False, True]  # the early rendering was of a parse the write did not use
    assert rendered == [False]  # rendered once, before the turn
    reply = dav.put(f"{cal}b.ics", bench_event(2, 100))  # an update: the same again, a strong ETag
    assert reply.status == 204 and reply.headers.get("etag")
    assert dav.request("GET", f"{cal}b.ics").text == bench_event(2, 100)  # served as sent


def test_early_parse_is_the_parse_inside_the_write(store, world) -> None:  # type: ignore[no-untyped-def]
    text = bench_event(3, 100)
    principal = Principal(world.tenant_id, world.alice, "alice", "Alice", "alice@example.com")
    req = SimpleNamespace(body=text.encode(), principal=principal, settings=store.settings, preparsed=None,
                          written_ahead=None)
    guesses = preparse.PrincipalGuesses()
    folder = world.default_folder(world.alice, Module.CALENDAR)
    assert folder
    for attempt in ("guessed wrong", "learnt"):
        preparse.prepare_put(req, guesses)  # type: ignore[arg-type]
        asked = dict(req.preparsed.asked)
        with world.as_user(world.alice, write=True) as session:
            early = preparse.preparsed_results(req, session, text)  # type: ignore[arg-type]
            inside = parse_calendar(text, resolve=resolver(session, body_addresses(text)), limits=store.settings.limits)
        if req.written_ahead is not None:  # the early parse is used: the write takes its item as given ahead
            preparse.render_written(inside[0], text)  # type: ignore[arg-type]
        assert _unstamped(early) == _unstamped(inside) and early, attempt
        assert req.preparsed is None
        if attempt == "guessed wrong":
            assert asked["alice@example.com"] is None  # taken for external: the write parsed again
        else:
            assert asked["alice@example.com"] == ("user", world.alice)


def test_early_baseline_is_the_baseline_inside_the_write(store, world) -> None:  # type: ignore[no-untyped-def]
    """What the early parse's item was given ahead (UID, kept texts, render inputs, baseline) is what the
    write's own steps give the item of a parse inside the write."""
    text = bench_event(4, 100)
    principal = Principal(world.tenant_id, world.alice, "alice", "Alice", "alice@example.com")
    req = SimpleNamespace(body=text.encode(), principal=principal, settings=store.settings, preparsed=None,
                          written_ahead=None)
    guesses = preparse.PrincipalGuesses()
    for _ in range(2):  # the second time, alice's address is learnt: the early parse is used
        preparse.prepare_put(req, guesses)  # type: ignore[arg-type]
        with world.as_user(world.alice, write=True) as session:
            early = preparse.preparsed_results(req, session, text)  # type: ignore[arg-type]
            inside = parse_calendar(text, resolve=resolver(session, body_addresses(text)), limits=store.settings.limits)
    assert early and inside and early[0] is not inside[0]
    item, other = early[0], inside[0]
    assert isinstance(item, preparse.CalendarItem) and isinstance(other, preparse.CalendarItem)
    ahead = preparse.written_ahead(req, item)  # type: ignore[arg-type]
    assert ahead is not None and preparse.written_ahead(req, item) is None  # taken once
    assert preparse.written_ahead(SimpleNamespace(written_ahead=(item, ahead)), other) is None  # type: ignore[arg-type]
    now = preparse.render_written(other, text)
    assert ahead[0] == now[0] and ahead[0] is not None
    assert _unstamped([ahead[1]]) == _unstamped([now[1]])
    assert _unstamped([item]) == _unstamped([other]) and item.master.uid == other.master.uid == other.uid


def _unstamped(results: list) -> list:  # type: ignore[type-arg]
    """Results (items or texts) without the DTSTAMP lines of renderings (made at render time when the
    body has no LAST-MODIFIED; kept.patch leaves them out)."""
    def cut(text: str) -> str:
        return re.sub(r"DTSTAMP:[^\r\n]*\r\n", "", text)
    for r in results:
        if isinstance(r, ical.CalendarItem) and r.master is not None and kept.BASELINE in r.master.extra:
            r.master.extra[kept.BASELINE] = cut(r.master.extra[kept.BASELINE])
    return [cut(r) if isinstance(r, str) else r for r in results]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_put_makes_its_time_ranges_outside_the_writers_turn(store, running, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A PUT's master gets its time-range rows (a weekly series: one row per instance in the window)
    made with the early parse; the write inside the turn takes them and computes none."""
    writers = store._writers
    made: list[bool] = []
    real = timeranges._rows

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        made.append(writers._owner == threading.get_ident())
        return real(*args, **kw)

    monkeypatch.setattr(timeranges, "_rows", counting)
    dav = Dav(running.port, world)
    cal = dav.calendar()
    assert dav.put(f"{cal}w0.ics", bench_event(2, 100), If_None_Match="*").status == 201  # alice learnt
    made[:] = []
    assert dav.put(f"{cal}w1.ics", bench_event(10, 100), If_None_Match="*").status == 201  # endless weekly
    assert made == [False]  # made once, before the turn
    folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice) as session:
        ids = [o.object_id for o in session.list_objects(folder) if o.resource_name == "w1.ics"]
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT start_ms, end_ms, exact FROM object_ranges WHERE object_id = ? "
                                      "ORDER BY position", (ids[0],)).all()
    with world.as_user(world.alice) as session:
        obj = session.get_object(folder, ids[0])
    exact = [(b, e) for b, e, x in stored if x]
    assert len(exact) > 100 and exact == [(b, e) for b, e, x in real(obj, store.settings.limits) if x]  # as made now


def test_rows_ahead_are_taken_for_the_same_inputs_only(store) -> None:  # type: ignore[no-untyped-def]
    limits = store.settings.limits
    item = parse_calendar(bench_event(10, 100), resolve=lambda _: None, limits=limits)[0]
    assert isinstance(item, ical.CalendarItem) and item.master is not None
    master = item.master
    timeranges.rows_ahead(master, limits)
    master.start_date = master.start_date + timedelta(hours=1)  # not the inputs the rows were made for
    calls: list[int] = []
    real = timeranges._rows
    try:
        timeranges._rows = lambda *a, **kw: calls.append(1) or real(*a, **kw)  # type: ignore[assignment]
        moved = timeranges.rows(master, limits)
        assert calls == [1] and _exact(moved) == _exact(real(master, limits))
        master.start_date = master.start_date - timedelta(hours=1)
        master.object_id = master.recurrence_id = 77  # as the write numbers a new series
        calls[:] = []
        taken = timeranges.rows(master, limits)
        assert calls == [] and _exact(taken) == _exact(real(master, limits)) and len(taken) > 100
        assert _exact(timeranges.rows(master, limits)) == _exact(taken) and calls == [1]  # taken once
    finally:
        timeranges._rows = real  # type: ignore[assignment]


def _exact(rows: list) -> list:  # type: ignore[type-arg]
    """The exact rows and the number of rows: the conservative ones around the window move with the time
    they were made at."""
    return [len(rows), *(r for r in rows if r[2])]
