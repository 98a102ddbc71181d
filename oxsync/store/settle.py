"""A bulk load ends settled on PostgreSQL: ANALYZE and VACUUM of what it filled, once it committed.

Freshly inserted rows are not yet vacuumed: no page is marked all-visible (no index-only scans), the
statistics are those the load's own ANALYZE saw part-way (`timeranges.refresh_statistics`, inside the
writing transaction) or none (`object_texts`, written after the load's commits), and autovacuum's
insert-driven VACUUM and ANALYZE of every table it filled come within a minute of the load's end
(`autovacuum_naptime`; bench/README y-pgsettle), i.e. while the first clients may be served. Done here,
on an autocommit connection (VACUUM cannot run inside a transaction), right after the load, it costs the
same work once, before anyone is served, and leaves the planner the load's real sizes. SQLite has
neither hint bits nor a visibility map: nothing to do.

Where loads happen: `oxsync import`, the bench's and the simulator's loaders (`settled_after`), and
`oxsync restore` and the simulator's seed cache (`backup.settle_restored`: the whole database).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from oxsync.store.api import Store

LOADED_TABLES = ("objects", "object_ranges", "participants", "list_members", "changes", "mail_alarms",
                 "object_texts")
"""What a load of objects fills: `bulk_load._Rows.TABLES` (and `create_object`'s rows), and the served
texts rendered after it (`oxsync.texts_ahead.rendering_after`)."""

SETTLE_MIN_OBJECTS = 1000
"""A load that committed fewer objects than this is left to autovacuum (below its insert threshold of
1,000 rows on an empty table, and cheap to read unvacuumed)."""


def vacuum_analyze(engine: Engine, tables: tuple[str, ...] | None = LOADED_TABLES) -> bool:
    """ANALYZE, then VACUUM, of `tables` (None: the whole database) on PostgreSQL, outside any transaction
    (what `VACUUM (ANALYZE)` does, in the other order: see below); returns whether it ran (False on SQLite).

    The ANALYZE commits first, synchronously: that flushes the log up to its commit record, so up to the
    load's commits too. A load committed with `synchronous_commit = off` (the test and bench clusters, or a
    server's own setting) leaves its last commits unflushed for up to `wal_writer_delay`, and until then
    VACUUM may not set their rows' hint bits nor mark their pages all-visible: it would leave the last
    batch unsettled. (A commit that wrote nothing but its own record is not flushed, hence no mere
    `txid_current()`.)"""
    if engine.dialect.name != "postgresql":
        return False
    named = f" {', '.join(tables)}" if tables else ""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET synchronous_commit = on"))
        try:
            conn.execute(text(f"ANALYZE{named}"))
            conn.execute(text(f"VACUUM{named}"))
        finally:
            conn.execute(text("RESET synchronous_commit"))
    return True


@contextmanager
def settled_after(store: Store, min_objects: int | None = None) -> Iterator[None]:
    """Within: the objects every commit on `store` changes are counted; on leaving without an error, a
    load of at least `min_objects` (default `SETTLE_MIN_OBJECTS`) of them ends with `vacuum_analyze` of the
    loaded tables. Put it outside `rendering_after`, so that the texts rendered after the load are settled
    with it."""
    counted = [0]

    def heard(_tenant_id: int, changed: Mapping[int, frozenset[int]]) -> None:
        counted[0] += sum(len(ids) for ids in changed.values())
    remove = store.add_object_listener(heard)
    try:
        yield
    finally:
        remove()
    if counted[0] >= (SETTLE_MIN_OBJECTS if min_objects is None else min_objects):
        vacuum_analyze(store.engine)
