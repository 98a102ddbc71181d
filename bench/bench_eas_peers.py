"""ActiveSync side by side: oxsync against SOGo's ActiveSync (Debian `sogo-activesync`), issue 11's goal line.

Same data on both (default 5,000 vCards and 2,000 events from bench/peers_data.py; oxsync loaded through
its store, SOGo by CardDAV/CalDAV PUT), the same WBXML client (tests/eas_client.py), servers interleaved
and restarted per measurement, median of the runs:
- initial Sync (windows of 100) of Contacts and Calendar: items/s and server CPU per item; oxsync runs
  with its export cache off (`[eas] export_cache_objects = 0`), SOGo's CPU includes its PostgreSQL;
- a 10-change delta: 10 vCards changed over CardDAV, then one Sync (median of DELTA_ROUNDS such rounds);
- a CardDAV PUT with nothing parked and with N Pings parked on that address book (user u01, one device
  per Ping), the Ping answers after it, server RSS with the Pings parked. SOGo holds one worker process
  per parked Ping (WOWorkersCount = N + 8 for that measurement), so its N is bounded by memory;
- RSS growth while 8 devices send their first request at once with the same new credentials, and with
  8 distinct ones (oxsync: argon2 checks; SOGo: plain SQL passwords, so no hash at all).
SOGo's ActiveSync needs an IMAP server for its logins (`SOGoIMAPServer`): a throwaway passwd-file
Dovecot with the same users and passwords (bench/peers_dovecot.py). If SOGo cannot start, the table says
why and still reports oxsync. `--pg` adds oxsync on a throwaway PostgreSQL cluster (`oxsync-pg`, as
bench_peers --pg; its server CPU includes its PostgreSQL backends, as SOGo's does).

    python -m bench.bench_eas_peers [--cards 5000] [--events 2000] [--runs 3] [--pings 200]
        [--oxsync-pings 1000] [--sogo-pings 200] [--peers oxsync sogo] [--pg] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eas_peers_work import EasServer, delta_sync, folder_ids, initial_sync, login_rss, parked_put  # noqa: E402
from bench.peers_servers import (  # noqa: E402
    ACCOUNTS,
    LOGIN_USERS,
    PASSWORD,
    ROOT,
    USER,
    Client,
    Oxsync,
    Peer,
    Unavailable,
    basic,
    free_port,
    settle,
    wait_port,
)

EXTRA_USERS = [(f"u{n:02d}", f"pw-u{n:02d}") for n in range(21, 41)]
"""Fresh credentials for three runs of the login lines (9 per run), on top of bench_peers' 20 users."""
PING_USER = LOGIN_USERS[0]
SOGO_CONF = {"SOGoMaximumPingInterval": "3540", "SOGoMaximumSyncInterval": "3540",
             "SOGoMaximumSyncWindowSize": "512"}
"""Pings park up to the heartbeat the device asks for (SOGo's default caps them at 10 s); its internal
poll for changes stays at its default (`SOGoInternalSyncInterval`, 10 s)."""
HEARTBEAT = 480  # under sogod's 10-minute watchdog request timeout


