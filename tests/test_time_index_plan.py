"""How the database reads the time-range index for a month's calendar-query (store/timeranges.py
`candidate_query`): through ix_object_ranges_start, so the rows read follow the window and not the
length of the folder's series (an endless weekly series has ~260 rows); on PostgreSQL a bulk load
leaves statistics behind, so the first query after it is planned on them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from bench.peers_data import MONTH
from bench.peers_objects import event_masters
from oxsync.dav.filters import FAR_FUTURE, FAR_PAST, parse_utc, window_ms
from oxsync.model import Module
from oxsync.store import accounts, timeranges
from oxsync.store.api import Store
from oxsync.store.folders import default_folder_id

EVENTS = 1000
"""Bench events (1 in 10 a weekly series in Europe/Paris, half of them endless): about 14,000 index rows."""


def _load(store: Store) -> tuple[int, int]:
    tenant = store.create_tenant("example.com")
    with store.transaction(tenant.id, write=True) as tx:
        alice = accounts.create_user(tx, "alice", "alice-pw", first_name="Alice", last_name="Plan")
        calendar = default_folder_id(tx, alice.id, Module.CALENDAR)
    assert calendar is not None
    with store.session(tenant.id, 1, write=True) as session:
        session.create_objects(calendar, event_masters(0, EVENTS, EVENTS))
    return tenant.id, calendar


def _month_ms() -> tuple[int, int]:
    low, high = window_ms(parse_utc(MONTH[0], FAR_PAST), parse_utc(MONTH[1], FAR_FUTURE))
    assert low is not None and high is not None
    return low, high


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_a_month_reads_the_index_by_start(store: Store) -> None:
    tenant_id, calendar = _load(store)
    start_ms, end_ms = _month_ms()
    with store.transaction(tenant_id) as tx:
        query = timeranges.candidate_query(tx, calendar, start_ms, end_ms)
        compiled = query.compile(dialect=tx.conn.dialect, compile_kwargs={"literal_binds": True})
        found = {int(row.id) for row in tx.conn.execute(query)}
        assert 50 < len(found) < 200  # the month's events and series (989 of 10,000 in the bench)
        rows = tx.conn.execute(text("SELECT count(*) FROM object_ranges")).scalar()
        assert rows is not None and rows > 10 * len(found)  # the series' rows outnumber the month's
        if tx.conn.dialect.name == "sqlite":
            plan = [str(row[-1]) for row in tx.conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
            on_ranges = [step for step in plan if "object_ranges" in step]
            assert on_ranges and all("ix_object_ranges_start" in step for step in on_ranges), plan
            return
        analyzed = tx.conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'object_ranges'::regclass")).scalar()
        assert analyzed is not None and analyzed > 0  # the load analyzed it (-1: never)
        found_plan = tx.conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}").scalar()
        nodes = list(_nodes((found_plan if isinstance(found_plan, list) else json.loads(found_plan))[0]["Plan"]))
        assert not [n for n in nodes if n.get("Relation Name") == "object_ranges" and n["Node Type"] == "Seq Scan"]
        assert "ix_object_ranges_start" in {n.get("Index Name") for n in nodes}, nodes
