"""caldav-server-tester (python-caldav project) against a live oxsync with two users.

The tester always exits 0, so its full feature list (`--format hints`) is compared with the committed
`caldav_expected.json`: any feature below its expected support level fails the test. Features the
tester adds in later versions are printed, not failed. Why the non-`full` entries cannot pass is
written down in conformance/README.md. Runs in about 4-10 s.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oxsync.dav import install
from tests.fixtures import make_store
from tests.world import build_world

HERE = Path(__file__).parent
EXPECTED = HERE / "caldav_expected.json"
RANK = {"full": 6, "fragile": 5, "quirk": 4, "unknown": 3, "unsupported": 2, "ungraceful": 1, "broken": 0}


def _tester() -> str:
    found = shutil.which("caldav-server-tester") or str(Path(sys.executable).parent / "caldav-server-tester")
    if not Path(found).exists():
        pytest.fail("caldav-server-tester is not installed: run `make test` (it installs the conformance extra) "
                    "or pip install -e '.[conformance]'")
    return found


def level(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("support", "full"))
    if value is True or value is None:
        return "full"
    if value is False:
        return "unsupported"
    return str(value)


def run_tester(port: int, workdir: Path, timeout: float = 300) -> dict[str, object]:
    config = workdir / "calendar.yaml"
    config.write_text("".join(
        f"{user}:\n  caldav_url: http://127.0.0.1:{port}/dav/\n  caldav_username: {user}\n"
        f"  caldav_password: {user}-pw\n" for user in ("alice", "bob")))
    env = {**os.environ, "CALDAV_CONFIG_FILE": str(config), "HOME": str(workdir)}
    done = subprocess.run([_tester(), "--config-section", "alice", "--config-section", "bob", "--format", "hints"],
                          env=env, capture_output=True, text=True, timeout=timeout)
    (workdir / "tester.stderr").write_text(done.stderr)
    text = done.stdout
    assert "{" in text, f"tester printed no result:\n{done.stderr[-3000:]}"
    return ast.literal_eval(text[text.index("{"):])


def test_caldav_server_tester(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _tester()
    store = make_store(f"sqlite:///{tmp_path}/oxsync.db")
    try:
        build_world(store)
        running = live_server(store, setup=install)
        started = time.monotonic()
        observed = run_tester(running.port, tmp_path)
        elapsed = time.monotonic() - started
    finally:
        store.dispose()
    (tmp_path / "observed.json").write_text(json.dumps({k: level(v) for k, v in observed.items()}, indent=1))
    expected: dict[str, str] = json.loads(EXPECTED.read_text())["features"]
    worse = {name: (want, level(observed.get(name, {"support": "unknown"})))
             for name, want in expected.items()
             if RANK[level(observed.get(name, {"support": "unknown"}))] < RANK[want]}
    new = {name: level(v) for name, v in observed.items() if name not in expected}
    print(f"caldav-server-tester: {len(observed)} features in {elapsed:.1f} s; new features: {new}")
    assert not worse, f"features below their expected level (expected, observed): {worse}"
