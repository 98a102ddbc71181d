"""`[server] processes = 2` on SQLite, stopped as an operator or systemd stops it (SIGTERM to the first
process): both processes end, and the copy does not log that it lost its channel to the first process
(oxsync/push/procbus.py `ProcessRelay.closing`): at a normal stop the channel closes on purpose, and a
warning there would be noise an operator learns to ignore, hiding a real loss."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.serveproc import Serve
from tests.test_server_processes import _connections

ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@ON_SQLITE
def test_a_normal_stop_of_two_processes_logs_no_lost_channel(store_url, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "oxsync.toml"
    config.write_text("[server]\nprocesses = 2\n[log]\naccess_log = false\n")
    server = Serve("--config", str(config), "--db", store_url, "serve", "--listen", "tcp:0:interface=127.0.0.1",
                   "--udp-port", "0")
    try:
        printed = server.wait_for("CalDAV/CardDAV discovery")
        port = int(printed.split("CalDAV/CardDAV discovery: http://127.0.0.1:", 1)[1].split("/", 1)[0])
        by_process = _connections(port)  # both serving, the copy's channel up
        for conn in by_process.values():
            conn.close()
    finally:
        code = server.stop(signal.SIGTERM)
    events = [json.loads(line).get("event") for line in server.stderr().splitlines() if line.startswith("{")]
    assert code == 0
    assert events.count("server.process_started") == 1  # the copy ran (its log lines are on this stderr)
    assert "procbus.channel_lost" not in events, events