class OxsyncEas(Oxsync):
    def start(self) -> int:
        self.port = free_port()
        self.procs = [subprocess.Popen([sys.executable, "-m", "bench.bench_eas_peers", "--serve-oxsync", self.url,
                                        str(self.port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=(self.dir / "server.err").open("ab"))]
        wait_port(self.port, self.procs)
        return self.port


def serve_oxsync(url: str, port: str) -> None:
    from oxsync.config import Settings, StoreSettings, apply_overrides
    from oxsync.dialects import install_all
    from oxsync.server import run_server
    from oxsync.store.api import Store

    store = Store(Settings(store=StoreSettings(url=url)))
    settings = apply_overrides(store.settings, {
        "server": {"http_endpoint": f"tcp:{port}:interface=127.0.0.1:backlog=4096", "udp_port": 0,
                   "processes": 1},  # one serving process: the bench's figures are one process's
        # a loaded machine must not cut a slow window; every device of the bench comes from 127.0.0.1
        "limits": {"max_request_work_seconds": 900.0, "max_connections_per_address": 100_000},
        "eas": {"export_cache_objects": 0, "max_heartbeat_seconds": 3540}})
    run_server(settings, store, configure_logs=False, setup=install_all)


def find_book(port: int, auth: str, home: str) -> str:
    """The user's own "Contacts" address book under a CardDAV home (PROPFIND Depth 1)."""
    status, body = Client(port, auth).request(
        "PROPFIND", home, b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
        b"<D:displayname/></D:prop></D:propfind>", Depth="1", Content_Type="application/xml")
    if status != 207:
        raise Unavailable(f"PROPFIND {home}: HTTP {status} {body[:200]!r}")
    for response in ET.fromstring(body).iter("{DAV:}response"):
        if response.find(".//{urn:ietf:params:xml:ns:carddav}addressbook") is not None and \
                response.findtext(".//{DAV:}displayname") == "Contacts":
            return response.findtext("{DAV:}href") or ""
    raise Unavailable(f"no address book under {home}")


def eas_view(peer: Peer) -> EasServer:
    if isinstance(peer, OxsyncEas):
        return EasServer(peer.port, "", True, lambda: peer.pids() + postgres_pids(peer), peer.pids,
                         lambda user: find_book(peer.port, basic(user, password_of(user)), f"/dav/addressbooks/{user}/"))
    from bench.peers_sogo import Sogo

    assert isinstance(peer, Sogo)
    return EasServer(peer.port, "/SOGo", False, lambda: peer.pids() + postgres_pids(peer), peer.pids,
                     lambda user: f"/SOGo/dav/{user}/Contacts/personal/")


def password_of(user: str) -> str:
    return dict([(USER, PASSWORD), *LOGIN_USERS])[user]


def postgres_pids(peer: Peer) -> list[int]:
    import psutil

    cluster = getattr(peer, "cluster", None)
    if cluster is None:
        return []
    for proc in psutil.process_iter(["cmdline"]):
        if str(cluster.data) in " ".join(proc.info["cmdline"] or []):
            try:
                return [proc.pid, *(c.pid for c in proc.children(recursive=True))]
            except psutil.NoSuchProcess:
                return []
    return []


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


DELTA_ROUNDS = 5
"""10-change deltas per run (each: 10 other vCards changed, then one Sync); the run reports their median,
so one cold or disturbed sample does not decide the cell (every server gets the same rounds)."""
DELTA_PAUSE_S = 1.1
"""Between two delta rounds: SOGo dates changes to the second, and a Sync in the same second as the
last one's changes answers nothing (an empty 200)."""


def measure(peer: Peer, run: int, cards: int, pings: list[int]) -> dict[str, float]:
    """Every workload of one run on `peer`, each part on a freshly started server."""
    out: dict[str, float] = {}
    workers = getattr(peer, "workers", None)
    peer.start()
    try:
        server = eas_view(peer)
        phone = server.device(USER, PASSWORD, f"init{run}")
        folders = folder_ids(phone)
        for kind, label in ((9, "contacts"), (8, "calendar")):
            n, seconds, cpu = initial_sync(server, phone, folders[kind])
            out[f"{label}_items"], out[f"{label}_per_s"], out[f"{label}_cpu_ms"] = n, n / seconds, 1000 * cpu / n
        book = server.book(USER)
        deltas = []
        for k in range(DELTA_ROUNDS):
            if k:
                time.sleep(DELTA_PAUSE_S)  # not measured
            deltas.append(delta_sync(server, phone, folders[9], basic(USER, PASSWORD), book, run * DELTA_ROUNDS + k, cards))
        out["delta_changes"] = min(changed for changed, _, _ in deltas)
        out["delta_ms"] = 1000 * statistics.median(seconds for _, seconds, _ in deltas)
        out["delta_cpu_ms"] = 1000 * statistics.median(cpu for _, _, cpu in deltas)
    finally:
        peer.stop()
    fresh = EXTRA_USERS[run * 9:(run + 1) * 9] if run < 2 else LOGIN_USERS[2 + (run - 2) * 9:11 + (run - 2) * 9]
    for label, logins in (("login_same_mb", [fresh[0]] * 8), ("login_distinct_mb", fresh[1:9])):
        peer.start()
        try:
            time.sleep(2)
            out[label] = login_rss(eas_view(peer), logins, f"{run}{label[6]}")
        finally:
            peer.stop()
    for count in pings:
        if workers is not None:
            peer.workers = count + 8  # type: ignore[attr-defined]
        peer.start()
        try:
            time.sleep(2)
            server = eas_view(peer)
            server.devices = DEVICES.setdefault((peer.name, count), {})
            for key, value in parked_put(server, *PING_USER, count, run, HEARTBEAT).items():
                out[f"ping{count}_{key}"] = value
        except Unavailable as exc:  # this phase only: the run's other figures stand
            print(f"{peer.name}: {count} parked Pings not measured: {exc}", flush=True)
        finally:
            peer.stop()
            if workers is not None:
                peer.workers = workers  # type: ignore[attr-defined]
    return out


DEVICES: dict[tuple[str, int], dict] = {}  # type: ignore[type-arg]
"""Ping devices per (server, N), kept across runs (their sync keys)."""

ROWS = [
    ("contacts_per_s", "initial Sync Contacts, items/s", "rate"),
    ("calendar_per_s", "initial Sync Calendar, items/s", "rate"),
    ("contacts_cpu_ms", "server CPU per item, Contacts (ms)", "time"),
    ("calendar_cpu_ms", "server CPU per item, Calendar (ms)", "time"),
    ("delta_ms", "Sync after 10 changes (ms)", "time"),
    ("delta_cpu_ms", "server CPU, Sync after 10 changes (ms)", "time"),
    ("login_same_mb", "RSS growth, 8 devices same new credentials (MiB)", "time"),
    ("login_distinct_mb", "RSS growth, 8 devices distinct credentials (MiB)", "time"),
]
PING_ROWS = [
    ("put_idle_s", "CardDAV PUT, nothing parked, median of 3 after a warm-up (ms)", 1000),
    ("put_parked_s", "CardDAV PUT waking {n} parked Pings (ms)", 1000),
    ("wake_p50_s", "{n} Ping answers after the PUT sent, p50 (ms)", 1000),
    ("wake_max_s", "{n} Ping answers after the PUT sent, max (ms)", 1000),
    ("pings_changed", "{n} Pings answered Status 2", 1),
    ("rss_parked_mb", "server RSS with {n} parked (MiB)", 1),
    ("rss_per_ping_kb", "RSS per parked Ping (KiB)", 1),
]


def table(results: dict[str, list[dict[str, float]]], pings: dict[str, list[int]]) -> str:
    names = list(results)

    def med(name: str, key: str) -> float | None:
        values = [r[key] for r in results[name] if key in r]
        return statistics.median(values) if values else None

    def cell(value: float | None, scale: float = 1) -> str:
        return "-" if value is None else f"{value * scale:,.3g}" if abs(value * scale) < 100 else f"{value * scale:,.0f}"

    ours = [n for n in names if n != "sogo"] if "sogo" in names else []
    """Each oxsync column (SQLite, and PostgreSQL with --pg) gets its ratio to SOGo."""

    def ratios(key: str, kind: str) -> str:
        sogo, cells = med("sogo", key) if ours else None, []
        for name in ours:
            mine = med(name, key)
            cells.append("" if not (mine and sogo) or kind == "" else
                         f"{mine / sogo:.2f}× faster" if kind == "rate" else f"{sogo / mine:.2f}×")
        return "".join(f" {c} |" for c in cells)

    lines = ["| workload | " + " | ".join(names) + " |" + "".join(f" {n} vs sogo |" for n in ours),
             "|---" * (len(names) + 1 + len(ours)) + "|"]
    for key, label, kind in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(med(n, key)) for n in names) + " |" + ratios(key, kind))
    for count in sorted({c for cs in pings.values() for c in cs}):
        for key, label, scale in PING_ROWS:
            name = f"ping{count}_{key}"
            lines.append(f"| {label.format(n=count)} | " + " | ".join(cell(med(n, name), scale) for n in names) + " |"
                         + ratios(name, "time" if key.startswith(("put", "wake")) else ""))
    return "\n".join(lines)


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "--serve-oxsync":
        serve_oxsync(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--oxsync-pings", type=int, nargs="*", default=[200, 1000])
    parser.add_argument("--sogo-pings", type=int, nargs="*", default=[200])
    parser.add_argument("--peers", nargs="*", default=["oxsync", "sogo"])
    parser.add_argument("--pg", action="store_true", help="also oxsync on a throwaway PostgreSQL cluster")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    # started in the background (`cmd &` ignores SIGINT), Ctrl-C / kill -INT must still run the clean-up
    # below (stop sogod, Dovecot, memcached, PostgreSQL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for users in (LOGIN_USERS, ACCOUNTS):  # oxsync creates LOGIN_USERS, SOGo and its Dovecot ACCOUNTS
        users.extend(u for u in EXTRA_USERS if u not in users)
    raise_file_limit(max([0, *args.oxsync_pings, *args.sogo_pings]) * 2 + 2048)
    print(f"bench_eas_peers: {args.cards} vCards, {args.events} events, {args.runs} runs; {load()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-eas-peers-"))
    peers: list[Peer] = []
    reasons: dict[str, str] = {}
    dovecot = None
    cluster = None
    pings = {"oxsync": args.oxsync_pings, "oxsync-pg": args.oxsync_pings, "sogo": args.sogo_pings}
    try:
        for name in (["oxsync-pg"] if args.pg else []) + args.peers:
            started = time.perf_counter()
            try:
                if name == "oxsync":
                    peer: Peer = OxsyncEas(workdir)
                elif name == "oxsync-pg":
                    from tests.pgcluster import PgCluster

                    cluster = PgCluster()
                    cluster.start()
                    peer = OxsyncEas(workdir, cluster.empty_database(), "oxsync-pg")
                    peer.cluster = cluster  # type: ignore[attr-defined] # its backends' CPU counts (postgres_pids)
                else:
                    from bench.peers_dovecot import PasswdDovecot
                    from bench.peers_sogo import Sogo

                    dovecot = PasswdDovecot(ACCOUNTS)
                    dovecot.start()
                    peer = Sogo(workdir, imap_port=dovecot.listeners.imap, extra_conf=SOGO_CONF)
                    peer.workers = 8  # type: ignore[attr-defined]
                    peer.max_workers = max([8, *args.sogo_pings]) + 8  # type: ignore[attr-defined]
                peers.append(peer)
                peer.setup(args.events, args.cards)  # type: ignore[attr-defined]
                if name == "sogo":  # the Ping user's address book exists once its DAV home was visited
                    peer.start()
                    try:
                        Client(peer.port, basic(*PING_USER)).request("PROPFIND", f"/SOGo/dav/{PING_USER[0]}/Contacts/personal/",
                                                                     Depth="0")
                    finally:
                        peer.stop()
                print(f"{name}: loaded in {time.perf_counter() - started:.0f} s; {load()}", flush=True)
            except Unavailable as exc:
                reasons[name] = str(exc)
                print(f"{name}: not measured: {exc}", flush=True)
                if peers and peers[-1].name == name:
                    peers.pop().close()
        results: dict[str, list[dict[str, float]]] = {p.name: [] for p in peers}
        for run in range(args.runs):
            order = peers if run % 2 == 0 else list(reversed(peers))
            for peer in order:
                try:
                    settle(peers)
                    figures = measure(peer, run, args.cards, pings.get(peer.name, []))
                except (Unavailable, OSError, AssertionError) as exc:
                    traceback.print_exc()
                    reasons[peer.name] = f"run {run + 1}: {exc}"
                    continue
                results[peer.name].append(figures)
                print(f"run {run + 1} {peer.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()) +
                      f"; {load()}", flush=True)
        text = table(results, pings)
        text += "\n\n" + "\n".join(f"{name}: {why}" for name, why in reasons.items())
        text += f"\nmedians of {args.runs} runs; {load()} at the end; 2 cores shared with other jobs\n"
        print(text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
    finally:
        for peer in peers:
            peer.stop()
            peer.close()
        if dovecot is not None:
            dovecot.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
