"""A hostile CalDAV request: calendar-query with <C:expand start="1900..." end="9999..."/> over a
calendar holding one endless daily series (issue 10 §3). Prints the request's time and status, then
/health latency while four attackers repeat it in parallel (median, p90, max of the /health probes).

The server runs in its own process (as in production), on SQLite in a temporary directory.
Usage: python bench/bench_hostile_expand.py [parallel=4] [seconds=10]
(each of the `parallel` attackers repeats the request for `seconds`; /health is probed meanwhile)
"""

from __future__ import annotations

import base64
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oxsync.config import AuthSettings, Settings, StoreSettings  # noqa: E402
from oxsync.model import Module  # noqa: E402
from oxsync.store import accounts  # noqa: E402
from oxsync.store import folders as folder_ops  # noqa: E402
from oxsync.store.api import Store  # noqa: E402

SERVER = """
import sys
from oxsync.config import Settings, StoreSettings, ServerSettings, AuthSettings
from oxsync.dialects import install_all
from oxsync.server import run_server
from oxsync.store.api import Store
settings = Settings(store=StoreSettings(url=sys.argv[1]), server=ServerSettings(
    http_endpoint="tcp:0:interface=127.0.0.1", udp_port=0, processes=1),  # one process: its figures
    auth=AuthSettings(password_hash_time_cost=1, password_hash_memory_kib=1024, password_hash_parallelism=1))
run_server(settings, Store(settings), on_ready=lambda port: print("READY", port, flush=True),
           configure_logs=False, setup=install_all)
"""
AUTH = "Basic " + base64.b64encode(b"alice:alice-pw").decode()
SERIES = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:endless\r\n"
          "DTSTAMP:20260101T000000Z\r\nDTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\n"
          "RRULE:FREQ=DAILY\r\nSUMMARY:Every day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
QUERY = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
         '<C:calendar-data><C:expand start="19000101T000000Z" end="99991231T000000Z"/></C:calendar-data>'
         '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
         '<C:time-range start="19000101T000000Z" end="99991231T000000Z"/></C:comp-filter></C:comp-filter>'
         '</C:filter></C:calendar-query>')


def request(port: int, method: str, path: str, body: str | None = None, depth: str = "1",
            timeout: float = 600) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        headers = {"Authorization": AUTH, "Depth": depth, "Content-Type": "application/xml"}
        if path.endswith(".ics"):
            headers["Content-Type"] = "text/calendar"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def main() -> None:
    parallel = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/oxsync.db"
        fast = AuthSettings(password_hash_time_cost=1, password_hash_memory_kib=1024, password_hash_parallelism=1)
        store = Store(Settings(store=StoreSettings(url=url), auth=fast))
        store.create_schema()
        tenant = store.create_tenant("example.com")
        with store.transaction(tenant.id, write=True) as tx:
            alice = accounts.create_user(tx, "alice", "alice-pw")
            calendar = f"/dav/calendars/alice/{folder_ops.default_folder_id(tx, alice.id, Module.CALENDAR)}/"
        store.dispose()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-c", SERVER, url], stdout=subprocess.PIPE, text=True, env=env)
        try:
            line = server.stdout.readline() if server.stdout else ""
            if not line.startswith("READY"):
                raise SystemExit(f"server did not start: {line!r}")
            port = int(line.split()[1])
            status, _ = request(port, "PUT", calendar + "endless.ics", SERIES)
            if status not in (201, 204):
                raise SystemExit(f"PUT answered {status}")
            baseline = [request(port, "GET", "/health")[1] for _ in range(20)]
            status, seconds = request(port, "REPORT", calendar, QUERY)
            print(f"hostile expand request: {seconds:.2f} s, HTTP {status}")
            probes: list[float] = []
            results: list[tuple[int, float]] = []
            until = time.monotonic() + duration

            def hostile() -> None:  # one attacker: the same request again and again for `duration`
                while True:
                    results.append(request(port, "REPORT", calendar, QUERY))
                    if time.monotonic() >= until:
                        return

            workers = [threading.Thread(target=hostile) for _ in range(parallel)]
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                probes.append(request(port, "GET", "/health")[1])
                time.sleep(0.05)
            for w in workers:
                w.join()
            print(f"{parallel} in parallel for {duration:.0f} s: {len(results)} requests, each median "
                  f"{statistics.median(s for _, s in results):.2f} s (statuses {sorted({c for c, _ in results})})")
            print(f"/health alone: median {statistics.median(baseline) * 1000:.1f} ms; during: median "
                  f"{statistics.median(probes) * 1000:.1f} ms, p90 {sorted(probes)[int(len(probes) * 0.9)] * 1000:.1f} ms, "
                  f"max {max(probes) * 1000:.1f} ms ({len(probes)} probes)")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
