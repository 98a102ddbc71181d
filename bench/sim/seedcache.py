"""A cache of seeded simulator stores, so that repeated runs (capacity searches, profiles) skip the seed.

Seeding 75 users with the default mailbox sizes takes minutes; a cached copy restores in seconds. The key
names everything the data depends on: users, contacts and appointments per user, the domain, the schema
revision and the day (appointments are placed around "now"). SQLite: a copy of the database file;
PostgreSQL: a `pg_dump -Fc` archive restored with `pg_restore` into an empty database of the run's cluster,
then VACUUM (ANALYZE) (as `oxsync restore` does): without it the storm ran on a database without planner statistics
and every read of objects by id scanned the tenant's 38,000 objects (bench/README r-pgstorm).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from bench.sim.seed import SimUser
from oxsync.store.backup import settle_restored

SEED_FORMAT = "t1"
"""What the seeded database holds beyond its schema: bump it when seed.py writes other rows (t1: the
owners' served texts rendered after the seed), so that older cached seeds are not restored."""


def cache_key(engine: str, users: int, contacts: int, appointments: int, domain: str) -> str:
    from oxsync.store.migrate import head_revision

    day = time.strftime("%Y%m%d", time.gmtime())
    return f"{engine}-{users}u-{contacts}c-{appointments}a-{domain}-{head_revision()}-{SEED_FORMAT}-{day}"


def _pg_args(url: str) -> list[str]:
    parsed = urlparse(url.replace("postgresql+psycopg", "postgresql"))
    return ["-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
            "-d", parsed.path.lstrip("/")]


def _larger(cache: Path, key: str) -> str | None:
    """The key of the smallest cached seed with more users and otherwise the same sizes, or None."""
    engine, users, rest = key.split("-", 2)
    wanted = int(users.rstrip("u"))
    found = []
    for path in cache.glob(f"{engine}-*u-{rest}.users.json"):
        count = path.name.split("-", 2)[1].rstrip("u")
        if count.isdigit() and int(count) > wanted and (cache / path.name.replace(".users.json", ".data")).exists():
            found.append((int(count), path.name.removesuffix(".users.json")))
    return min(found)[1] if found else None


def restore(cache: Path, key: str, url: str, users: int | None = None) -> list[SimUser] | None:
    """The users of a cached seed restored into `url` (SQLite file or empty PostgreSQL database), or None.

    Without a seed of exactly this size, a larger one serves: its first `users` users get clients, the
    others stay idle accounts (teams are consecutive tens, so the simulated teams are the same)."""
    users_file, data = cache / f"{key}.users.json", cache / f"{key}.data"
    if not users_file.exists() or not data.exists():
        larger = _larger(cache, key) if users is not None else None
        if larger is None:
            return None
        users_file, data = cache / f"{larger}.users.json", cache / f"{larger}.data"
    if url.startswith("sqlite"):
        shutil.copyfile(data, url.split("sqlite:///", 1)[1])
    else:
        from tests.pgcluster import find_pg_bin

        subprocess.run([find_pg_bin("pg_restore"), "--no-owner", *_pg_args(url), str(data)], check=True,
                       capture_output=True, timeout=1800)
        settle_restored(url)
    return [SimUser(**row) for row in json.loads(users_file.read_text())][:users]


def save(cache: Path, key: str, url: str, users: list[SimUser]) -> None:
    """Keep a just-seeded store (call with no server running on it)."""
    cache.mkdir(parents=True, exist_ok=True)
    data = cache / f"{key}.data"
    if url.startswith("sqlite"):
        shutil.copyfile(url.split("sqlite:///", 1)[1], data)
    else:
        from tests.pgcluster import find_pg_bin

        subprocess.run([find_pg_bin("pg_dump"), "-Fc", "-f", str(data), *_pg_args(url)], check=True,
                       capture_output=True, timeout=1800)
    (cache / f"{key}.users.json").write_text(json.dumps([asdict(u) for u in users]))
