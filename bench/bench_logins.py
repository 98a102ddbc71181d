"""The login lines of issue 11 on oxsync alone, with `[server] processes = N` on PostgreSQL.

Per round (the server restarted, so no login is remembered): `bench_peers`' login lines (20 clients x 3
requests on new connections, one user then 20 fresh users: requests/s, their ratio, the server's CPU
per request, all its processes summed), then the peak RSS growth of all its processes while 8 devices
send their first request at once with the same new credentials (one Argon2 check on the node: one
hash's memory, whichever process each connection lands on). Run it under two trees' PYTHONPATH to
compare; record `uptime` beside it (the wall-clock figures follow the machine's load, the CPU per
request much less).

Usage: python -m bench.bench_logins [--processes 2] [--rounds 3] [--sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from bench.bench_peers import LOGIN_REQUESTS, PROPFIND0, XML, cpu_seconds, login_rate
from bench.eas_peers_work import arrivals_rss_growth
from bench.peers_servers import LOGIN_USERS, PROCESSES_ENV, SOLO_USER, USER, Client, Oxsync, basic

DEVICES = 8
"""Devices arriving at once with the same new credentials in the memory line."""


def first_requests_rss_mib(peer: Oxsync, login: str, password: str) -> float:
    """Peak growth (MiB) of the server processes' summed RSS while DEVICES send their first request."""
    for _ in range(DEVICES):  # every process has answered one request already (their own baseline)
        client = Client(peer.port, peer.auth)
        client.request("PROPFIND", peer.principal, PROPFIND0, Depth="0", Content_Type=XML)
        client.close()
    time.sleep(0.5)
    barrier = threading.Barrier(DEVICES)

    def first(_: int) -> int:
        client = Client(peer.port, basic(login, password), timeout=120)
        barrier.wait(30)
        status, _body = client.request("PROPFIND", peer.login_path(login), PROPFIND0, Depth="0", Content_Type=XML)
        client.close()
        return status
    statuses, growth = arrivals_rss_growth(peer.pids(), first, DEVICES)
    if any(s != 207 for s in statuses):
        raise RuntimeError(f"first requests answered {statuses}")
    return growth


def node_hashes(peer: Oxsync, processes: int) -> int | None:
    """Argon2 checks the node ran (`/health`'s `password_hashes` of each process, summed; None when the
    server does not count them): new connections until each process has answered one."""
    seen: dict[int, int] = {}
    for _ in range(200):
        client = Client(peer.port, None)
        status, body = client.request("GET", "/health")
        client.close()
        health = json.loads(body)
        if status != 200 or "password_hashes" not in health:
            return None
        seen[int(health["process"])] = int(health["password_hashes"])
        if len(seen) == processes:
            return sum(seen.values())
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="[server] processes on PostgreSQL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true", help="SQLite (one process) instead of PostgreSQL")
    args = parser.parse_args(argv)
    os.environ[PROCESSES_ENV] = str(args.processes)
    processes = 1 if args.sqlite else args.processes
    cluster = None
    if not args.sqlite:
        from tests.pgcluster import PgCluster

        cluster = PgCluster()
        cluster.start()
    print(f"{'sqlite' if args.sqlite else 'postgresql'}, processes = {1 if args.sqlite else args.processes}: "
          f"{len(LOGIN_USERS)} clients x {LOGIN_REQUESTS} requests; user {USER} warms up", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-logins-") as tmp:
            peer = Oxsync(Path(tmp), None if cluster is None else cluster.empty_database(), "oxsync")
            peer.setup(10, 10)
            requests = len(LOGIN_USERS) * LOGIN_REQUESTS
            for number in range(args.rounds):
                settle = 3.0 if args.processes > 1 and not args.sqlite else 0.5  # the copies start after
                peer.start()
                time.sleep(settle)
                load = os.getloadavg()[0]
                c0 = cpu_seconds(peer.pids())
                solo = login_rate(peer, [SOLO_USER]) or 0.0
                c1 = cpu_seconds(peer.pids())
                many = login_rate(peer, LOGIN_USERS) or 0.0
                c2 = cpu_seconds(peer.pids())
                hashes = node_hashes(peer, processes)
                peer.stop()
                peer.start()  # nothing remembered again: the first login user is new to it
                time.sleep(settle)
                memory = first_requests_rss_mib(peer, *LOGIN_USERS[0])
                peer.stop()
                print(f"round {number + 1}: load {load:.1f}, logins_1 {solo:.1f}/s, logins_20 {many:.1f}/s, "
                      f"ratio {many / solo if solo else 0:.3f}, CPU ms/request {(c1 - c0) * 1000 / requests:.1f} / "
                      f"{(c2 - c1) * 1000 / requests:.1f}, Argon2 checks {hashes if hashes is not None else '-'} "
                      f"(at least {len(LOGIN_USERS) + 1}), {DEVICES} devices same new credentials: "
                      f"+{memory:.1f} MiB", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
