"""The work of one CalDAV/CardDAV PUT above the store, counted: how many times the client's text is
parsed (icalendar, our vCard reader, the kept-text tree of formats/kept.py) and rendered back, for the
bench's event (external organizer, 2 attendees, alarm, VTIMEZONE) and the bench's vCard, created and
then updated, on a real server over loopback. The answers are checked too: a strong ETag (the served
text is the client's, byte for byte) and that text on GET. Wall-clock time is bench/'s
(bench_peers.py put_N_cpu_ms)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from bench.peers_data import card as bench_card
from bench.peers_data import event as bench_event
from oxsync.dialects import install_all
from oxsync.formats import kept
from tests.davhelp import Dav


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
    and parses neither (kept.equivalent parsed both into trees)."""
    folder = dav.calendar() if kind == "event" else dav.addressbook()
    href = folder + ("a.ics" if kind == "event" else "a.vcf")
    texts = [bench_event(1, 100), bench_event(1, 100, "Changed")] if kind == "event" else \
        [bench_card(1), bench_card(1, "Changed")]
    work.clear()
    created = dav.put(href, texts[0], If_None_Match="*")
    assert created.status == 201 and created.headers.get("etag")
    assert work["kept.parse"] == 0, work
    updated = dav.put(href, texts[1], If_Match=created.headers["etag"])
    assert updated.status == 204 and updated.headers.get("etag") not in (None, created.headers["etag"])
    assert work["kept.parse"] == 0, work
    got = dav.request("GET", href)
    assert got.text == texts[1] and got.headers["etag"] == updated.headers["etag"]
