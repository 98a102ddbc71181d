"""What keeping the client's text costs per object (formats.kept), against rendering from the model.

Every DAV read of an object a DAV client wrote renders it from the model (as before) and then compares
that rendering with the baseline kept at PUT time: the source is served as is when they agree, patched
when another dialect changed the object. A PUT also renders the baseline and compares the stored result
with what was sent (the ETag decision). Prints microseconds per object for each step, over the round-trip
corpus of tests/data/roundtrip. Run: python -m bench.bench_kept
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from oxsync.formats import kept
from oxsync.formats.ical import CalendarItem, items_to_ical, parse_calendar
from oxsync.formats.vcard import contact_to_vcard, parse_vcards

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "roundtrip"
ROUNDS = 200


def per_call(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def row(name: str, text: str, render: Callable[[], str], edited: str) -> str:
    baseline = current = render()
    return (f"{name:<18}{per_call(render):>10.0f}"
            f"{per_call(lambda: kept.patch(text, baseline, current)):>12.0f}"
            f"{per_call(lambda: kept.patch(text, baseline, edited)):>12.0f}"
            f"{per_call(lambda: kept.equivalent(text, text)):>11.0f}")


def main() -> None:
    print(f"{'file':<18}{'render':>10}{'kept, same':>12}{'kept, edit':>12}{'PUT check':>11}  (us per object)")
    for path in sorted(CORPUS.iterdir()):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ics":
            [item] = [i for i in parse_calendar(text) if isinstance(i, CalendarItem)]
            render: Callable[[], str] = lambda item=item: items_to_ical([item])  # noqa: E731
            edited = render().replace("SUMMARY:", "SUMMARY:Renamed ", 1)
        else:
            card = next(iter(parse_vcards(text))).contact
            assert card is not None
            version = "4.0" if "VERSION:4.0" in text else "3.0"
            render = lambda card=card, version=version: contact_to_vcard(card, version)  # noqa: E731
            edited = render().replace("\r\nN:", "\r\nN:Renamed", 1)
        print(row(path.name, text, render, edited))


if __name__ == "__main__":
    main()
