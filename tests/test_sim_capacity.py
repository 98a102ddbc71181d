"""bench/sim/capacity.py: the per-ramp search stops at the first passing count and reports it with the
types that failed above it (the simulator runs themselves are covered by tests/test_sim_smoke.py)."""

from __future__ import annotations

from typing import Any

from bench.sim import capacity


def test_search_stops_at_the_first_pass_per_ramp(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ran: list[tuple[int, float]] = []

    def fake_run(args: Any, extra: list[str], users: int, ramp: float) -> dict[str, Any]:
        ran.append((users, ramp))
        ok = users <= (40 if ramp == 30 else 60)
        return {"users": users, "ramp": ramp, "pass": ok, "failed": [] if ok else ["eas.Provision"], "load": [1.0]}

    monkeypatch.setattr(capacity, "one_run", fake_run)
    args, extra = capacity.parse_args(["--users", "30", "75", "40", "60", "--out", str(tmp_path), "--",
                                       "--seed-cache", "x"])
    assert extra == ["--seed-cache", "x"]
    rows = capacity.search(args, extra)
    assert ran == [(75, 30), (60, 30), (40, 30), (75, 120), (60, 120)]
    text = capacity.table(rows, args.ramps)
    assert "| 30 | 40 | 75: eas.Provision; 60: eas.Provision |" in text
    assert "| 120 | 60 | 75: eas.Provision |" in text
