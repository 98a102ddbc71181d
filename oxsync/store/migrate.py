"""Run the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def revision(engine: Engine, message: str) -> None:
    """Developer helper: autogenerate a new migration from the schema."""
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True, rev_id=None)


def head_revision() -> str:
    """The newest migration this code knows (what `oxsync migrate` brings a database to)."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    return heads[0] if len(heads) == 1 else ",".join(sorted(heads))


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None when it has no oxsync schema at all."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def schema_state(engine: Engine) -> tuple[str, str | None, str]:
    """(state, at, head): state is `current`, `empty` (no schema), `behind` (run `oxsync migrate`) or
    `unknown` (a revision this code does not know: a newer oxsync migrated it, or another branch)."""
    from alembic.script import ScriptDirectory

    head = head_revision()
    at = current_revision(engine)
    if at is None:
        return "empty", None, head
    if at == head:
        return "current", at, head
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    return ("behind" if set(at.split(",")) <= known else "unknown"), at, head
