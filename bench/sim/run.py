"""One simulation run: store + seed, nodes, ramped clients, stop, thresholds, reports."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.sim import nodes as sim_nodes
from bench.sim import seedcache, server_side
from bench.sim.base import Context, Endpoint, Options
from bench.sim.clients import assign, make_clients
from bench.sim.report import plot, text_table, write_json
from bench.sim.seed import SimUser, seed
from bench.sim.stats import Recorder, load_thresholds
from oxsync.config import Settings, StoreSettings
from oxsync.store.api import Store

log = logging.getLogger("bench.sim")
PROFILES = {"sqlite": 1, "pg": 1, "pg2": 2}
NODE_CONFIG = (
    "[limits]\n"
    # every simulated client shares 127.0.0.1: lift the per-address connection cap too
    "max_connections_per_address = 1000000\n"
    "[ox]\n"
    # every simulated client shares 127.0.0.1: lift the per-source-IP UDP packet limit
    "push_max_packets_per_address_per_minute = 1000000\n"
    "push_max_packets_per_socket_per_minute = 1000000\n"
)


@dataclass
class SimConfig:
    profile: str = "sqlite"
    users: int = 20
    ramp: float = 10.0
    duration: float = 60.0
    mix: dict[str, float] = field(default_factory=lambda: {"iphone": 40, "android": 20, "outlook": 30, "dav": 10})
    contacts: int = 300
    appointments: int = 200
    thresholds: Path = Path(__file__).with_name("thresholds.json")
    out: Path = Path("bench/results/sim")
    options: Options = field(default_factory=Options)
    ox_coalesce: float | None = None  # [ox] push_coalesce_seconds for the nodes (None: server default, 3 s)
    seed_cache: Path | None = None  # keep/reuse seeded stores here (bench/sim/seedcache.py)
    processes: str | None = None  # each node's [server] processes (None: the server's default, "auto")
    until: frozenset[str] = frozenset()
    """Stop as soon as every one of these request names succeeded once (a smoke test: `duration` is then
    the longest it may run, so that a loaded machine takes longer instead of failing)."""


@dataclass
class SimResult:
    meta: dict[str, Any]
    results: dict[str, dict[str, Any]]
    table: str
    sim_errors: list[str]

    @property
    def passed(self) -> bool:
        return all(r["pass"] for r in self.results.values())


def _store(cfg: SimConfig, workdir: Path) -> tuple[str, Any, list[SimUser]]:
    """A seeded store: its URL, the PgCluster to stop (or None), the users."""
    cluster = None
    if cfg.profile == "sqlite":
        url = f"sqlite:///{workdir}/sim.db"
    else:
        from tests.pgcluster import PgCluster

        cluster = PgCluster()
        cluster.start()
        url = cluster.empty_database()
    key = seedcache.cache_key("sqlite" if cluster is None else "pg", cfg.users, cfg.contacts, cfg.appointments,
                              cfg.options.domain)
    if cfg.seed_cache is not None:
        users = seedcache.restore(cfg.seed_cache, key, url, cfg.users)
        if users is not None:
            log.info("seed restored from %s", cfg.seed_cache / key)
            return url, cluster, users
    store = Store(Settings(store=StoreSettings(url=url)))
    store.create_schema()
    users = seed(store, cfg.users, cfg.contacts, cfg.appointments, domain=cfg.options.domain)
    store.dispose()
    if cfg.seed_cache is not None:
        seedcache.save(cfg.seed_cache, key, url, users)
    return url, cluster, users


def _node_processes(node: psutil.Process) -> list[psutil.Process]:
    """A node's serving processes: `oxsync serve` and the copies it started (`[server] processes`)."""
    return [node, *node.children()]


def _node_cpu_s(node: psutil.Process) -> dict[int, float]:
    """pid -> user + system CPU seconds so far, for each of the node's serving processes."""
    out = {}
    for proc in _node_processes(node):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
    return out


def _cpu_since(node: psutil.Process, before: dict[int, float]) -> float:
    """CPU seconds the node's serving processes used since `before` (a copy started since counts whole)."""
    now = _node_cpu_s(node)
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())


