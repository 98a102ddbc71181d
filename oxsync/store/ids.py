"""Object ids for PostgreSQL writers, reserved in blocks outside the writing transaction.

Allocating an id inside the write transaction (`UPDATE sequences ... RETURNING`) locks the tenant's
sequence row until commit, which would serialise every writer of the tenant again, whatever the user.
Instead each process reserves `ID_BLOCK` ids at a time in a short transaction of its own and hands
them out: ids stay unique per tenant (the reservation is atomic), but they are not dense (a process
that stops loses the rest of its block, a rolled-back write its id) and not in commit order across
processes (nothing relies on either: deltas go by revision, listings by id only for a stable order).
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, and_, create_engine, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from oxsync.store import schema as s
from oxsync.store.tx import FIRST_IDS

ID_BLOCK = 16
"""Ids reserved per round trip to the sequence row (one short transaction per ID_BLOCK objects)."""


class IdBlocks:
    """Thread-safe per process: (tenant id, sequence) -> the next id of the block reserved here."""

    def __init__(self, engine: Engine, block: int = ID_BLOCK) -> None:
        self.engine = create_engine(engine.url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        """A connection of its own: a writer holding a pooled connection never waits for a second one."""
        self.block = block
        self._lock = threading.Lock()
        self._free: dict[tuple[int, str], tuple[int, int]] = {}
        self.reservations = 0
        """Blocks reserved so far (tests count them)."""

    def __call__(self, tenant_id: int, sequence: str) -> int:
        key = (tenant_id, sequence)
        with self._lock:
            nxt, end = self._free.get(key, (0, 0))
            if nxt >= end:
                nxt, end = self._reserve(tenant_id, sequence), 0
                end = nxt + self.block
            self._free[key] = (nxt + 1, end)
            return nxt

    def take(self, tenant_id: int, sequence: str, count: int) -> list[int]:
        """`count` new ids at once (a bulk load): the rest of the block being handed out, then one
        reservation of exactly what is still missing (one round trip per batch, not per ID_BLOCK)."""
        key = (tenant_id, sequence)
        with self._lock:
            nxt, end = self._free.get(key, (0, 0))
            ids = list(range(nxt, min(end, nxt + count)))
            self._free[key] = (nxt + len(ids), end)
            missing = count - len(ids)
            if missing > 0:
                first = self._reserve(tenant_id, sequence, missing)
                ids += range(first, first + missing)
        return ids

    def dispose(self) -> None:
        self.engine.dispose()

    def _reserve(self, tenant_id: int, sequence: str, count: int | None = None) -> int:
        size = self.block if count is None else count
        seq = s.sequences
        cond = and_(seq.c.tenant_id == tenant_id, seq.c.name == sequence)
        bump = update(seq).where(cond).values(next_value=seq.c.next_value + size).returning(seq.c.next_value)
        with self.engine.connect() as conn, conn.begin():
            after = conn.execute(bump).scalar_one_or_none()
            if after is None:
                conn.execute(pg_insert(seq).values(tenant_id=tenant_id, name=sequence, next_value=FIRST_IDS[sequence])
                             .on_conflict_do_nothing())
                after = conn.execute(bump).scalar_one()
        self.reservations += 1
        return int(after) - size
