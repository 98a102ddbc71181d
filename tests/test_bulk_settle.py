"""A bulk load ends settled on PostgreSQL (store/settle.py): once it committed, the tables it filled are
vacuumed and analyzed, so that autovacuum's first pass does not come a minute later while clients are
served, every page is all-visible and a first read of the load dirties no page (bench/README y-pgsettle).
Counted in PostgreSQL's own books: pg_class (pages all-visible), pg_stat_user_tables (VACUUM and
ANALYZE counts) and EXPLAIN's buffers. The loads stay under autovacuum's insert threshold (1,000 rows),
so nothing but the load's own step can have vacuumed them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from bench.peers_data import card
from bench.peers_objects import card_contacts
from oxsync.cli import main
from oxsync.model import Module
from oxsync.store import accounts, settle
from oxsync.store.api import Store
from oxsync.store.folders import default_folder_id
from oxsync.store.settle import settled_after
from oxsync.texts_ahead import rendering_after

CHECKED = ("objects", "changes", "object_texts")
"""Tables every load of contacts fills (texts: rendered after it); `object_ranges` takes events only."""


def _settled(engine: Engine) -> dict[str, tuple[int, int, int, int]]:
    """table -> (pages, pages all-visible, VACUUMs, ANALYZEs), read on a connection of its own."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.relname, c.relpages, c.relallvisible, t.vacuum_count, t.analyze_count FROM pg_class c "
            "JOIN pg_stat_user_tables t ON t.relid = c.oid WHERE c.relname = ANY(:names)"), {"names": list(CHECKED)})
        return {str(r[0]): (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


def _first_read_dirties(engine: Engine) -> int:
    """Pages a first read of every served text dirtied (hint bits of rows no one read since they were written)."""
    with engine.connect() as conn:
        plan = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*) FROM object_texts")).scalar()
    found = plan if isinstance(plan, list) else json.loads(str(plan))
    return int(found[0]["Plan"].get("Shared Dirtied Blocks", 0))


def _load(store: Store, cards: int, min_objects: int | None) -> None:
    """`cards` contacts through `session.create_objects`, their texts rendered after, as the bench loads."""
    tenant = store.create_tenant("example.com")
    with store.transaction(tenant.id, write=True) as tx:
        alice = accounts.create_user(tx, "alice", "alice-pw", first_name="Alice", last_name="Settle")
        book = default_folder_id(tx, alice.id, Module.CONTACT)
    assert book is not None
    with settled_after(store, min_objects), rendering_after(store), store.session(tenant.id, 1, write=True) as session:
        session.create_objects(book, card_contacts(0, cards))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_bulk_load_ends_vacuumed_and_analyzed(store: Store) -> None:
    _load(store, 60, min_objects=50)
    found = _settled(store.engine)
    for table in CHECKED:
        pages, visible, vacuums, analyzes = found[table]
        assert pages > 0 and visible == pages, table  # the visibility map covers the load (index-only scans)
        assert vacuums == 1 and analyzes == 1, table  # the load's own step, once (below autovacuum's threshold)
    assert _first_read_dirties(store.engine) == 0  # the texts' hint bits were set by the VACUUM, not a first reader


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_small_load_is_left_to_autovacuum(store: Store) -> None:
    """Under `SETTLE_MIN_OBJECTS` objects nothing runs: no page is marked all-visible, nothing vacuumed."""
    _load(store, 60, min_objects=None)
    assert all(visible == 0 and vacuums == 0 for _, visible, vacuums, _ in _settled(store.engine).values())


def test_sqlite_has_nothing_to_settle(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        assert settle.vacuum_analyze(engine) is False
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_oxsync_import_ends_settled(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`oxsync import` of a file of vCards on PostgreSQL: its tables come out vacuumed and analyzed."""
    monkeypatch.setattr(settle, "SETTLE_MIN_OBJECTS", 50)
    source = tmp_path / "many.vcf"
    source.write_text("".join(card(i) for i in range(60)), encoding="utf-8", newline="")
    for argv in (["init", "--domain", "example.com"], ["user", "add", "alice", "--password", "alice-pw"],
                 ["import", str(source), "--user", "alice"]):
        assert main(["--db", store_url, *argv]) == 0, argv
    engine = create_engine(store_url)
    try:
        found = _settled(engine)
        assert all(pages > 0 and visible == pages and vacuums == 1 for pages, visible, vacuums, _ in found.values())
    finally:
        engine.dispose()
