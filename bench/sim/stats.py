"""Latency bookkeeping and CCS-style quality-of-service thresholds for the load simulator.

A thresholds file maps each request type to the maximum percentage of requests allowed to be slower
than each time bucket (0.1, 0.5, 1, 3, 5, 10, 30 s), as Apple's calendar server simulator does, plus a
maximum error percentage. A request type passes when every bucket and the error rate are within bounds.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BUCKETS_S: tuple[float, ...] = (0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 30.0)


@dataclass
class Threshold:
    """Max % of requests slower than each bucket, and max % of failed requests."""

    slower_than_pct: tuple[float, ...]
    max_error_pct: float = 1.0

    def __post_init__(self) -> None:
        if len(self.slower_than_pct) != len(BUCKETS_S):
            raise ValueError(f"a threshold needs {len(BUCKETS_S)} bucket percentages, got {len(self.slower_than_pct)}")


def load_thresholds(path: str | Path) -> dict[str, Threshold]:
    raw = json.loads(Path(path).read_text())
    default = raw.get("default")
    out = {name: Threshold(tuple(spec["slower_than_pct"]), spec.get("max_error_pct", 1.0))
           for name, spec in raw.get("requests", {}).items()}
    if default is not None:
        out["*"] = Threshold(tuple(default["slower_than_pct"]), default.get("max_error_pct", 1.0))
    return out


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class RequestStats:
    name: str
    durations: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def count(self) -> int:
        return len(self.durations) + self.errors

    def summary(self) -> dict[str, float | int]:
        values = sorted(self.durations)
        total = self.count
        return {
            "count": total,
            "errors": self.errors,
            "error_pct": 100 * self.errors / total if total else 0.0,
            "mean_ms": 1000 * sum(values) / len(values) if values else math.nan,
            "p50_ms": 1000 * percentile(values, 50),
            "p90_ms": 1000 * percentile(values, 90),
            "p99_ms": 1000 * percentile(values, 99),
            "max_ms": 1000 * values[-1] if values else math.nan,
        }

    def slower_than_pct(self) -> list[float]:
        """% of all requests (failed ones count as slow) slower than each bucket."""
        total = self.count
        if not total:
            return [0.0] * len(BUCKETS_S)
        return [100 * (sum(1 for d in self.durations if d > bucket) + self.errors) / total for bucket in BUCKETS_S]

    def verdict(self, threshold: Threshold | None) -> tuple[bool, list[str]]:
        if threshold is None:
            return True, []
        reasons = []
        for bucket, got, allowed in zip(BUCKETS_S, self.slower_than_pct(), threshold.slower_than_pct, strict=True):
            if got > allowed:
                reasons.append(f"{got:.1f}% slower than {bucket:g}s (allowed {allowed:g}%)")
        error_pct = 100 * self.errors / self.count if self.count else 0.0
        if error_pct > threshold.max_error_pct:
            reasons.append(f"{error_pct:.1f}% errors (allowed {threshold.max_error_pct:g}%)")
        return not reasons, reasons


class Recorder:
    """Thread-safe collection of request timings; also keeps a timeline for the plot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, RequestStats] = defaultdict(lambda: RequestStats(""))
        self.timeline: list[tuple[float, str, float, bool]] = []

    def record(self, name: str, started_at: float, duration_s: float, ok: bool) -> None:
        with self._lock:
            stats = self.requests[name]
            stats.name = name
            if ok:
                stats.durations.append(duration_s)
            else:
                stats.errors += 1
            self.timeline.append((started_at, name, duration_s, ok))

    def succeeded(self) -> set[str]:
        """Names of the requests that succeeded at least once so far."""
        with self._lock:
            return {name for name, stats in self.requests.items() if stats.durations}

    def evaluate(self, thresholds: dict[str, Threshold]) -> dict[str, dict]:
        out = {}
        for name in sorted(self.requests):
            stats = self.requests[name]
            passed, reasons = stats.verdict(thresholds.get(name, thresholds.get("*")))
            out[name] = {**stats.summary(), "slower_than_pct": stats.slower_than_pct(), "pass": passed,
                         "reasons": reasons}
        return out