def run(cfg: SimConfig) -> SimResult:
    if cfg.profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
    workdir = Path(tempfile.mkdtemp(prefix="oxsync-sim-"))
    pg = None
    cluster = None
    load_before = os.getloadavg()
    try:
        started = time.perf_counter()
        url, pg, users = _store(cfg, workdir)
        store = Store(Settings(store=StoreSettings(url=url)))
        tenant_id = store.tenants()[0].id
        store.dispose()
        seeded_s = time.perf_counter() - started
        log.info("seeded %d users in %.1f s", cfg.users, seeded_s)
        node_config = NODE_CONFIG + (f"push_coalesce_seconds = {cfg.ox_coalesce}\n" if cfg.ox_coalesce is not None else "")
        cluster = sim_nodes.start_nodes(url, PROFILES[cfg.profile], workdir, node_config, cfg.processes)
        endpoints = [Endpoint("127.0.0.1", n.http_port, n.udp_port) for n in cluster.nodes]
        ctx = Context(Recorder(), endpoints, users, tenant_id, cfg.options)
        clients = make_clients(ctx, users, cfg.mix)
        node_procs = [psutil.Process(n.process.pid) for n in cluster.nodes]
        cpu_before = [_node_cpu_s(proc) for proc in node_procs]
        me = psutil.Process()
        me.cpu_percent(None)
        t0 = time.perf_counter()
        for index, client in enumerate(clients):  # linear ramp
            due = t0 + cfg.ramp * index / max(1, len(clients))
            if ctx.stop.wait(max(0.0, due - time.perf_counter())):
                break
            ctx.lag.add(time.perf_counter() - due)
            client.start()
        end = t0 + cfg.ramp + cfg.duration
        while (left := end - time.perf_counter()) > 0 and not (cfg.until and cfg.until <= ctx.recorder.succeeded()):
            ctx.stop.wait(min(left, 0.1) if cfg.until else left)
        ran_s = time.perf_counter() - t0
        node_cpu = [100 * _cpu_since(proc, before) / ran_s for proc, before in zip(node_procs, cpu_before, strict=True)]
        node_rss = [sum(p.memory_info().rss for p in _node_processes(proc)) / 2**20 for proc in node_procs]
        sim_cpu = me.cpu_percent(None)
        server = server_side.summarize(server_side.scrape([n.admin_port for n in cluster.nodes]))
        ctx.stop.set()
        for client in clients:
            client.abort()
        deadline = time.perf_counter() + 20
        for client in clients:
            if client.is_alive():
                client.join(max(0.1, deadline - time.perf_counter()))
        stuck = [c.name for c in clients if c.is_alive()]
        if stuck:
            ctx.sim_errors.append(f"clients still running after stop: {stuck[:10]}")
    finally:
        if cluster is not None:
            cluster.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results = ctx.recorder.evaluate(load_thresholds(cfg.thresholds))
    kinds = assign(cfg.users, cfg.mix)
    meta = {
        "profile": cfg.profile, "nodes": PROFILES[cfg.profile], "users": cfg.users, "ramp_s": cfg.ramp,
        "duration_s": cfg.duration, "ran_s": round(ran_s, 1), "mix": cfg.mix,
        "clients": {k: kinds.count(k) for k in cfg.mix}, "contacts_per_user": cfg.contacts,
        "appointments_per_user": cfg.appointments, "ox_push_coalesce_s": cfg.ox_coalesce, "seed_s": round(seeded_s, 1), "options": vars(cfg.options),
        "processes": cfg.processes or "default", "simulator_lag": ctx.lag.summary(), "simulator_cpu_pct": sim_cpu, "node_cpu_pct": node_cpu,
        "node_rss_mib": [round(r) for r in node_rss], "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "server_side": server, "simulator_errors": ctx.sim_errors, "slow_push_samples": ctx.slow_pushes, "pass": all(r["pass"] for r in results.values()),
    }
    lag = meta["simulator_lag"]
    table = text_table(results) + (
        f"\nsimulator lag: p50 {lag['p50_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms, max {lag['max_ms']:.0f} ms "
        f"over {lag['count']} scheduled actions; simulator CPU {sim_cpu:.0f}%, node CPU "
        f"{', '.join(f'{c:.0f}%' for c in node_cpu)}, node RSS {', '.join(f'{r:.0f} MiB' for r in node_rss)}; "
        f"load {load_before[0]:.2f} -> {meta['loadavg_after'][0]:.2f} on {os.cpu_count()} CPUs")
    table += "\n" + server_side.text(server)
    if ctx.sim_errors:
        table += f"\nSIMULATOR ERRORS: {len(ctx.sim_errors)} (see JSON)"
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_json(cfg.out / "results.json", meta, results)
    (cfg.out / "results.txt").write_text(table + "\n")
    plot(cfg.out / "latency.png", ctx.recorder,
         f"{cfg.profile}: {cfg.users} users ({', '.join(f'{k}={v:g}' for k, v in cfg.mix.items())}), {cfg.duration:g} s")
    return SimResult(meta, results, table, ctx.sim_errors)
