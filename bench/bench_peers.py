"""oxsync next to Radicale, Xandikos and SOGo: every CalDAV/CardDAV workload of issue 11, one run.

Every server gets the same generated data (bench/peers_data.py: events with time zones, attendees and
alarms, one in ten recurring; vCards) through its own bulk path, then, for each of --runs repeats, each
server is started (cold), measured on every workload and stopped, servers interleaved. The table shows
per server run 1 (the first request of each kind after the load) and the median of the later runs
apart, the ratio oxsync/peer of each (times: < 1 means oxsync is faster; rates: > 1 means oxsync is
faster) and the answer counts (the servers must agree on what matched).

Usage: python -m bench.bench_peers [--events 10000] [--cards 10000] [--runs 3] [--peers ...] [--pg]
       (make bench-peers). A peer that cannot be started is reported with the reason.
       python -m bench.bench_peers --sizes 1000,10000,100000 --peers oxsync [--pg] --runs 1: oxsync alone
       at each size, every report's time, server CPU and peak RSS (what grows with the folder).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers_data import MONTH, event, event_name  # noqa: E402
from bench.peers_servers import (  # noqa: E402
    LOGIN_USERS,
    PROCESSES_ENV,
    SOLO_USER,
    Client,
    Oxsync,
    Peer,
    Radicale,
    Unavailable,
    Xandikos,
    serve_oxsync,
    settle,
)
from tests.procstat import proc_stat  # noqa: E402

PROPFIND = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
PROPFIND0 = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/>'
             b"<D:displayname/></D:prop></D:propfind>")
XML = "application/xml; charset=utf-8"
HREF = re.compile(rb"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>")


def sync_body(token: str) -> bytes:
    return (f'<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
            "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>").encode()


def multiget_body(kind: str, hrefs: list[str]) -> bytes:
    ns, root, data = (("urn:ietf:params:xml:ns:caldav", "calendar-multiget", "calendar-data") if kind == "cal" else
                      ("urn:ietf:params:xml:ns:carddav", "addressbook-multiget", "address-data"))
    body = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (f'<?xml version="1.0"?><C:{root} xmlns:D="DAV:" xmlns:C="{ns}"><D:prop><D:getetag/><C:{data}/>'
            f"</D:prop>{body}</C:{root}>").encode()


def query_body(start: str, end: str) -> bytes:
    return ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            "<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\">"
            f'<C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter>'
            "</C:comp-filter></C:filter></C:calendar-query>").encode()


def responses(body: bytes) -> int:
    return len(re.findall(rb"<(?:\w+:)?response[ >]", body))


def token_of(body: bytes) -> str:
    found = re.findall(rb"<(?:\w+:)?sync-token>([^<]+)<", body)
    return found[-1].decode() if found else ""


def peak_rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def step_peak_mb(pids: list[int]) -> float:
    """Peak RSS since the last call (MB, summed over `pids`), then reset the kernel's peak to the current
    RSS (/proc/PID/clear_refs 5), so each workload's own peak shows (the `rss_<workload>` figures)."""
    peak = peak_rss_mb(pids)
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            continue
    return peak


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes used so far (children included): work, whatever the machine's load."""
    total = 0
    for pid in pids:
        try:
            total += proc_stat(pid).cpu_ticks  # utime stime cutime cstime, in clock ticks
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def scheduled_seconds(pids: list[int]) -> tuple[float, float]:
    """(on a core, waiting in the run queue for one) in seconds, summed over the live threads of `pids`
    (/proc/PID/task/TID/schedstat, nanoseconds): the second says how much of a request's wall time the
    server spent waiting for a core that another job held (bench/README z3-procreads)."""
    run = wait = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                on_cpu, queued, _ = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
            except (OSError, ValueError):
                continue
            run, wait = run + int(on_cpu), wait + int(queued)
    return run / 1e9, wait / 1e9


def reads_served(pids: list[int], cpu_before: list[float], cpu_after: list[float]) -> dict[str, float]:
    """With several server processes (oxsync's `[server] processes`): which of `pids` (0: the first) used
    the most CPU over the single client's reads, i.e. served them on its kept-alive connection, and the CPU
    of the others meanwhile (their background work: polls, relay, texts ahead)."""
    if len(pids) < 2:
        return {}
    spent = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    served = max(range(len(pids)), key=spent.__getitem__)
    return {"reads_process": float(served), "reads_cpu_others": sum(spent) - spent[served]}


