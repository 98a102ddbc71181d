"""Backup and restore of the whole database, consistent while the server keeps writing.

SQLite: the online backup API copies a consistent snapshot (one read transaction) page by page, so a
backup taken during a write burst holds exactly the transactions committed before it began. PostgreSQL:
`pg_dump --format=custom` (a consistent snapshot by design) and `pg_restore`, run as subprocesses.

What must hold: a backup file is created 0600 and appears only when complete (written beside, then
renamed); restore refuses to overwrite a database that holds an oxsync schema unless forced, and
refuses a file that is not an oxsync backup. A PostgreSQL restore ends with VACUUM (ANALYZE) (`settle_restored`).
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url

from oxsync.store.errors import StoreError
from oxsync.store.settle import vacuum_analyze


class BackupError(StoreError):
    """A backup or restore could not be made; the message says why in one line."""


def _private_temp(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    os.close(fd)
    return temp


def sqlite_file(url: URL) -> Path | None:
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") else None


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: from PATH, else the newest /usr/lib/postgresql/*/bin (Debian)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise BackupError(f"{name} not found: install the postgresql-client package")
    return candidates[-1]


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment carrying it (never on a command line)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{Path(args[0]).name} failed: {detail[-1] if detail else f'exit {result.returncode}'}")


def backup(url_text: str, target: Path) -> None:
    """Write a consistent copy of the database at `url_text` to `target` (replaced when complete)."""
    url = make_url(url_text)
    temp = _private_temp(target)
    try:
        source = sqlite_file(url)
        if source is not None:
            if not source.exists():
                raise BackupError(f"no database at {source}")
            with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(temp) as dst:
                src.backup(dst)
            os.chmod(temp, 0o600)
        elif url.get_backend_name() == "postgresql":
            uri, env = _libpq(url)
            _run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(temp), uri], env)
        else:
            raise BackupError(f"cannot back up a {url.get_backend_name()} database")
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def holds_oxsync_schema(url_text: str) -> bool:
    url = make_url(url_text)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return False
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        return "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _check_sqlite_backup(source: Path) -> None:
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{source} is damaged (integrity check failed)")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} is not an SQLite backup of oxsync ({exc})") from None
    if "alembic_version" not in tables:
        raise BackupError(f"{source} is not an oxsync backup (no schema version)")


def restore(url_text: str, source: Path, *, force: bool = False) -> None:
    """Replace the database at `url_text` with the backup `source`."""
    if not source.is_file():
        raise BackupError(f"no backup file {source}")
    url = make_url(url_text)
    target = sqlite_file(url)
    if url.get_backend_name() == "postgresql":
        _run([pg_tool("pg_restore"), "--list", str(source)], dict(os.environ))  # a readable custom-format dump
    elif target is not None:
        _check_sqlite_backup(source)
    else:
        raise BackupError(f"cannot restore into a {url.get_backend_name()} database")
    if holds_oxsync_schema(url_text) and not force:
        raise BackupError(f"refusing to overwrite the database at {target or url.render_as_string()}: it holds "
                          "oxsync data (stop the server, then restore --force)")
    if target is not None:
        created = not target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        if created:
            os.chmod(target, 0o600)
        return
    uri, env = _libpq(url)
    _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          "--dbname", uri, str(source)], env)
    settle_restored(url_text)


def settle_restored(url_text: str) -> None:
    """A PostgreSQL database that pg_restore just filled, settled (`settle.vacuum_analyze` of every
    table): a dump carries rows, not statistics, and autovacuum's first pass comes a minute or more later.
    Until then a read of 100 objects by id scans every object of the tenant instead of using the primary
    key (9 ms instead of 1 ms at 38,000 objects, 27-35 ms each in the simulator's arrival storm on a
    restored seed, bench/README r-pgstorm), and that pass then runs while clients are served (y-pgsettle).
    PostgreSQL's pg_restore documentation asks for the ANALYZE; the VACUUM also marks every restored page
    all-visible. SQLite needs none."""
    url = make_url(url_text)
    if url.get_backend_name() != "postgresql":
        return
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        vacuum_analyze(engine, None)
    finally:
        engine.dispose()
