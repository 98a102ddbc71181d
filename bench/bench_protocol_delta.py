"""Protocol-level delta sync cost against folder size: a 10-change delta of a contact folder holding
1k/10k/100k items, over real HTTP to one `oxsync serve` process (SQLite), in all three dialects:
OX delta PROPFIND (`lastsync`), CalDAV/CardDAV `sync-collection` (token), EAS `Sync` (sync key).

The folder is seeded through the store API in one transaction; the 10 changes are OX PROPPATCH creates.
EAS devices are primed in the store with a sync state at the pre-change revision (as bench_eas_ping.py),
so no 100k-item initial sync is needed. Usage: python bench/bench_protocol_delta.py [sizes...]
(default 1000 10000 100000); prints median of 5 (EAS: 5 devices) per dialect.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_eas_ping import prime  # noqa: E402
from bench.bench_ox_propfind import seed  # noqa: E402
from bench.sim.nodes import start_nodes  # noqa: E402
from tests.davhelp import sync_body  # noqa: E402
from tests.eas_client import EasClient, server_ids  # noqa: E402
from tests.live import http_request  # noqa: E402
from tests.oxclient import OxClient  # noqa: E402

AUTH = ("bench", "bench-pw")


def median_ms(fn: Callable[[], object], runs: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def measure(size: int, directory: str) -> str:
    url, folder = seed(directory, size)
    devices = [f"delta{i}" for i in range(5)]
    prime(url, 1, folder, devices)  # user id 1: the only user of the seeded tenant
    cluster = start_nodes(url, 1, Path(directory))
    try:
        port = cluster.nodes[0].http_port
        ox = OxClient(port, *AUTH)
        ox.propfind("folders", {"lastsync": 0})
        collection = f"/dav/addressbooks/bench/{folder}/"
        status, _, body = http_request(port, "PROPFIND", collection, auth=AUTH, headers={"Depth": "0"},
                                       body='<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>')
        assert status == 207, (status, body[:200])
        token = body.split(b"<D:sync-token>")[1].split(b"</D:sync-token>")[0].decode() if b"<D:sync-token>" in body \
            else body.split(b"sync-token>")[1].split(b"<")[0].decode()
        time.sleep(0.01)
        stamp = int(time.time() * 1000) - 1
        for n in range(10):
            [r] = ox.proppatch("contacts", {"folder_id": folder, "last_name": f"Changed{n}"})
            assert r.status == "200", r.description
        ox_ms, responses = median_ms(lambda: ox.sync("contacts", folder, stamp))
        assert len(responses) == 10, len(responses)  # type: ignore[arg-type]

        def dav() -> bytes:
            status, _, data = http_request(port, "REPORT", collection, auth=AUTH, body=sync_body(token),
                                           headers={"Depth": "1", "Content-Type": "application/xml"})
            assert status == 207, (status, data[:300])
            return data
        dav_ms, data = median_ms(dav)
        assert data.count(b"<D:response>") >= 10, data[:500]  # type: ignore[union-attr]
        eas_times = []
        for device in devices:
            phone = EasClient(port, *AUTH, device_id=device, policy_key="4242")
            started = time.perf_counter()
            reply = phone.sync(str(folder), "{bench}1", window=100)
            eas_times.append((time.perf_counter() - started) * 1000)
            assert reply.status == 200 and len(server_ids(reply, "Add")) == 10, reply.raw[:300]
        eas_ms = statistics.median(eas_times)
        return f"{size:>8} {ox_ms:>14.1f} {dav_ms:>22.1f} {eas_ms:>13.1f}"
    finally:
        cluster.stop()


def main(sizes: list[int]) -> None:
    print(f"{'items':>8} {'OX delta ms':>14} {'DAV sync-collection ms':>22} {'EAS Sync ms':>13}   (10 changes, median)")
    for size in sizes:
        with tempfile.TemporaryDirectory() as directory:
            print(measure(size, directory), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000, 100000])
