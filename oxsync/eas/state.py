"""Per-device ActiveSync state kept in the store's device_state table (one JSON document per key).

Collections used (all written in the same transaction as the data they describe):
- ``""``      the device record: type, model, user agent, policy state and keys, wipe flag, last seen;
- ``"h"``     the folder hierarchy: current and previous hierarchy keys and the folder lists sent;
- ``"c:<id>"`` one collection: current/previous SyncKey, the base revision reached, the ids the device
  knows, the window still pending, ClientId->ServerId map and the cached previous answer;
- ``"sync"``  the last full Sync request (for empty / Partial Syncs); ``"ping"`` the last Ping parameters.

Sync keys look like ``{uuid}N`` (Z-Push's form): the uuid changes on every reset to 0, N counts up.
"""

from __future__ import annotations

import copy
import secrets
import time
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, Protocol

from oxsync.store.protocol_state import MAX_COLLECTION
from oxsync.store.session import UserSession

DEVICE = ""
HIERARCHY = "h"
LAST_SYNC = "sync"
LAST_PING = "ping"
NOT_PERSISTED_DEVICES = frozenset({"validate"})
"""AOSP validates an account with DeviceId `validate`: never create state for it."""


def collection_key(collection_id: str) -> str:
    return f"c:{collection_id}"


def new_sync_key(counter: int = 1, family: str | None = None) -> str:
    return f"{{{family or uuid.uuid4()}}}{counter}"


def next_sync_key(key: str) -> str:
    """`{uuid}N` -> `{uuid}N+1` (any other form starts a new family)."""
    family, _, counter = key.rpartition("}")
    if family.startswith("{") and counter.isdigit():
        return f"{family}}}{int(counter) + 1}"
    return new_sync_key()


def new_policy_key() -> str:
    """A random non-zero 32-bit key (an iPhone OS 4 beta rejected 0, says Z-Push)."""
    return str(secrets.randbelow(2**31 - 2) + 1)


