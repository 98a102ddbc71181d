"""Simulator output: a JSON document, a text table and a PNG latency plot (matplotlib)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.sim.stats import BUCKETS_S, Recorder


def text_table(results: dict[str, dict[str, Any]]) -> str:
    head = f"{'request':<22} {'count':>7} {'err%':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  result"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        def ms(v: float) -> str:
            return "-" if math.isnan(v) else f"{v:.0f}"
        verdict = "PASS" if r["pass"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(f"{name:<22} {r['count']:>7} {r['error_pct']:>6.1f} {ms(r['p50_ms']):>8} {ms(r['p90_ms']):>8} "
                     f"{ms(r['p99_ms']):>8} {ms(r['max_ms']):>8}  {verdict}")
    overall = all(r["pass"] for r in results.values())
    lines.append(f"overall: {'PASS' if overall else 'FAIL'}  (buckets {', '.join(f'{b:g}s' for b in BUCKETS_S)})")
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean({"meta": meta, "results": results}), indent=2))


def plot(path: Path, recorder: Recorder, title: str) -> None:
    """Scatter of latency over time per request type (log scale), the way CCS sim runs are eyeballed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not recorder.timeline:
        return
    start = min(t for t, *_ in recorder.timeline)
    fig, ax = plt.subplots(figsize=(10, 5))
    for name in sorted({n for _, n, _, _ in recorder.timeline}):
        points = [(t - start, d * 1000) for t, n, d, ok in recorder.timeline if n == name and ok]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, s=4, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend(fontsize="small", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
