"""What rendering the served texts with a load costs: the bench's `session.create_objects` loader
(bench/peers_servers.py) and `oxsync import`, each with the texts rendered after the load (as they
are now, oxsync/texts_ahead.py) and without (`render_changes` replaced by a no-op), interleaved;
wall time and this process's CPU (both loads run in-process).

Usage: python -m bench.bench_load_texts [--events 2000] [--cards 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import oxsync.texts_ahead as texts_ahead
from bench.peers_data import card, event
from bench.peers_servers import Oxsync
from oxsync.cli import main as oxsync_cli


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu


class _NoServer:
    """The loader's MKCALENDAR after the load needs a server: answered here, the load alone is timed."""

    def __init__(self, *args: object) -> None:
        pass

    def request(self, *args: object, **kw: object) -> tuple[int, bytes]:
        return 201, b""


def bench_loader(tmp: Path, events: int, cards: int) -> tuple[float, float]:
    peer = Oxsync(tmp)
    peer.start = lambda: 0  # type: ignore[method-assign]
    peer.stop = lambda: None  # type: ignore[method-assign]
    with mock.patch("bench.peers_servers.Client", _NoServer):
        return _timed(lambda: peer.setup(events, cards))


def cli_import(tmp: Path, events: int, cards: int) -> tuple[float, float]:
    url = f"sqlite:///{tmp}/cli.db"
    oxsync_cli(["--db", url, "init", "--domain", "example.com"])
    oxsync_cli(["--db", url, "user", "add", "alice", "--password", "alice-pw"])
    bodies = [event(i, events) for i in range(events)]
    ics = bodies[0].split("END:VCALENDAR")[0] + "".join(
        b.split("END:VTIMEZONE\r\n", 1)[1].split("END:VCALENDAR")[0] for b in bodies[1:]) + "END:VCALENDAR\r\n"
    (tmp / "in.ics").write_text(ics, encoding="utf-8", newline="")
    (tmp / "in.vcf").write_text("".join(card(i) for i in range(cards)), encoding="utf-8", newline="")

    def both() -> None:
        for name in ("in.ics", "in.vcf"):
            assert oxsync_cli(["--db", url, "import", str(tmp / name), "--user", "alice"]) == 0
    return _timed(both)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    real = texts_ahead.render_changes
    for n in range(args.rounds):
        for label, render in (("without texts", lambda *a, **k: 0), ("with texts", real)):
            for name, load in (("bench loader", bench_loader), ("oxsync import", cli_import)):
                with tempfile.TemporaryDirectory() as tmp, mock.patch.object(texts_ahead, "render_changes", render):
                    wall, cpu = load(Path(tmp), args.events, args.cards)
                print(f"round {n + 1} {name} {label}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
