"""`python -m bench.sim.capacity`: the largest user count that passes every threshold, per ramp.

For each ramp (default 30 s and 120 s) it runs `python -m bench.sim` at each user count, largest first,
and stops at the first count whose every request type passes (`results.json`, `meta.pass`); the table
says, per ramp, that count and the types that failed at the counts above it. Every run is a separate
process with its own nodes, bounded by `--run-timeout`; extra arguments after `--` go to each run
(e.g. `-- --seed-cache var/sim-seeds --contacts 300`). Runs are sequential, so a shared machine's load
changes between them: each row carries the load average before its run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m bench.sim.capacity", description=__doc__)
    p.add_argument("--profile", default="sqlite")
    p.add_argument("--users", type=int, nargs="+", default=[75, 60, 50, 40, 30, 20])
    p.add_argument("--ramps", type=float, nargs="+", default=[30.0, 120.0])
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--out", type=Path, default=Path("bench/results/capacity"))
    p.add_argument("--run-timeout", type=float, default=1800.0, help="seconds one simulator run may take")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    return p.parse_args(argv), extra


def one_run(args: argparse.Namespace, extra: list[str], users: int, ramp: float) -> dict[str, Any]:
    """One simulator run; its verdict, the failing types and the load before it (or why it did not run)."""
    out = args.out / f"{args.profile}-{users}u-r{ramp:g}"
    cmd = [sys.executable, "-m", "bench.sim", "--profile", args.profile, "--users", str(users),
           "--ramp", str(ramp), "--duration", str(args.duration), "--out", str(out), *extra]
    try:
        done = subprocess.run(cmd, timeout=args.run_timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"users": users, "ramp": ramp, "pass": False, "failed": ["(run timed out)"], "load": None}
    results = out / "results.json"
    if done.returncode != 0 or not results.exists():
        return {"users": users, "ramp": ramp, "pass": False, "failed": [f"(simulator exit {done.returncode})"],
                "load": None}
    data = json.loads(results.read_text())
    failed = sorted(name for name, row in data["results"].items() if not row.get("pass", True))
    return {"users": users, "ramp": ramp, "pass": bool(data["meta"]["pass"]), "failed": failed,
            "load": data["meta"].get("loadavg_before")}


def search(args: argparse.Namespace, extra: list[str]) -> list[dict[str, Any]]:
    """Per ramp: runs from the largest count down to the first that passes."""
    rows = []
    for ramp in args.ramps:
        for users in sorted(args.users, reverse=True):
            row = one_run(args, extra, users, ramp)
            rows.append(row)
            print(f"ramp {ramp:g} s, {users} users: {'PASS' if row['pass'] else 'FAIL ' + ', '.join(row['failed'])}"
                  f" (load before {row['load']})", flush=True)
            if row["pass"]:
                break
    return rows


def table(rows: list[dict[str, Any]], ramps: list[float]) -> str:
    lines = ["| ramp (s) | largest passing users | failing above it (users: types) |", "|---|---|---|"]
    for ramp in ramps:
        mine = [r for r in rows if r["ramp"] == ramp]
        passing = [r["users"] for r in mine if r["pass"]]
        above = "; ".join(f"{r['users']}: {', '.join(r['failed'])}" for r in mine if not r["pass"])
        lines.append(f"| {ramp:g} | {passing[0] if passing else 'none tried passed'} | {above or '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = search(args, extra)
    text = table(rows, args.ramps)
    print(text)
    (args.out / "capacity.json").write_text(json.dumps(rows, indent=1))
    (args.out / "capacity.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
