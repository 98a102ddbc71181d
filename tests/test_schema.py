"""The Alembic migrations produce exactly the schema the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from oxsync.store.schema import metadata
from tests.fixtures import make_store


def _describe(engine) -> dict:  # type: ignore[no-untyped-def]
    insp = inspect(engine)
    out = {}
    for table in sorted(insp.get_table_names()):
        if table == "alembic_version":
            continue
        out[table] = {
            "columns": sorted((c["name"], str(c["type"]).split("(")[0], c["nullable"]) for c in insp.get_columns(table)),
            "pk": sorted(insp.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)),
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in insp.get_foreign_keys(table)),
        }
    return out


def test_migrated_database_equals_fresh_schema(backend: str, tmp_path, request) -> None:
    if backend == "sqlite":
        migrated_url = f"sqlite:///{tmp_path}/migrated.db"
    else:
        migrated_url = request.getfixturevalue("pg_cluster").empty_database()
    migrated = make_store(migrated_url)
    with migrated.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == [], f"migrations differ from schema.py: {diff}"

    if backend == "sqlite":
        fresh_url = f"sqlite:///{tmp_path}/fresh.db"
    else:
        fresh_url = request.getfixturevalue("pg_cluster").empty_database()
    fresh = create_engine(fresh_url)
    metadata.create_all(fresh)
    assert _describe(migrated.engine) == _describe(fresh)
    fresh.dispose()
    migrated.dispose()


def test_create_schema_is_idempotent(store) -> None:  # type: ignore[no-untyped-def]
    store.create_schema()
    store.create_schema()
    assert "objects" in inspect(store.engine).get_table_names()
