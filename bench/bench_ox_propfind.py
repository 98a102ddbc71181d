"""OX WebDAV/XML hot path: full PROPFIND of a 10,000-contact folder and a 10-change delta.

The server runs in a child process (SQLite, OX dialect installed) so its peak RSS is measured alone.
Usage: python bench/bench_ox_propfind.py [contacts]   (default 10000)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sim.seed import seed_contact_folder  # noqa: E402
from tests.oxclient import OxClient  # noqa: E402

CHILD = r"""
import sys
from oxsync.config import Settings, StoreSettings, apply_overrides
from oxsync.store.api import Store
from oxsync.server import run_server
from oxsync.ox import install
url = sys.argv[1]
data = {"server": {"http_endpoint": "tcp:0:interface=127.0.0.1", "udp_port": 0, "processes": 1}, "ox": {"push_coalesce_seconds": 0.0,
        "push_max_packets_per_address_per_minute": 1_000_000, "push_max_packets_per_socket_per_minute": 1_000_000}}
settings = apply_overrides(Settings(store=StoreSettings(url=url, thread_pool_size=8)), data)
run_server(settings, Store(settings), on_ready=lambda port: print(port, flush=True), configure_logs=len(sys.argv) > 2, setup=install)
"""


def seed(directory: str, size: int) -> tuple[str, int]:
    url = f"sqlite:///{directory}/ox-bench.db"
    _, folder = seed_contact_folder(url, size)
    return url, folder


def start(url: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parent.parent))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(line)


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as directory:
        t = time.perf_counter()
        url, folder = seed(directory, size)
        print(f"seeded {size} contacts in {time.perf_counter() - t:.1f} s")
        server, port = start(url)
        try:
            proc = psutil.Process(server.pid)
            client = OxClient(port, "bench", "bench-pw")
            client.propfind("folders", {"lastsync": 0})
            idle = proc.memory_info().rss
            peak = [idle]

            def full():  # type: ignore[no-untyped-def]
                return client.sync("contacts", folder)

            import threading

            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], proc.memory_info().rss)
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            seconds, listed = timed(full)
            stop.set()
            sampler.join()
            assert len(listed) == size, len(listed)
            lastsync = max(int(r.text("last_modified")) for r in listed)
            for r in listed[:10]:
                [u] = client.proppatch("contacts", {"object_id": r.href, "folder_id": folder,
                                                    "last_modified": r.text("last_modified"), "nickname": "changed"})
                assert u.status == "200", u.description
            delta_s, delta = timed(lambda: client.sync("contacts", folder, lastsync))
            assert len(delta) == 10, len(delta)
            empty_s, _ = timed(lambda: client.sync("contacts", folder, max(int(r.text("last_modified")) for r in delta)))
            print(f"full PROPFIND {size} contacts: {seconds:.2f} s ({size / seconds:,.0f} objects/s), "
                  f"server RSS idle {idle / 2**20:.0f} MiB, peak {peak[0] / 2**20:.0f} MiB "
                  f"(+{(peak[0] - idle) / 2**20:.0f} MiB)")
            print(f"delta PROPFIND, 10 changes: {delta_s * 1000:.1f} ms; no changes: {empty_s * 1000:.1f} ms")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
