"""What the nodes themselves measured during a run: read from their Prometheus `/metrics` at the end.

The client-side latencies of the table include everything between the simulator and the server (the
kernel's run queue on a loaded machine, the simulator's own WBXML parsing); the server-side histograms
say how long the node held each request, how long store work waited for a pool thread, and how logins
were decided, so a slow type can be told apart: queued in the server, or slow outside it.
Quantiles are bucket upper bounds (Prometheus histograms), so they are coarse.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def scrape(admin_ports: list[int], timeout: float = 10) -> list[str]:
    """The `/metrics` text of each node (a node that does not answer is left out)."""
    texts = []
    for port in admin_ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
                texts.append(response.read().decode("utf-8"))
        except OSError:
            continue
    return texts


def _quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound of the bucket holding quantile `q` of cumulative `buckets` (le -> count)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return None
    for bound in bounds:
        if buckets[bound] >= q * total:
            return bound
    return bounds[-1]


def summarize(texts: list[str]) -> dict[str, Any]:
    """Request time per (dialect, command), store pool wait, login checks: summed over the nodes."""
    requests: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    pool: dict[float, float] = defaultdict(float)
    lanes: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    logins: dict[str, float] = defaultdict(float)
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "oxsync_http_request_seconds_bucket":
                    key = f"{sample.labels['dialect']} {sample.labels['command']}"
                    requests[key][float(sample.labels["le"])] += sample.value
                elif sample.name == "oxsync_store_pool_wait_seconds_bucket":
                    pool[float(sample.labels["le"])] += sample.value
                    lanes[sample.labels.get("lane", "all")][float(sample.labels["le"])] += sample.value
                elif sample.name == "oxsync_login_checks_total":
                    logins[sample.labels["result"]] += sample.value
    out: dict[str, Any] = {"requests": {}, "login_checks": dict(logins)}
    for key, buckets in sorted(requests.items()):
        count = buckets.get(float("inf"), 0)
        if count:
            out["requests"][key] = {"count": int(count), "p50_s": _quantile(buckets, 0.5),
                                    "p90_s": _quantile(buckets, 0.9), "p99_s": _quantile(buckets, 0.99)}
    if pool:
        out["store_pool_wait"] = _wait(pool)
        out["store_pool_wait_by_lane"] = {lane: _wait(buckets) for lane, buckets in sorted(lanes.items())}
    return out


def _wait(buckets: dict[float, float]) -> dict[str, Any]:
    return {"count": int(buckets.get(float("inf"), 0)), "p50_s": _quantile(buckets, 0.5),
            "p90_s": _quantile(buckets, 0.9), "p99_s": _quantile(buckets, 0.99)}


def text(summary: dict[str, Any]) -> str:
    """A few lines for the results table."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else "inf" if value == float("inf") else f"<={value * 1000:.0f}"

    lines = ["server side (each node's /metrics: its first serving process only; ms as bucket bounds): "
             "request p50 / p90 / p99 (count)"]
    for key, row in summary.get("requests", {}).items():
        if key.startswith(("health", "other")):
            continue
        lines.append(f"  {key:32s} {fmt(row['p50_s'])} / {fmt(row['p90_s'])} / {fmt(row['p99_s'])} ({row['count']})")
    wait = summary.get("store_pool_wait")
    if wait:
        lines.append(f"  store pool wait: p50 {fmt(wait['p50_s'])} / p90 {fmt(wait['p90_s'])} / "
                     f"p99 {fmt(wait['p99_s'])} ({wait['count']} units)")
    for lane, row in summary.get("store_pool_wait_by_lane", {}).items():
        lines.append(f"    {lane} lane: p50 {fmt(row['p50_s'])} / p90 {fmt(row['p90_s'])} / "
                     f"p99 {fmt(row['p99_s'])} ({row['count']} units)")
    if summary.get("login_checks"):
        lines.append("  login checks: " + ", ".join(f"{k} {int(v)}" for k, v in sorted(summary["login_checks"].items())))
    return "\n".join(lines)
