"""ActiveSync initial sync of a 10,000-contact folder: items/s and peak RSS of the server process.

The device provisions, runs FolderSync and Sync 0, then windowed Syncs (WindowSize 100 and 512)
until MoreAvailable disappears. Usage: python bench/bench_eas_sync.py [contacts]  (default 10000)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eas_server import seed, start  # noqa: E402
from tests.eas_client import EasClient, collection, items  # noqa: E402


def run(port: int, folder: int, window: int, device: str, proc: psutil.Process) -> tuple[int, float, int, int]:
    phone = EasClient(port, "bench", "bench-pw", device_id=device, version="14.1")
    phone.provision()
    phone.folder_sync("0")
    phone.sync(str(folder), "0")
    total, rounds, peak = 0, 0, 0
    started = time.perf_counter()
    while True:
        reply = phone.sync(str(folder), window=window)
        total += len(items(reply))
        rounds += 1
        peak = max(peak, proc.memory_info().rss)
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    return total, time.perf_counter() - started, rounds, peak


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as directory:
        t = time.perf_counter()
        url, _, folder = seed(directory, size)
        print(f"seeded {size} contacts in {time.perf_counter() - t:.1f} s")
        server, port = start(url)
        try:
            proc = psutil.Process(server.pid)
            idle = proc.memory_info().rss
            for window, device in ((100, "benchdev100"), (512, "benchdev512")):
                total, seconds, rounds, peak = run(port, folder, window, device, proc)
                assert total == size, (total, size)
                print(f"window {window:4d}: {total} items in {rounds} Syncs, {seconds:.2f} s, "
                      f"{total / seconds:,.0f} items/s, server RSS idle {idle / 2**20:.0f} MiB, "
                      f"peak {peak / 2**20:.0f} MiB")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
