"""The load simulator end to end, bounded: 4 users (one per client type) against a real `oxsync serve`
process on SQLite, until every client type made successful requests of its own types (at most 120 s: it
ran a fixed 8 s before, which a loaded machine could leave short of a push wake); the JSON/text/PNG
outputs must exist and parse."""

from __future__ import annotations

import json
from pathlib import Path

from bench.sim.base import Options
from bench.sim.run import SimConfig, run

EXPECTED = {
    "iphone/android": ("eas.Provision", "eas.FolderSync", "eas.Sync", "eas.Sync.add", "eas.Ping.wake"),
    "outlook": ("ox.folders.delta", "ox.objects.delta", "ox.objects.save", "ox.freebusy", "ox.push.register",
                "ox.push.wake"),
    "dav": ("dav.ctag", "dav.sync-collection", "dav.put"),
}


def test_simulator_runs_every_client_type(tmp_path: Path) -> None:
    fast = Options(heartbeat=(60, 60), android_heartbeat=60, eas_edit_every=2, ox_poll_every=2, ox_edit_every=1.5,
                   ox_freebusy_every=2, dav_poll_every=1.5, dav_put_every=2, request_timeout=10)
    cfg = SimConfig(profile="sqlite", users=4, ramp=1, duration=120, contacts=20, appointments=10, out=tmp_path / "out",
                    mix={"iphone": 25, "android": 25, "outlook": 25, "dav": 25}, options=fast, ox_coalesce=0.3,
                    until=frozenset(name for names in EXPECTED.values() for name in names))
    result = run(cfg)  # until every expected request succeeded (bounded by cfg.duration); speed belongs in bench/
    assert result.sim_errors == []
    assert result.meta["clients"] == {"iphone": 1, "android": 1, "outlook": 1, "dav": 1}
    for kind, names in EXPECTED.items():
        for name in names:
            got = result.results.get(name)
            assert got is not None and got["count"] - got["errors"] > 0, f"{kind}: no successful {name}"
    assert all(r["errors"] == 0 for r in result.results.values()), result.table
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["meta"]["users"] == 4 and "eas.Sync" in data["results"] and "simulator_lag" in data["meta"]
    text = (tmp_path / "out" / "results.txt").read_text()
    assert "overall:" in text and "simulator lag" in text
    png = (tmp_path / "out" / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
