"""The SQLite writers' turn across processes alone (`store.engine.WriterTurn` with a lock file, as
`[server] processes` = N uses it): N processes of T threads each take turns on one lock file, each turn
holding the GIL for `--hold-ms` of CPU (the writer's Python) and each thread working `--gap-ms` of CPU
between its turns (a request's Python outside the turn). Prints turns/s, CPU per turn summed over the
processes, context switches per turn and the turn's counts (`file_waits`, `not_granted`).

It measures the hand-off between the processes' writers, without a database or HTTP: run it under two
trees' PYTHONPATH to compare two WriterTurns (e.g. before and after a change to the file lock's wait).

    PYTHONPATH=. python -m bench.bench_writer_lock [--processes 2] [--threads 4] [--turns 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time


def _spin(ms: float) -> None:
    """Hold the GIL for `ms` of this thread's CPU."""
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass


def child(lock_file: str, threads: int, turns: int, hold_ms: float, gap_ms: float, timeout_s: float) -> None:
    from oxsync.store.engine import WriterTurn

    turn = WriterTurn(timeout_s, lock_file=lock_file)
    go = threading.Barrier(threads + 1)

    def writer() -> None:
        go.wait()
        for _ in range(turns // threads):
            _spin(gap_ms)
            with turn.turn():
                _spin(hold_ms)
    workers = [threading.Thread(target=writer) for _ in range(threads)]
    for w in workers:
        w.start()
    sys.stdin.readline()  # the parent starts every process at once
    before = resource.getrusage(resource.RUSAGE_SELF)
    go.wait()
    for w in workers:
        w.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                      "switches": after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw,
                      "turns": (turns // threads) * threads, "file_waits": turn.file_waits,
                      "not_granted": turn.not_granted}), flush=True)
    turn.close()


def one_round(args: argparse.Namespace, lock_file: str) -> dict[str, float]:
    command = [sys.executable, os.path.abspath(__file__), "--child", lock_file, "--threads", str(args.threads),
               "--turns", str(args.turns), "--hold-ms", str(args.hold_ms), "--gap-ms", str(args.gap_ms),
               "--timeout", str(args.timeout)]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(args.processes)]
    time.sleep(1.0)  # every child imported and waiting
    started = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    wall = time.perf_counter() - started
    turns = sum(r["turns"] for r in results)
    return {"turns_per_s": turns / wall, "cpu_ms_per_turn": 1000 * sum(r["cpu_s"] for r in results) / turns,
            "switches_per_turn": sum(r["switches"] for r in results) / turns,
            "file_waits": sum(r["file_waits"] for r in results), "not_granted": sum(r["not_granted"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="writer threads per process")
    parser.add_argument("--turns", type=int, default=400, help="turns per process")
    parser.add_argument("--hold-ms", type=float, default=2.5, help="CPU held in each turn (the writer's Python)")
    parser.add_argument("--gap-ms", type=float, default=3.0, help="CPU of each thread between its turns")
    parser.add_argument("--timeout", type=float, default=5.0, help="the turn's timeout (the busy timeout), s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads, args.turns, args.hold_ms, args.gap_ms, args.timeout)
        return
    print(f"load {os.getloadavg()[0]:.2f}; {args.processes} processes x {args.threads} threads, "
          f"{args.turns} turns each, hold {args.hold_ms} ms, gap {args.gap_ms} ms", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            result = one_round(args, f"{tmp}/x.db-writer.lock")
            print(f"round {n + 1}: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                                 for k, v in result.items()) + f"; load {os.getloadavg()[0]:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