def timed(fn: Callable[[], tuple[int, bytes]]) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    status, body = fn()
    return time.perf_counter() - started, status, body


def measure(peer: Peer, events: int, cards: int, run: int, puts: int) -> tuple[dict[str, float], dict[str, int]]:
    """One run of every workload on a freshly started `peer`: {metric: value}, {metric: answer count}."""
    out: dict[str, float] = {}
    counts: dict[str, int] = {}
    peer.start()
    c = Client(peer.port, peer.auth)

    peaks: dict[str, float] = {"rss_idle": step_peak_mb(peer.pids())}
    cpu_mark = [cpu_seconds(peer.pids())]
    read_pids = peer.pids()  # the reads' diagnostics (which process served them, waits for a core)
    read_cpu, read_sched = [cpu_seconds([p]) for p in read_pids], scheduled_seconds(read_pids)

    def check(label: str, status: int, body: bytes, expect: int = 207) -> None:
        if status != expect:
            raise Unavailable(f"{label}: HTTP {status} {body[:300]!r}")
        counts[label] = responses(body)
        peaks[f"rss_{label}"] = step_peak_mb(peer.pids())
        now = cpu_seconds(peer.pids())
        out[f"cpu_{label}"], cpu_mark[0] = now - cpu_mark[0], now  # the server's CPU seconds for this report

    for label in ("propfind_cold", "propfind_warm"):
        out[label], status, body = timed(lambda: c.request("PROPFIND", peer.cal, PROPFIND, Depth="1",
                                                                Content_Type=XML))
        check(label, status, body)
    out["sync_initial"], status, body = timed(lambda: c.request("REPORT", peer.cal, sync_body(""), Depth="0",
                                                                Content_Type=XML))
    check("sync_initial", status, body)
    token = token_of(body)
    pages, rest = 1, 0.0
    while b"number-of-matches-within-limits" in body and pages < 1000:  # truncated (507): a client pages on
        took, status, body = timed(partial(c.request, "REPORT", peer.cal, sync_body(token), Depth="0",
                                           Content_Type=XML))
        if status != 207:
            raise Unavailable(f"sync_initial page {pages + 1}: HTTP {status} {body[:300]!r}")
        pages, rest, token = pages + 1, rest + took, token_of(body)
    if pages > 1:  # the first page is sync_initial; the others (and their CPU and peak) here
        out["sync_initial_rest"] = rest
        check("sync_initial_rest", status, body)
        counts["sync_initial_pages"] = pages
    base = peer.cal.encode()
    hrefs = sorted({h.decode() for h in HREF.findall(body) if h.startswith(base) and h != base})
    chosen = hrefs[:: max(1, len(hrefs) // 1000)][:1000]
    out["multiget_1000"], status, body = timed(
        lambda: c.request("REPORT", peer.cal, multiget_body("cal", chosen), Depth="1", Content_Type=XML))
    check("multiget_1000", status, body)
    out["query_month"], status, body = timed(
        lambda: c.request("REPORT", peer.cal, query_body(*MONTH), Depth="1", Content_Type=XML))
    check("query_month", status, body)
    out["card_sync"], status, body = timed(lambda: c.request("REPORT", peer.card_path, sync_body(""), Depth="0",
                                                                Content_Type=XML))
    check("card_sync", status, body)
    base = peer.card_path.encode()
    card_hrefs = sorted({h.decode() for h in HREF.findall(body) if h.startswith(base) and h != base})
    chosen = card_hrefs[:: max(1, len(card_hrefs) // 1000)][:1000]
    out["card_multiget_1000"], status, body = timed(
        lambda: c.request("REPORT", peer.card_path, multiget_body("card", chosen), Depth="1",
                          Content_Type=XML))
    check("card_multiget_1000", status, body)
    out["reads_rq_wait"] = scheduled_seconds(read_pids)[1] - read_sched[1]
    out.update(reads_served(read_pids, read_cpu, [cpu_seconds([p]) for p in read_pids]))
    for k in range(10):
        i = (k * 997 + run) % events
        status, text = c.request("PUT", peer.cal + event_name(i), event(i, events, f"Changed {run}").encode(),
                                 Content_Type="text/calendar; charset=utf-8")
        if status not in (200, 201, 204):
            raise Unavailable(f"PUT change: HTTP {status} {text[:200]!r}")
    cpu_mark[0] = cpu_seconds(peer.pids())
    out["sync_delta10"], status, body = timed(lambda: c.request("REPORT", peer.cal, sync_body(token), Depth="0",
                                                                Content_Type=XML))
    check("sync_delta10", status, body)
    if not puts:  # the reports only (--sizes)
        c.close()
        out["rss_mb"] = max(peaks.values())
        out.update(peaks)
        peer.stop()
        return out, counts
    for clients in (1, 8):
        phase = put_rate(peer, run, clients, puts if clients > 1 else max(1, puts // 2), events)
        out[f"put_{clients}"] = phase["rate"]
        for key in ("cpu_ms", "db_ms", "all_ms"):
            out[f"put_{clients}_{key}"] = phase[key]
    before = cpu_seconds(peer.pids())
    solo = login_rate(peer, [SOLO_USER])  # first: neither account has logged in on this server run
    middle = cpu_seconds(peer.pids())
    logins = login_rate(peer, LOGIN_USERS)
    after = cpu_seconds(peer.pids())
    if logins is not None and solo is not None:
        out["logins_1"], out["logins_20"], out["logins_ratio"] = solo, logins, logins / solo
        per_login = 1000 / (len(LOGIN_USERS) * LOGIN_REQUESTS)
        out["logins_1_cpu_ms"], out["logins_20_cpu_ms"] = (middle - before) * per_login, (after - middle) * per_login
    c.close()
    peaks["rss_puts_logins"] = step_peak_mb(peer.pids())
    out["rss_mb"] = max(peaks.values())
    out.update(peaks)
    peer.stop()
    return out, counts


PUTS = 800
"""PUTs of the 8-client phase (100 per client), half as many with 1 client; the same for every server: a phase
lasts 2-4 s or more on the fastest server (200 PUT/s), so a moment of the machine's drift weighs little (200
PUTs per phase before, 1-2 s)."""


def put_rate(peer: Peer, run: int, clients: int, total: int, events: int) -> dict[str, float]:
    """New events PUT (If-None-Match: *) into an empty collection by `clients` connections: PUT/s, and
    the CPU per PUT of the server's processes (`cpu_ms`), of its database's (`db_ms`: PostgreSQL's
    postmaster and backends, SOGo's memcached) and both (`all_ms`). Each client first opens its connection
    and PUTs one event that is not counted; the phase's clock and CPU start when all have (a barrier)."""
    per_client = max(1, total // clients)
    marks: dict[str, float] = {}
    pids, db_pids = peer.pids(), peer.db_pids()

    def mark(label: str) -> None:
        marks[label], marks[label + "_cpu"], marks[label + "_db"] = (
            time.perf_counter(), cpu_seconds(pids), cpu_seconds(db_pids))

    barrier = threading.Barrier(clients, action=lambda: mark("start"))

    def put(client: Client, k: int, name: str) -> None:
        body = event(k, events).replace(f"UID:bench-{k}@", f"UID:put-{run}-{clients}-{name}@").encode()
        status, text = client.request("PUT", f"{peer.puts}r{run}c{clients}-{name}.ics", body, If_None_Match="*",
                                      Content_Type="text/calendar; charset=utf-8")
        if status not in (200, 201, 204):
            raise Unavailable(f"PUT: HTTP {status} {text[:200]!r}")

    def worker(n: int) -> None:
        client = Client(peer.port, peer.auth)
        try:
            put(client, events - 1 - n, f"w{n}")  # the connection and the first request, not counted
        except BaseException:
            barrier.abort()
            raise
        barrier.wait()
        for j in range(per_client):
            k = n + j * clients
            put(client, k, str(k))
        client.close()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    mark("end")
    done = per_client * clients
    cpu = (marks["end_cpu"] - marks["start_cpu"]) * 1000 / done
    db = (marks["end_db"] - marks["start_db"]) * 1000 / done
    return {"rate": done / (marks["end"] - marks["start"]), "cpu_ms": cpu, "db_ms": db, "all_ms": cpu + db}


LOGIN_REQUESTS = 3
"""Requests per client in the login lines (each on a new connection)."""


def login_rate(peer: Peer, accounts: list[tuple[str, str]], per_user: int = LOGIN_REQUESTS) -> float | None:
    """20 clients arrive at once, client k logging in as `accounts[k % len(accounts)]`, each with
    `per_user` requests on a new connection: requests/s. One account (20 devices of one user, the
    first check shared) against 20 accounts (20 first password checks) says what distinct logins cost."""
    if not peer.login_path(accounts[0][0]):
        return None
    errors: list[str] = []
    lock = threading.Lock()
    clients = [accounts[k % len(accounts)] for k in range(len(LOGIN_USERS))]

    def user(pair: tuple[str, str]) -> None:
        login, password = pair
        for _ in range(per_user):
            client = Client(peer.port, peer.login_auth(login, password), timeout=120)
            status, body = client.request("PROPFIND", peer.login_path(login), PROPFIND0, Depth="0", Content_Type=XML)
            client.close()
            if status != 207:
                with lock:
                    errors.append(f"{login}: {status}")
    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(user, clients))
    elapsed = time.perf_counter() - started
    if errors:
        raise Unavailable("logins failed: " + ", ".join(errors[:3]))
    return len(clients) * per_user / elapsed


ROWS = [
    ("propfind_cold", "PROPFIND Depth 1 cold (s)"), ("propfind_warm", "PROPFIND Depth 1 warm (s)"),
    ("multiget_1000", "calendar-multiget 1,000 (s)"), ("query_month", "calendar-query one month (s)"),
    ("sync_initial", "initial sync-collection (s)"), ("sync_delta10", "sync-collection, 10 changes (s)"),
    ("card_sync", "CardDAV initial sync (s)"), ("card_multiget_1000", "CardDAV multiget 1,000 (s)"),
    ("cpu_multiget_1000", "server CPU s, calendar-multiget 1,000"), ("cpu_query_month", "server CPU s, month query"),
    ("cpu_card_multiget_1000", "server CPU s, CardDAV multiget 1,000"),
    ("reads_rq_wait", "server's wait for a core s, the 7 reads above"),
    ("put_1", "PUT/s, 1 client"), ("put_8", "PUT/s, 8 clients"),
    ("put_1_cpu_ms", "server CPU ms per PUT, 1 client"), ("put_1_db_ms", "its database's CPU ms per PUT, 1 client"),
    ("put_1_all_ms", "server + database CPU ms per PUT, 1 client"),
    ("put_8_cpu_ms", "server CPU ms per PUT, 8 clients"), ("put_8_db_ms", "its database's CPU ms per PUT, 8 clients"),
    ("put_8_all_ms", "server + database CPU ms per PUT, 8 clients"),
    ("logins_1", "requests/s, 1 user logging in (20 clients)"), ("logins_20", "requests/s, 20 users logging in"),
    ("logins_ratio", "20 users / 1 user (logins)"),
    ("logins_1_cpu_ms", "server CPU ms per request, 1 user logging in"),
    ("logins_20_cpu_ms", "server CPU ms per request, 20 users logging in"), ("rss_mb", "peak RSS (MB)"),
]


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _ratio(mine: float | None, theirs: float | None) -> str:
    return "-" if not mine or not theirs else f"{mine / theirs:.2f}x"


def table(results: dict[str, list[dict[str, float]]], counts: dict[str, dict[str, int]], reasons: dict[str, str],
          title: str) -> str:
    """One row per workload. With more than one run, each cell is `run 1 / later`: run 1 is the first
    request of each kind after the load (where a server builds what it keeps: oxsync's served texts
    before they were rendered with the load, Radicale's item cache), later = the median of the other
    runs, which read what run 1 left; a median mixing both would show neither."""
    names = list(results)
    head = names[0]
    split = max(len(runs) for runs in results.values()) > 1
    lines = [title + (" (each cell: run 1 / median of the later runs)" if split else ""), "",
             "| workload | " + " | ".join(names) + " | " + " | ".join(f"{head}/{n}" for n in names[1:]) + " |",
             "|---" * (1 + 2 * len(names) - 1) + "|"]

    def median(runs: list[dict[str, float]], key: str) -> float | None:
        values = [r[key] for r in runs if key in r]
        return statistics.median(values) if values else None

    parts = {n: ([runs[:1], runs[1:]] if split else [runs]) for n, runs in results.items()}
    for key, label in ROWS:
        cells, ratios = [], []
        for n in names:
            cells.append(" / ".join(_cell(median(runs, key)) for runs in parts[n]))
        for n in names[1:]:
            ratios.append(" / ".join(_ratio(median(mine, key), median(theirs, key))
                                     for mine, theirs in zip(parts[head], parts[n], strict=True)))
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines.append("")
    lines.append("Answers (responses counted in the multistatus; servers should agree): " + "; ".join(
        f"{n}: " + ", ".join(f"{k}={v}" for k, v in counts.get(n, {}).items()) for n in names))
    lines.append("Ratios: times and RSS oxsync/peer (< 1: oxsync better); rates oxsync/peer (> 1: oxsync better).")
    for n, why in reasons.items():
        lines.append(f"NOT MEASURED {n}: {why}")
    return "\n".join(lines)


def make_peers(args: argparse.Namespace, workdir: Path, reasons: dict[str, str]) -> list[Peer]:
    peers: list[Peer] = []
    factories: dict[str, Callable[[], Peer]] = {"oxsync": lambda: Oxsync(workdir), "radicale": lambda: Radicale(workdir),
                                               "xandikos": lambda: Xandikos(workdir)}
    if args.pg:
        from tests.pgcluster import PgCluster

        cluster = PgCluster()
        cluster.start()
        args.cluster = cluster
        factories["oxsync-pg"] = lambda: Oxsync(workdir, cluster.empty_database(), "oxsync-pg", cluster.data)
    if "sogo" in args.peers:
        from bench.peers_sogo import Sogo

        factories["sogo"] = lambda: Sogo(workdir)
    order = (["oxsync-pg"] if args.pg else []) + args.peers
    for name in order:
        peer = None
        try:
            peer = factories[name]()
            started, cpu = time.perf_counter(), time.process_time()
            peer.setup(args.events, args.cards)
            print(f"{name}: data loaded in {time.perf_counter() - started:.1f} s ({time.process_time() - cpu:.1f} s "
                  f"CPU of this process), load {os.getloadavg()[0]:.1f}", flush=True)
            peers.append(peer)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
            reasons[name] = f"setup: {type(exc).__name__}: {exc}"
            print(f"{name}: not available: {reasons[name]}", flush=True)
            if peer is not None:
                peer.stop()
                peer.close()
    return peers


SIZE_ROWS = ["propfind_cold", "propfind_warm", "sync_initial", "sync_initial_rest", "sync_delta10", "multiget_1000", "query_month",
             "card_sync", "card_multiget_1000"]


def run_sizes(args: argparse.Namespace) -> int:
    """oxsync alone (SQLite, and PostgreSQL with --pg) at each of --sizes events + as many vCards: every
    report's time, server CPU and peak RSS per size, to see what grows with the folder."""
    sizes = [int(x) for x in args.sizes.split(",")]
    labels = (["oxsync"] if "oxsync" in args.peers else []) + (["oxsync-pg"] if args.pg else [])
    found: dict[str, dict[int, dict[str, float]]] = {label: {} for label in labels}
    answers: dict[str, dict[int, dict[str, int]]] = {label: {} for label in labels}
    cluster = None
    with tempfile.TemporaryDirectory(prefix="bench-sizes-") as tmp:
        try:
            if args.pg:
                from tests.pgcluster import PgCluster

                cluster = PgCluster()
                cluster.start()
            for size in sizes:
                for label in labels:
                    workdir = Path(tmp) / f"{label}-{size}"
                    workdir.mkdir()
                    url = cluster.empty_database() if label == "oxsync-pg" and cluster is not None else None
                    peer = Oxsync(workdir, url, label)
                    started, cpu = time.perf_counter(), time.process_time()
                    try:
                        peer.setup(size, size)
                        load = {"load_s": time.perf_counter() - started, "load_cpu_s": time.process_time() - cpu}
                        print(f"{label} {size}: loaded {size} + {size} in {load['load_s']:.1f} s "
                              f"({load['load_cpu_s']:.1f} s CPU), load {os.getloadavg()[0]:.1f}", flush=True)
                        runs = [measure(peer, size, size, run, 0) for run in range(args.runs)]
                    except Exception as exc:  # noqa: BLE001 - a size that fails is reported with why
                        print(f"{label} {size}: FAILED {type(exc).__name__}: {exc}"[:500], flush=True)
                        found[label][size] = {"failed": 1.0}
                        continue
                    finally:
                        peer.stop()
                        peer.close()
                        shutil.rmtree(workdir, ignore_errors=True)
                    found[label][size] = {**load, **{k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}}
                    answers[label][size] = runs[-1][1]
                    print(f"{label} {size}: " + ", ".join(f"{k}={v:.3f}" for k, v in found[label][size].items())
                          + f"; load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    lines: list[str] = []
    for label in labels:
        cols = sizes
        lines += ["", f"{label}: time (s) / server CPU (s) / peak RSS (MB) per report, median of {args.runs}",
                  "", "| report | " + " | ".join(f"{n:,}" for n in cols) + " |", "|---" * (1 + len(cols)) + "|"]
        for key in SIZE_ROWS:
            cells = []
            for n in cols:
                v = found[label].get(n, {})
                cells.append("failed" if "failed" in v else "-" if key not in v else
                             f"{v[key]:.3f} / {v.get('cpu_' + key, 0):.3f} / {v.get('rss_' + key, 0):.0f}")
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("| load (s wall / s CPU) | " + " | ".join(
            f"{found[label].get(n, {}).get('load_s', 0):.0f} / {found[label].get(n, {}).get('load_cpu_s', 0):.0f}"
            for n in cols) + " |")
        for n in cols:
            lines.append(f"answers {label} {n}: " + ", ".join(f"{k}={v}" for k, v in answers[label].get(n, {}).items()))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "--serve-oxsync":
        serve_oxsync(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--puts", type=int, default=PUTS, help="PUTs of the 8-client phase (split among its "
                        "clients; the 1-client phase does half as many), the same for every server")
    parser.add_argument("--peers", nargs="*", default=["oxsync", "radicale", "xandikos", "sogo"])
    parser.add_argument("--pg", action="store_true", help="also oxsync on a throwaway PostgreSQL cluster")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--processes", type=int, default=1,
                        help="oxsync (SQLite and PostgreSQL) serves with [server] processes = N")
    parser.add_argument("--sizes", help="oxsync alone at these sizes (e.g. 1000,10000,100000 events and as many "
                        "vCards): every report's time, server CPU and peak RSS per size; no PUTs or logins")
    args = parser.parse_args(argv)
    os.environ[PROCESSES_ENV] = str(args.processes)  # read by the oxsync server processes it starts
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # started as a background job (`cmd &` from a script): SIGINT arrives ignored and every server started
        # here would inherit that, so Peer.stop's SIGINT went unheard and each stop waited 30 s for the kill
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("SIGINT was ignored (a background job): restored, so that the servers' SIGINT stops them", flush=True)
    if args.sizes:
        return run_sizes(args)
    reasons: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        peers = make_peers(args, Path(tmp), reasons)
        results: dict[str, list[dict[str, float]]] = {p.name: [] for p in peers}
        counts: dict[str, dict[str, int]] = {}
        try:
            for run in range(args.runs):
                shift = run % max(1, len(peers))
                for peer in peers[shift:] + peers[:shift]:  # interleaved, a different server first each run
                    if reasons.get(peer.name, "").startswith("setup"):
                        continue
                    try:
                        settle([*peers, args])  # oxsync-pg's cluster is the run's (args.cluster)
                        values, counts[peer.name] = measure(peer, args.events, args.cards, run, args.puts)
                        results[peer.name].append(values)
                        print(f"run {run + 1} {peer.name}: " + ", ".join(f"{k}={v:.3f}" for k, v in values.items())
                              + "; answers " + ", ".join(f"{k}={v}" for k, v in counts[peer.name].items()), flush=True)
                    except Exception as exc:  # noqa: BLE001
                        peer.stop()
                        reasons[peer.name] = f"run {run + 1} failed: {type(exc).__name__}: {exc}"[:400]
                        print(f"{peer.name}: {reasons[peer.name]}", flush=True)
        finally:
            for peer in peers:
                peer.stop()
                peer.close()
            if getattr(args, "cluster", None) is not None:
                args.cluster.stop()
    results = {n: r for n, r in results.items() if r}
    if not results:
        print("no server could be measured")
        return 2
    text = table(results, counts, reasons, f"Side by side, {args.events} events and {args.cards} vCards, "
                 f"{args.runs} runs, 127.0.0.1, this machine")
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