class IdSet:
    """A set of integer ids stored as compact ranges ("1-500,502"): consecutive ids cost nothing.

    A parsed set stays ranges: membership and length by bisection, `add` and `discard` grow, shrink,
    split or join a range, `in_order` walks them, `dump` writes them; it becomes a Python set only when
    asked for `ids`. A window of an initial Sync moves 100 ids from the pass's pending adds to the known
    ids: it expands, sorts and writes back neither set's thousands of ids (three times per window
    before), and a delta of 10 changes against 5,000 known ids builds no set either."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._ids: set[int] | None = set(ids)
        self._lows: list[int] = []
        self._highs: list[int] = []
        """The ranges (sorted, disjoint, never adjacent) while `_ids` is None."""
        self._text: str | None = None
        """What `dump` returns while the set is as parsed (a delta of changes only rewrites nothing)."""

    @classmethod
    def parse(cls, text: str | None) -> IdSet:
        parsed = cls()
        lows, highs = parsed._lows, parsed._highs
        for part in (text or "").split(","):
            if not part:
                continue
            low, _, high = part.partition("-")
            lows.append(int(low))
            highs.append(int(high or low))
        if all(low <= high for low, high in zip(lows, highs, strict=True)) and all(
                high + 1 < low for high, low in zip(highs, lows[1:], strict=False)):
            parsed._ids = None  # as `dump` writes them: answered from the ranges
        else:
            parsed._ids = _expand(lows, highs)
            parsed._lows, parsed._highs = [], []
        parsed._text = text or ""
        return parsed

    @property
    def ids(self) -> set[int]:
        if self._ids is None:
            self._ids = _expand(self._lows, self._highs)
            self._lows, self._highs = [], []
        return self._ids

    def in_order(self) -> Iterator[int]:
        """The ids in ascending order, as they are now (changing the set meanwhile changes no step)."""
        if self._ids is not None:
            return iter(sorted(self._ids))
        return chain.from_iterable(map(range, list(self._lows), [high + 1 for high in self._highs]))

    def dump(self) -> str:
        if self._text is not None:
            return self._text
        if self._ids is None:
            return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in zip(self._lows, self._highs, strict=True))
        parts: list[str] = []
        ordered = sorted(self._ids)
        i = 0
        while i < len(ordered):
            j = i
            while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
                j += 1
            parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
            i = j + 1
        return ",".join(parts)

    def __contains__(self, item: object) -> bool:
        if self._ids is not None:
            return item in self._ids
        if not isinstance(item, int):
            return False
        at = bisect_right(self._lows, item) - 1
        return at >= 0 and item <= self._highs[at]

    def __len__(self) -> int:
        if self._ids is not None:
            return len(self._ids)
        return sum(high - low + 1 for low, high in zip(self._lows, self._highs, strict=True))

    def add(self, item: int) -> None:
        if item in self:
            return
        self._text = None
        if self._ids is not None:
            self._ids.add(item)
            return
        lows, highs = self._lows, self._highs
        at = bisect_right(lows, item)  # lows[:at] <= item < lows[at:]; item is in no range
        joins_before = at > 0 and highs[at - 1] == item - 1
        joins_after = at < len(lows) and lows[at] == item + 1
        if joins_before and joins_after:
            highs[at - 1] = highs[at]
            del lows[at], highs[at]
        elif joins_before:
            highs[at - 1] = item
        elif joins_after:
            lows[at] = item
        else:
            lows.insert(at, item)
            highs.insert(at, item)

    def discard(self, item: int) -> None:
        if item not in self:
            return
        self._text = None
        if self._ids is not None:
            self._ids.discard(item)
            return
        lows, highs = self._lows, self._highs
        at = bisect_right(lows, item) - 1
        low, high = lows[at], highs[at]
        if low == high:
            del lows[at], highs[at]
        elif item == low:
            lows[at] = item + 1
        elif item == high:
            highs[at] = item - 1
        else:
            highs[at] = item - 1
            lows.insert(at + 1, item + 1)
            highs.insert(at + 1, high)


def _expand(lows: list[int], highs: list[int]) -> set[int]:
    out: set[int] = set()
    for low, high in zip(lows, highs, strict=True):
        out.update(range(low, high + 1))
    return out


class NeedsWriteTransaction(Exception):
    """A command tried in a read transaction must write more than device state: run it in a write one."""


class StateStore(Protocol):
    """Where a command reads and writes device state: the session itself, or `StagedStates`."""

    def get_state(self, device_id: str, collection: str) -> dict[str, Any] | None: ...

    def put_state(self, device_id: str, collection: str, data: dict[str, Any]) -> None: ...


class StagedStates:
    """Device state read in a read transaction, its writes kept for a short write transaction.

    A Sync that sends server changes only (no client commands) spends nearly all its time loading and
    rendering items: done inside a write transaction, that held the database's write lock (SQLite has
    one writer) for the whole window, and every other writer of the node queued behind it. Staged, the
    export runs in a read transaction and `commit` writes the new state in a write transaction of a few
    statements, provided every state it read is still as it was (optimistic concurrency: otherwise the
    caller runs the command again inside one write transaction, as before)."""

    def __init__(self, session: UserSession) -> None:
        self.session = session
        self.reads: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.texts: dict[tuple[str, str], str | None] = {}
        """The stored text of each state read (None: absent), which `commit` compares and swaps."""
        self.writes: dict[tuple[str, str], dict[str, Any]] = {}

    def _read(self, device_id: str, collections: list[str]) -> None:
        for collection, (value, text) in self.session.state.read_states(device_id, collections).items():
            self.reads[(device_id, collection)], self.texts[(device_id, collection)] = value, text

    def prefetch(self, device_id: str, collections: Iterable[str]) -> None:
        """Read the states of `collections` not read yet in one statement (a Sync's collections)."""
        missing = sorted({c for c in collections if len(c) <= MAX_COLLECTION
                          and (device_id, c) not in self.reads and (device_id, c) not in self.writes})
        if len(missing) > 1:
            self._read(device_id, missing)

    def get_state(self, device_id: str, collection: str) -> dict[str, Any] | None:
        key = (device_id, collection)
        if key in self.writes:
            return copy.deepcopy(self.writes[key])
        if key not in self.reads:
            self._read(device_id, [collection])
        return copy.deepcopy(self.reads[key])

    def put_state(self, device_id: str, collection: str, data: dict[str, Any]) -> None:
        """Stage `data`; a state written back as it was read is no write at all (a Sync that sends
        nothing new, the same cached request again, needs no write transaction for it)."""
        key = (device_id, collection)
        if key in self.reads and self.reads[key] == data:
            self.writes.pop(key, None)
            return
        self.writes[key] = copy.deepcopy(data)

    def commit(self, session: UserSession) -> None:
        """Write the staged state inside `session`'s write transaction if nothing it read has moved:
        each write compares and swaps its state, the first also checks the one state read and not
        written (a Sync's device record), so no read precedes the writes (a check read and the writes
        before). Raises `StateMoved` otherwise: the transaction must then roll back."""
        devices = {device_id for device_id, _ in self.texts} | {device_id for device_id, _ in self.writes}
        for device_id in sorted(devices):
            read = {c: text for (d, c), text in self.texts.items() if d == device_id}
            writes = {c: data for (d, c), data in self.writes.items() if d == device_id}
            session.state.put_states_if_unchanged(device_id, read, writes)

    def commit_alone(self, session: UserSession) -> bool:
        """`commit` as one statement that commits by itself inside `session`, the read it staged from,
        where the store can (PostgreSQL, one state written: `ProtocolState.put_state_alone`): no write
        transaction, no BEGIN and COMMIT. False, having written nothing, where it cannot; raises
        `StateMoved` (nothing written) as `commit` does."""
        devices = {device_id for device_id, _ in self.writes} | {device_id for device_id, _ in self.texts}
        if len(devices) != 1:  # one device's states read and written
            return False
        (device_id,) = devices
        read = {c: text for (_, c), text in self.texts.items()}
        writes = {c: data for (_, c), data in self.writes.items()}
        return session.state.put_state_alone(device_id, read, writes)


def load_device(session: StateStore, device_id: str) -> dict[str, Any]:
    return session.get_state(device_id, DEVICE) or {}


def touch_device(session: StateStore, device_id: str, record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Update the device record (creating it on first contact); skipped for `validate`."""
    if device_id in NOT_PERSISTED_DEVICES:
        return record
    now = int(time.time())
    record = {**record, **{k: v for k, v in fields.items() if v is not None}, "last_seen": now}
    record.setdefault("first_seen", now)
    session.put_state(device_id, DEVICE, record)
    return record
