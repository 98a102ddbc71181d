"""One user's free/busy against the tenant's size (issue 11, "flat where the work is flat"): store level
`session.free_busy(now, now + 30 days)` of one user while the tenant grows to each size (users x
appointments: a year of them around now, 1 in 5 a meeting with two teammates), on SQLite and on a
throwaway PostgreSQL cluster (settled after each load, as the simulator's seed is). Per size: the median
wall time of the runs, the statements one call sends and the plans of its candidate statements (the
objects steps). With --before FILE (a copy of `oxsync/store/scheduling.py` from the tree to compare,
e.g. `git show main:oxsync/store/scheduling.py > /tmp/before.py`), the same calls through that module's
`free_busy` on the same data, checked to give the same periods. Prints a table.

    PYTHONPATH=. .venv/bin/python -m bench.bench_freebusy [--sizes 20,100,400] [--appointments 200]
        [--runs 7] [--engines sqlite,postgresql] [--before /tmp/before.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from oxsync.config import Settings, StoreSettings
from oxsync.model import Appointment, Module
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.store import accounts
from oxsync.store import scheduling as after_module
from oxsync.store.api import Store
from oxsync.store.folders import default_folder_id
from oxsync.store.settle import settled_after
from tests.fixtures import recorded_executions

ASKED = 5
"""The asked user's index (one of the first team)."""


def _load_module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("scheduling_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scheduling_before"] = module
    spec.loader.exec_module(module)
    return module


def _grow(store: Store, tenant_id: int, users: list[int], upto: int, appointments: int, rng: random.Random) -> None:
    """Add users (and their appointments) until the tenant has `upto`."""
    with store.transaction(tenant_id, write=True) as tx:
        for n in range(len(users), upto):
            users.append(accounts.create_user(tx, f"user{n:04d}", "pw", first_name="Sim", last_name=f"{n}").id)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with settled_after(store, min_objects=1):
        for index, user in enumerate(users):
            with store.transaction(tenant_id) as tx:
                if tx.conn.exec_driver_sql(f"SELECT 1 FROM objects WHERE created_by = {user} AND kind = 'appointment' LIMIT 1").first():
                    continue
                calendar = default_folder_id(tx, user, Module.CALENDAR)
            assert calendar is not None
            team = users[(index // 10) * 10:(index // 10) * 10 + 10]
            made = []
            for n in range(appointments):
                start = now + timedelta(days=rng.randint(-300, 60), hours=rng.randint(-4, 4))
                parts = []
                if n % 5 == 0 and len(team) > 2:
                    others = rng.sample([u for u in team if u != user], 2)
                    parts = [Participant(ParticipantKind.USER, user)] + [Participant(ParticipantKind.USER, o) for o in others]
                made.append(Appointment(title=f"Appointment {n}", start_date=start, end_date=start + timedelta(hours=1),
                                        participants=parts, ignore_conflicts=True))
            with store.session(tenant_id, user, write=True) as session:
                session.create_objects(calendar, made)


def _plan(store: Store, statement: str, parameters: Any) -> str:
    """The objects and participants steps of a statement's plan, in short."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return " / ".join(str(r[-1]) for r in rows if "SEARCH" in str(r[-1]) or "SCAN" in str(r[-1]))
        found = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
        plan = (found if isinstance(found, list) else json.loads(found))[0]["Plan"]
        steps: list[str] = []

        def walk(node: dict[str, Any]) -> None:
            if node.get("Relation Name"):
                steps.append(f"{node['Node Type']} {node.get('Index Name') or node['Relation Name']}"
                             f" ({node.get('Alias', '')})")
            for child in node.get("Plans", []):
                walk(child)
        walk(plan)
        return " / ".join(steps)


def _measure(store: Store, tenant_id: int, user: int, runs: int,
             free_busy: Callable[..., Any]) -> tuple[float, int, list[Any], list[str]]:
    now = datetime.now(UTC)
    times: list[float] = []
    answer: list[Any] = []
    for _ in range(runs):
        with store.session(tenant_id, user) as session, recorded_executions(store) as seen:
            began = time.perf_counter()
            answer = free_busy(session.tx, now, now + timedelta(days=30), user_id=user)
            times.append(time.perf_counter() - began)
    plans = [_plan(store, st, params) for st, params in seen if "objects.range_end_ms >" in st]
    return statistics.median(times) * 1000, len(seen), [(p.start, p.end, int(p.shown_as)) for p in answer], plans


def _engine_store(engine: str, work: Path, cluster: Any) -> Store:
    url = f"sqlite:///{work}/fb.db" if engine == "sqlite" else cluster.new_database()
    store = Store(Settings(store=StoreSettings(url=url)))
    store.create_schema()
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,100,400")
    parser.add_argument("--appointments", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--before", help="a copy of store/scheduling.py to compare with")
    args = parser.parse_args()
    before = _load_module(args.before) if args.before else None
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[str] = []
    for engine in args.engines.split(","):
        cluster = None
        if engine == "postgresql":
            from tests.pgcluster import PgCluster

            cluster = PgCluster()
            cluster.start()
        try:
            with tempfile.TemporaryDirectory() as work:
                store = _engine_store(engine, Path(work), cluster)
                tenant_id = store.create_tenant("fb.example").id
                users: list[int] = []
                rng = random.Random(7)
                for size in sizes:
                    began = time.monotonic()
                    _grow(store, tenant_id, users, size, args.appointments, rng)
                    print(f"{engine}: {size} users loaded in {time.monotonic() - began:.0f} s", flush=True)
                    ms, statements, answer, plans = _measure(store, tenant_id, users[ASKED], args.runs, after_module.free_busy)
                    line = f"| {engine} | {size} | {size * args.appointments} | {len(answer)} | {ms:.1f} | {statements} |"
                    print("  after:", " || ".join(plans), flush=True)
                    if before is not None:
                        old_ms, old_statements, old_answer, old_plans = _measure(
                            store, tenant_id, users[ASKED], args.runs, before.free_busy)
                        assert old_answer == answer, "before and after differ"
                        line += f" {old_ms:.1f} | {old_statements} |"
                        print("  before:", " || ".join(old_plans), flush=True)
                    rows.append(line)
                    print(line, flush=True)
                store.dispose()
        finally:
            if cluster is not None:
                cluster.stop()
    print()
    print("| engine | users | appointments | periods | after ms (median) | after statements |"
          + (" before ms | before statements |" if before is not None else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if before is not None else ""))
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
