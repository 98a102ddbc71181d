"""The load simulator's own arithmetic: percentiles and CCS-style threshold verdicts."""

from __future__ import annotations

import json

import pytest

from bench.sim.report import text_table, write_json
from bench.sim.stats import BUCKETS_S, Recorder, Threshold, load_thresholds, percentile


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99), percentile(values, 100)) == (50, 90, 99, 100)
    assert percentile([7.0], 99) == 7.0


def test_threshold_verdict_counts_slow_requests_and_errors() -> None:
    rec = Recorder()
    for _ in range(90):
        rec.record("dav.put", 0.0, 0.05, True)
    for _ in range(9):
        rec.record("dav.put", 0.0, 0.7, True)  # slower than 0.1 and 0.5
    rec.record("dav.put", 0.0, 0.0, False)  # an error counts as slow everywhere
    strict = {"dav.put": Threshold((5, 5, 5, 5, 5, 5, 5), max_error_pct=0.5)}
    lenient = {"*": Threshold((20, 20, 20, 20, 20, 20, 20), max_error_pct=2)}
    result = rec.evaluate(strict)["dav.put"]
    assert result["slower_than_pct"][:3] == [10.0, 10.0, 1.0]
    assert not result["pass"] and any("slower than 0.1s" in r for r in result["reasons"])
    assert any("errors" in r for r in result["reasons"])
    assert rec.evaluate(lenient)["dav.put"]["pass"]
    assert rec.evaluate({})["dav.put"]["pass"]  # no threshold, no verdict against it


def test_thresholds_file_and_reports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    shipped = load_thresholds("bench/sim/thresholds.json")
    assert "*" in shipped and all(len(t.slower_than_pct) == len(BUCKETS_S) for t in shipped.values())
    with pytest.raises(ValueError):
        Threshold((1, 2, 3))
    rec = Recorder()
    rec.record("eas.Sync", 0.0, 0.2, True)
    results = rec.evaluate(shipped)
    table = text_table(results)
    assert "eas.Sync" in table and "overall:" in table
    write_json(tmp_path / "out.json", {"profile": "test"}, results)
    assert json.loads((tmp_path / "out.json").read_text())["results"]["eas.Sync"]["count"] == 1
