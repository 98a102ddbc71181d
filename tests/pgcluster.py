"""A throwaway PostgreSQL cluster built from the machine's initdb/pg_ctl in a temporary directory.

PostgreSQL refuses to run as root, so under root the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

MIGRATED_CLONES: set[str] = set()
"""URLs of databases cloned from a migrated template and not handed out before: `tests.fixtures.make_store`
does not run the migrations again there (a no-op that still cost a connection and Alembic's start)."""


class PostgresUnavailable(RuntimeError):
    pass


def find_pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresUnavailable(
        f"{name} not found: install PostgreSQL server binaries (Debian: apt-get install postgresql), "
        "or set OXSYNC_SKIP_PG=1 to skip the PostgreSQL half of the suite"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgCluster:
    def __init__(self) -> None:
        self.initdb = find_pg_bin("initdb")
        self.pg_ctl = find_pg_bin("pg_ctl")
        self.dir = Path(tempfile.mkdtemp(prefix="oxsync-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._db_counter = 0
        self._template_ready = False

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")

    max_connections = 200
    """Raised by bench_eas_peers for SOGo (every sogod worker holds its own connections)."""

    START_ATTEMPTS = 5
    """The port is chosen before the server binds it: another process (a client's ephemeral source port,
    another throwaway server) may take it meanwhile; the server then refuses to start and we pick again."""

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        for attempt in range(self.START_ATTEMPTS):
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections={self.max_connections}"
            )
            (self.dir / "log").unlink(missing_ok=True)  # so that _port_was_taken reads this attempt's only
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
                return
            except PostgresUnavailable:
                if attempt == self.START_ATTEMPTS - 1 or not self._port_was_taken():
                    raise
                self.port = _free_port()

    def _port_was_taken(self) -> bool:
        try:
            return "Address already in use" in (self.dir / "log").read_text()
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server; its directory (one database per test: gigabytes of small files after a
        full run) is removed by a detached `rm -rf`, so a busy disk cannot make the session's last
        teardown outlast pytest-timeout."""
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            subprocess.Popen(["rm", "-rf", str(self.dir)], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def checkpoint(self) -> None:
        """Write every dirty buffer out now (bench: so that a freshly loaded database does not write back
        during another server's measured phases)."""
        with self._admin() as conn:
            conn.execute("CHECKPOINT")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True)

    def new_database(self) -> str:
        """A fresh database, cloned from a migrated template (migrating each one costs more than cloning)."""
        if not self._template_ready:
            self._make_template()
        self._db_counter += 1
        name = f"oxsync_{self._db_counter}"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE oxsync_template")
        MIGRATED_CLONES.add(self.url(name))
        return self.url(name)

    def empty_database(self) -> str:
        """A database without any schema (for migration tests)."""
        self._db_counter += 1
        name = f"oxsync_empty_{self._db_counter}"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _make_template(self) -> None:
        from sqlalchemy import create_engine

        from oxsync.store.migrate import upgrade

        with self._admin() as conn:
            conn.execute("CREATE DATABASE oxsync_template")
        engine = create_engine(self.url("oxsync_template"))
        upgrade(engine)
        engine.dispose()
        self._template_ready = True
