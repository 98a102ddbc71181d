"""Console and admin API page timings for a tenant with 1,000 accounts (issue 16).

Seeds a SQLite store (1,000 accounts through the console's own store calls, so 1,000 audit rows too;
20 groups of 50, 300 ActiveSync devices), runs `oxsync serve`'s assembly with the console in a child
process, signs in as the tenant admin and times each page over real HTTP (median and p95 of N runs,
after one warm-up). Run: `python bench/bench_console.py [--accounts 1000] [--runs 20]`.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from oxsync.config import AuthSettings, Settings, StoreSettings
from oxsync.model import Module, Protocol
from oxsync.store import accounts, admin, admin_ops
from oxsync.store.api import Store
from oxsync.store.folders import default_folder_id

CHEAP = AuthSettings(password_hash_time_cost=1, password_hash_memory_kib=1024, password_hash_parallelism=1)
ADMIN_PASSWORD = "bench-admin-pw"
CHILD = r"""
import sys
from oxsync.config import ServerSettings, Settings, StoreSettings, apply_overrides
from oxsync.dialects import install_all
from oxsync.server import run_server
from oxsync.store.api import Store
url, overrides = sys.argv[1], eval(sys.argv[2])
# one serving process: this bench's figures are one process's ([server] processes defaults to auto)
settings = apply_overrides(Settings(store=StoreSettings(url=url, thread_pool_size=8), server=ServerSettings(processes=1)),
                           overrides)
run_server(settings, Store(settings), on_ready=lambda port: print(port, flush=True), configure_logs=False,
           setup=install_all)
"""


def seed(url: str, count: int) -> dict[str, int]:
    store = Store(Settings(store=StoreSettings(url=url), auth=CHEAP))
    store.create_schema()
    tenant = store.create_tenant("bench.test", max_accounts=count + 100, quota_bytes=50 * 1024**3)
    actor = admin.cli_actor()
    with store.transaction(tenant.id, write=True) as tx:
        boss = accounts.create_user(tx, "boss", ADMIN_PASSWORD, flags={"tenant_admin": True})
    started = time.perf_counter()
    ids = []
    for n in range(count - 1):
        user, _ = admin_ops.create_account(store, actor, tenant.id, f"user{n:04d}", password="pw-bench-1",
                                           display_name=f"User {n:04d}", protocols=list(Protocol))
        ids.append(user.id)
    seeded = time.perf_counter() - started
    with store.transaction(tenant.id, write=True) as tx:
        for g in range(20):
            accounts.create_group(tx, f"group{g:02d}", f"Group {g}", ids[g * 50:(g + 1) * 50])
    now = int(time.time())
    with store.transaction(tenant.id, write=True) as tx:
        from oxsync.store.session import UserSession

        for n, user_id in enumerate(ids[:300]):
            session = UserSession(tx, user_id)
            session.put_state(f"DEV{n:04d}", "", {"type": "iPhone", "ua": "Apple-iPhone/2101", "version": "16.1",
                                                   "info": {"model": "iPhone16,1"}, "policy_state": "provisioned",
                                                   "first_seen": now - 86400 * 30, "last_seen": now - n * 600})
            for folder in (default_folder_id(tx, user_id, Module.CONTACT), default_folder_id(tx, user_id, Module.CALENDAR)):
                session.put_state(f"DEV{n:04d}", f"c:{folder}", {"key": "{bench}4", "known": "1-100", "filter": 0})
    store.dispose()
    print(f"seeded {count} accounts through admin_ops in {seeded:.1f} s ({seeded / max(1, count - 1) * 1000:.1f} ms each)")
    return {"tenant": tenant.id, "boss": boss.id, "user": ids[10], "group": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(session: requests.Session, url: str, runs: int, **kw) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    session.get(url, timeout=60, **kw)  # warm-up
    samples = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = session.get(url, timeout=60, **kw)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.content)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)], size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/console-bench.db"
        ids = seed(url, args.accounts)
        port = free_port()
        overrides = {"server": {"http_endpoint": "tcp:0:interface=127.0.0.1", "udp_port": 0},
                     "console": {"endpoint": f"tcp:{port}:interface=127.0.0.1"}}
        proc = subprocess.Popen([sys.executable, "-c", CHILD, url, repr(overrides)], stdout=subprocess.PIPE,
                                text=True, cwd=str(Path(__file__).resolve().parent.parent))
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.strip().isdigit():
                raise RuntimeError(f"server did not start: {line!r}")
            run(f"http://127.0.0.1:{port}", ids, args.runs, args.accounts)
        finally:
            proc.terminate()
            proc.wait(10)


def run(base: str, ids: dict[str, int], runs: int, count: int) -> None:
    import re

    web = requests.Session()
    page = web.get(base + "/login", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    web.post(base + "/login", data={"login": "boss", "password": ADMIN_PASSWORD, "csrf": csrf}, timeout=30)
    tid, uid = ids["tenant"], ids["user"]
    pages = [
        ("home (usage, storage, devices)", f"/t/{tid}", {}),
        ("accounts, page 1 of 20", f"/t/{tid}/accounts", {}),
        ("accounts, search 'user09'", f"/t/{tid}/accounts", {"params": {"q": "user09"}}),
        ("accounts, sorted by storage desc", f"/t/{tid}/accounts", {"params": {"sort": "usage_bytes", "dir": "desc"}}),
        ("accounts, last page", f"/t/{tid}/accounts", {"params": {"page": 20}}),
        ("one account (with devices)", f"/t/{tid}/accounts/{uid}", {}),
        ("groups", f"/t/{tid}/groups", {}),
        ("one group (1,000 member toggles)", f"/t/{tid}/groups/{ids['group']}", {}),
        ("folders and sharing of one account", f"/t/{tid}/accounts/{uid}/folders", {}),
        ("devices, tenant-wide (300)", f"/t/{tid}/devices", {}),
        ("one device (per-folder state)", f"/t/{tid}/accounts/{uid}/devices/DEV0010", {}),
        ("audit log (100 newest of ~1,000)", f"/t/{tid}/audit", {}),
        ("self-service", "/me", {}),
    ]
    print(f"\nconsole page timings, tenant with {count} accounts, {runs} runs each (SQLite, loopback):")
    print(f"{'page':<40} {'median ms':>10} {'p95 ms':>8} {'bytes':>9}")
    for name, path, kw in pages:
        median, p95, size = timed(web, base + path, runs, **kw)
        print(f"{name:<40} {median:>10.1f} {p95:>8.1f} {size:>9}")


if __name__ == "__main__":
    main()


