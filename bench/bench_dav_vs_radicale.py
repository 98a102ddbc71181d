"""oxsync CalDAV next to Radicale 3.x on this machine, same data, one run.

Each server runs in its own process on 127.0.0.1 (so peak RSS is its own). Measured, for both:
sequential PUT throughput (keep-alive, If-None-Match: *), full PROPFIND Depth 1 with getetag of the N-event
calendar (first request after the server started = cold, then warm), initial sync-collection (first
and second), a delta sync after 10 changes, and peak RSS (VmHWM). The bulk of the N events is loaded
through each server's bulk path (Radicale: files in its collection directory, its own storage
layout; oxsync: the store API in batches), then both servers are restarted so the
listing is cold. Prints a table with the ratio Radicale/oxsync (time) or oxsync/Radicale (rate).

Usage: python bench/bench_dav_vs_radicale.py [--events 10000] [--puts 300]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USER, PASSWORD = "alice", "alice-pw"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
PROPFIND = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'


def sync_body(token: str) -> bytes:
    return (f'<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
            "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>").encode()


def event(i: int, summary: str = "Bench event") -> str:
    day, hour = divmod(i, 10)
    stamp = time.strftime("%Y%m%d", time.gmtime(1767225600 + day * 86400))
    extra = "RRULE:FREQ=WEEKLY;COUNT=10\r\n" if i % 10 == 0 else ""
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:bench-{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{stamp}T{8 + hour:02d}0000Z\r\n"
            f"DTEND:{stamp}T{8 + hour:02d}3000Z\r\nSUMMARY:{summary} {i}\r\nLOCATION:Room {i % 17}\r\n"
            f"DESCRIPTION:Generated event number {i} for the comparison.\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers={**AUTH, **{k.replace("_", "-"): v for k, v in headers.items()}})
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


# ------------------------------------------------------------------------------ servers


class Oxsync:
    name = "oxsync"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "oxsync"
        self.dir.mkdir()
        self.db = f"sqlite:///{self.dir}/oxsync.db"
        from oxsync.config import Settings, StoreSettings
        from oxsync.store import accounts
        from oxsync.store.api import Store

        store = Store(Settings(store=StoreSettings(url=self.db)))
        store.create_schema()
        tenant = store.create_tenant("example.com")
        with store.transaction(tenant.id, write=True) as tx:
            accounts.create_user(tx, USER, PASSWORD, first_name="Alice", last_name="Bench")
        store.dispose()
        self.proc: subprocess.Popen | None = None  # type: ignore[type-arg]
        self.collection = ""

    def start(self) -> int:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-oxsync", self.db, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        return self.port

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)

    def make_calendar(self, client: Client) -> str:
        status, _ = client.request("MKCALENDAR", "/dav/calendars/alice/bench/")
        assert status == 201, status
        self.collection = "/dav/calendars/alice/bench/"
        return self.collection

    def bulk_load(self, start: int, count: int) -> None:
        """The store API path (what `oxsync import` uses), in batches of 500 per transaction."""
        from oxsync.config import Settings, StoreSettings
        from oxsync.formats.ical import CalendarItem, parse_calendar
        from oxsync.store.api import Store

        store = Store(Settings(store=StoreSettings(url=self.db)))
        tenant = store.tenants()[0]
        with store.session(tenant.id, 1) as s:
            folder = next(f.folder.id for f in s.list_folders() if f.folder.title == "bench")
        for low in range(start, start + count, 500):
            with store.session(tenant.id, 1, write=True) as s:
                for i in range(low, min(low + 500, start + count)):
                    item = parse_calendar(event(i))[0]
                    assert isinstance(item, CalendarItem) and item.master is not None
                    item.master.resource_name = f"ev{i}.ics"
                    item.master.ignore_conflicts = True
                    s.create_object(folder, item.master)
        store.dispose()


class Radicale:
    name = "radicale"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "radicale"
        (self.dir / "storage").mkdir(parents=True)
        (self.dir / "users").write_text(f"{USER}:{PASSWORD}\n")
        self.proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def start(self) -> int:
        self.port = free_port()
        (self.dir / "config").write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {self.dir}/users\n"
            f"htpasswd_encryption = plain\n[storage]\nfilesystem_folder = {self.dir}/storage\n"
            "[rights]\ntype = owner_only\n[logging]\nlevel = warning\n")
        exe = shutil.which("radicale") or str(Path(sys.executable).parent / "radicale")
        self.proc = subprocess.Popen([exe, "--config", str(self.dir / "config")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        return self.port

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)

    def make_calendar(self, client: Client) -> str:
        status, _ = client.request("MKCALENDAR", "/alice/bench/")
        assert status == 201, status
        self.collection = "/alice/bench/"
        return self.collection

    def bulk_load(self, start: int, count: int) -> None:
        folder = self.dir / "storage" / "collection-root" / USER / "bench"
        for i in range(start, start + count):
            (folder / f"ev{i}.ics").write_text(event(i), newline="")


# ------------------------------------------------------------------------------ measurement


def measure(server: Oxsync | Radicale, events: int, puts: int) -> dict[str, float]:
    out: dict[str, float] = {}
    client = Client(server.start())
    path = server.make_calendar(client)
    started = time.perf_counter()
    for i in range(puts):
        status, _ = client.request("PUT", f"{path}ev{i}.ics", event(i).encode(), If_None_Match="*",
                                   Content_Type="text/calendar")
        assert status == 201, status
    out["put_per_s"] = puts / (time.perf_counter() - started)
    client.close()
    server.stop()
    server.bulk_load(puts, events - puts)
    client = Client(server.start())
    for label in ("propfind_cold_s", "propfind_warm_s"):
        started = time.perf_counter()
        status, body = client.request("PROPFIND", path, PROPFIND, Depth="1")
        out[label] = time.perf_counter() - started
        assert status == 207 and body.count(b"getetag>") >= 2 * events, (status, body.count(b"getetag>"))
    token = ""
    for label in ("sync_first_s", "sync_second_s"):
        started = time.perf_counter()
        status, body = client.request("REPORT", path, sync_body(""), Depth="0")
        out[label] = time.perf_counter() - started
        assert status == 207
        token = body.split(b"sync-token>")[-2].rsplit(b"<", 1)[0].decode()
    for i in range(10):
        client.request("PUT", f"{path}ev{i * 7}.ics", event(i * 7, "Changed").encode(), Content_Type="text/calendar")
    started = time.perf_counter()
    status, body = client.request("REPORT", path, sync_body(token), Depth="0")
    out["delta10_s"] = time.perf_counter() - started
    assert status == 207 and body.count(b"<D:response>") + body.count(b"<response>") >= 10, body[:500]
    assert server.proc is not None
    out["peak_rss_mb"] = peak_rss_mb(server.proc.pid)
    client.close()
    server.stop()
    return out


def serve_oxsync(db: str, port: str) -> None:
    from oxsync.config import Settings, StoreSettings, apply_overrides
    from oxsync.dav import install
    from oxsync.server import run_server
    from oxsync.store.api import Store

    store = Store(Settings(store=StoreSettings(url=db)))
    settings = apply_overrides(store.settings, {"server": {"http_endpoint": f"tcp:{port}:interface=127.0.0.1"}})
    run_server(settings, store, configure_logs=False, setup=install)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-oxsync":
        serve_oxsync(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--puts", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for cls in (Oxsync, Radicale):
            server = cls(Path(tmp))
            try:
                results[cls.name] = measure(server, args.events, args.puts)
            finally:
                server.stop()
    ox, rad = results["oxsync"], results["radicale"]
    print(f"\nCalDAV, {args.events} events ({args.puts} by PUT, the rest by each server's bulk path), 127.0.0.1")
    print(f"{'metric':<26}{'oxsync':>12}{'radicale':>12}{'advantage':>12}")
    for key, label in (("put_per_s", "sequential PUT /s"), ("propfind_cold_s", "PROPFIND D1 cold s"),
                       ("propfind_warm_s", "PROPFIND D1 warm s"), ("sync_first_s", "initial sync 1st s"),
                       ("sync_second_s", "initial sync 2nd s"), ("delta10_s", "10-change delta s"),
                       ("peak_rss_mb", "peak RSS MB")):
        higher_better = key == "put_per_s"
        ratio = ox[key] / rad[key] if higher_better else rad[key] / ox[key]
        print(f"{label:<26}{ox[key]:>12.3f}{rad[key]:>12.3f}{ratio:>11.1f}x")


if __name__ == "__main__":
    main()
