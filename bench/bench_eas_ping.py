"""2,000 concurrent parked ActiveSync Pings in one server process: memory per Ping and the latency
from a commit (a Sync Add by another device) to the Ping answers.

The devices are provisioned and primed in the store beforehand (device record + synced collection
state), so every Ping parks. Usage: python bench/bench_eas_ping.py [pings [listen-backlog]]  (default 2000)
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eas_server import seed, start  # noqa: E402
from oxsync.config import Settings, StoreSettings  # noqa: E402
from oxsync.eas.wbxml import E, decode, encode  # noqa: E402
from oxsync.store.api import Store  # noqa: E402
from tests.eas_client import EasClient, prime_devices  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"bench:bench-pw").decode()


def prime(url: str, user_id: int, folder: int, devices: list[str]) -> None:
    # the Ping parameters a device sent before: an unchanged Ping then writes nothing (otherwise the
    # first Ping of each device is a write transaction, and 10,000 of them queue for ~15 s on SQLite)
    store = Store(Settings(store=StoreSettings(url=url)))
    prime_devices(store, store.tenants()[0].id, user_id, folder, devices)
    store.dispose()


async def ping(port: int, device: str, body: bytes, parked: asyncio.Event,
               counter: list[int]) -> tuple[float, bytes] | tuple[None, str]:
    """One parked Ping; returns (answer time, body), or (None, error) for a reset/closed connection."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (f"POST /Microsoft-Server-ActiveSync?Cmd=Ping&User=bench&DeviceId={device}&DeviceType=iPhone HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: {AUTH}\r\nMS-ASProtocolVersion: 14.1\r\nX-MS-PolicyKey: 4242\r\n"
                f"Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
        counter[0] += 1
        status_line = await reader.readline()
        answered = time.perf_counter()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        data = await reader.readexactly(length)
        writer.close()
    except (OSError, asyncio.IncompleteReadError) as exc:
        return None, repr(exc)
    if b"200" not in status_line:
        return None, status_line.decode(errors="replace").strip()
    return answered, data


async def scenario(port: int, folder: int, devices: list[str], server: psutil.Process) -> None:
    body = encode(E("Ping:Ping", E("Ping:HeartbeatInterval", "900"),
                    E("Ping:Folders", E("Ping:Folder", E("Ping:Id", str(folder)), E("Ping:Class", "Contacts")))))
    writer_device = EasClient(port, "bench", "bench-pw", device_id="writer", version="14.1")
    await asyncio.to_thread(writer_device.provision)  # also fills the server's login cache
    await asyncio.to_thread(writer_device.sync, str(folder), "0")
    await asyncio.to_thread(writer_device.sync, str(folder))
    before = server.memory_info().rss
    parked = asyncio.Event()
    sent = [0]
    started = time.perf_counter()
    tasks = []
    for first in range(0, len(devices), 250):  # paced: Twisted's listen backlog is 50
        tasks += [asyncio.create_task(ping(port, d, body, parked, sent)) for d in devices[first:first + 250]]
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    # wait until the server has settled (all Pings parked: RSS and CPU stop moving)
    last = -1
    for _ in range(120):
        await asyncio.sleep(0.5)
        rss = server.memory_info().rss
        if abs(rss - last) < 64 * 1024 and server.cpu_percent(interval=None) < 5:
            break
        last = rss
    # SQLite work of the parking Pings is I/O-bound (low CPU): optionally give the queue time to drain
    await asyncio.sleep(float(os.environ.get("BENCH_EXTRA_SETTLE_S", "0")))
    parked_at = time.perf_counter()
    after = server.memory_info().rss
    print(f"{len(devices)} Pings parked in {parked_at - started:.1f} s; server RSS {before / 2**20:.0f} -> "
          f"{after / 2**20:.0f} MiB, {(after - before) / len(devices) / 1024:.1f} KiB per parked Ping; "
          f"server threads {server.num_threads()}")
    add = E("AirSync:Add", E("AirSync:ClientId", "wake1"), E("AirSync:ApplicationData", E("Contacts:FirstName", "Wake")))
    t0 = time.perf_counter()
    await asyncio.to_thread(writer_device.sync, str(folder), None, commands=[add], get_changes=False)
    committed = time.perf_counter()
    done, pending = await asyncio.wait(tasks, timeout=120)
    for task in pending:  # connections the server never accepted (listen queue overflow) hang in the kernel
        task.cancel()
    if pending:
        print(f"{len(pending)} Pings unanswered 120 s after the commit (never accepted by the server?)")
    gathered = [task.result() for task in done]
    results = [(answered, data) for answered, data in gathered if answered is not None]
    failed = Counter(str(data)[:60] for answered, data in gathered if answered is None)
    if failed:
        print(f"{sum(failed.values())} Pings failed: {dict(failed.most_common(5))}")
    statuses = {decode(data).findtext("Ping:Status") for _, data in results}  # type: ignore[arg-type]
    latencies = sorted((answered - t0) * 1000 for answered, _ in results)
    early = sum(1 for answered, _ in results if answered <= committed)
    print(f"Sync Add sent -> {len(results)} Ping answers (commit happens inside): statuses {statuses}, "
          f"min {latencies[0]:.0f} ms, median {statistics.median(latencies):.0f} ms, "
          f"p99 {latencies[max(0, int(len(latencies) * 0.99) - 1)]:.0f} ms, max {latencies[-1]:.0f} ms; "
          f"Add round trip {1000 * (committed - t0):.0f} ms; "
          f"{early}/{len(results)} Pings answered before the Add's own response arrived")


def raise_file_limit(count: int) -> int:
    """Each parked Ping is one socket in this process and one in the server (which inherits the
    limit); returns how many Pings the hard limit allows."""
    needed = count + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    allowed = min(count, wanted - 1024)
    if allowed < count:
        print(f"open-file hard limit {hard}: running {allowed} Pings instead of {count}")
    return max(1, allowed)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    count = raise_file_limit(count)
    with tempfile.TemporaryDirectory() as directory:
        url, user_id, folder = seed(directory, 10)
        devices = [f"pingdev{i:05d}" for i in range(count)]
        prime(url, user_id, folder, devices)
        # all Pings log in as one user from one address: keep the verified-login cache for the whole run,
        # otherwise its expiry (60 s) makes thousands of concurrent Argon2 checks, which the login
        # throttle counts as pending failures (429 above 10 per user / 50 per address)
        # optional 2nd argument: listen backlog (Twisted's default is 50; a burst of connects overflows it)
        endpoint = "tcp:0:interface=127.0.0.1" + (f":backlog={sys.argv[2]}" if len(sys.argv) > 2 else "")
        server, port = start(url, {"auth": {"verified_login_cache_seconds": 3600}, "server": {"http_endpoint": endpoint}})
        try:
            asyncio.run(scenario(port, folder, devices, psutil.Process(server.pid)))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
