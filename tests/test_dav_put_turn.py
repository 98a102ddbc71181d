"""A CalDAV PUT on SQLite parses its body before its write transaction, outside the writer's turn that
every write of the process takes in order (dav/preparse.py), so that one PUT's parse overlaps another's
write; what is written is what the parse inside the write gives. Counted: the iCalendar parses a PUT
runs while its thread holds the turn (0; 1 before), and the early parse's result against the parse
with the directory's answers inside the same write transaction, with wrong guesses and learnt ones."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from bench.peers_data import event as bench_event
from oxsync.dav import objects, preparse
from oxsync.dav.layout import body_addresses, resolver
from oxsync.dialects import install_all
from oxsync.formats.ical import parse_calendar
from oxsync.model import Module
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
    dav = Dav(running.port, world)
    cal = dav.calendar()
    # alice (an attendee) is not known yet: the early parse took her for external, so it is parsed again
    assert dav.put(f"{cal}a.ics", bench_event(1, 100), If_None_Match="*").status == 201
    first, in_turn[:] = list(in_turn), []
    assert dav.put(f"{cal}b.ics", bench_event(2, 100), If_None_Match="*").status == 201
    assert first == [False, True]
    assert in_turn == [False]  # parsed once, before the turn


def test_early_parse_is_the_parse_inside_the_write(store, world) -> None:  # type: ignore[no-untyped-def]
    text = bench_event(3, 100)
    principal = Principal(world.tenant_id, world.alice, "alice", "Alice", "alice@example.com")
    req = SimpleNamespace(body=text.encode(), principal=principal, settings=store.settings, preparsed=None)
    guesses = preparse.PrincipalGuesses()
    folder = world.default_folder(world.alice, Module.CALENDAR)
    assert folder
    for attempt in ("guessed wrong", "learnt"):
        preparse.prepare_put(req, guesses)  # type: ignore[arg-type]
        asked = dict(req.preparsed.asked)
        with world.as_user(world.alice, write=True) as session:
            early = preparse.preparsed_results(req, session, text)  # type: ignore[arg-type]
            inside = parse_calendar(text, resolve=resolver(session, body_addresses(text)), limits=store.settings.limits)
        assert early == inside and early, attempt
        assert req.preparsed is None
        if attempt == "guessed wrong":
            assert asked["alice@example.com"] is None  # taken for external: the write parsed again
        else:
            assert asked["alice@example.com"] == ("user", world.alice)
