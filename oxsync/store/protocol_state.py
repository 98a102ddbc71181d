"""Protocol state one user's clients keep in the store: per device and collection (EAS sync keys,
folder hierarchies...) and per user (EAS out-of-office and other protocol settings).

State is written in the caller's transaction, so it commits atomically with the data it describes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Update, and_, bindparam, delete, exists, insert, select, update

from oxsync.store import accounts, dataclass_json
from oxsync.store import schema as s
from oxsync.store.engine import COMMITS_ALONE
from oxsync.store.errors import InvalidData
from oxsync.store.tx import Tx, now_ms

MAX_DEVICE_ID = 64
MAX_COLLECTION = 64


_d = s.device_state
_BY_KEY = and_(_d.c.tenant_id == bindparam("k_tenant"), _d.c.user_id == bindparam("k_user"),
               _d.c.device_id == bindparam("k_device"), _d.c.collection == bindparam("k_collection"))
_GET_STATE = select(_d.c.data).where(_BY_KEY)
_GET_STATES = select(_d.c.collection, _d.c.data).where(and_(
    _d.c.tenant_id == bindparam("k_tenant"), _d.c.user_id == bindparam("k_user"),
    _d.c.device_id == bindparam("k_device"), _d.c.collection.in_(bindparam("k_collections", expanding=True))))
_PUT_STATE = update(_d).where(_BY_KEY).values(data=bindparam("v_data"), updated_ms=bindparam("v_updated_ms"))
"""Built once (the collections of `get_states` as one expanding list): every EAS command reads and writes
device state a few times, and building the statement cost more than running it."""
_PUT_IF = _PUT_STATE.where(_d.c.data == bindparam("k_data"))
"""Compare-and-swap write of one state: written only if its stored text is still `k_data` (and, for
`_put_if_and`, other states of the device still as read): a state that moved since it was read is
detected by the write itself, without a read before it."""
MAX_CHECKED = 4
"""States read and not written that the first compare-and-swap write checks (more: a check read first)."""


@cache
def _put_if_and(checked: int) -> Update:
    """`_PUT_IF` that also requires `checked` other states of the device to be as read (`c_collection_i`
    still `c_data_i`). Built once per count."""
    statement = _PUT_IF
    for i in range(checked):
        other = _d.alias(f"checked{i}")
        statement = statement.where(exists().where(and_(
            other.c.tenant_id == bindparam("k_tenant"), other.c.user_id == bindparam("k_user"),
            other.c.device_id == bindparam("k_device"), other.c.collection == bindparam(f"c_collection_{i}"),
            other.c.data == bindparam(f"c_data_{i}"))))
    return statement


@cache
def _put_alone(checked: int) -> Update:
    """`_put_if_and` allowed on a PostgreSQL read connection, where it commits alone (`COMMITS_ALONE`)."""
    return _put_if_and(checked).execution_options(**{COMMITS_ALONE: True})


def _unwritten_if_swappable(read: dict[str, str | None], writes: dict[str, Any]) -> list[str] | None:
    """The states read and not written, if every write can be a compare-and-swap UPDATE (each written
    state was read present, every state read is present, at most `MAX_CHECKED` read and not written);
    None where a check read must come first."""
    others = [c for c in read if c not in writes]
    if writes and all(c in read for c in writes) and all(text is not None for text in read.values()) \
            and len(others) <= MAX_CHECKED:
        return others
    return None


class StateMoved(Exception):
    """A device state changed since it was read (`ProtocolState.put_states_if_unchanged`)."""


class ProtocolState:
    """The protocol state of `user_id` inside `tx`."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id

    def _state_key(self, device_id: str, collection: str) -> dict[str, Any]:
        """The parameters of `_BY_KEY` for one device and collection (checked)."""
        if not device_id or len(device_id) > MAX_DEVICE_ID or len(collection) > MAX_COLLECTION:
            raise InvalidData("device id or collection name is empty or too long", field="device_id")
        return {"k_tenant": self.tx.tenant_id, "k_user": self.user_id, "k_device": device_id, "k_collection": collection}

    def get_state(self, device_id: str, collection: str) -> dict[str, Any] | None:
        """Opaque protocol state (e.g. EAS sync keys) of one device and collection ("" = the device)."""
        row = self.tx.conn.execute(_GET_STATE, self._state_key(device_id, collection)).one_or_none()
        return dataclass_json.loads(row.data) if row else None

    def get_states(self, device_id: str, collections: list[str]) -> dict[str, dict[str, Any] | None]:
        """`get_state` of several collections of one device, in one statement (None where absent)."""
        for collection in collections:
            self._state_key(device_id, collection)
        rows = self.tx.conn.execute(_GET_STATES, {"k_tenant": self.tx.tenant_id, "k_user": self.user_id,
                                                  "k_device": device_id, "k_collections": list(collections)}).all()
        found = {r.collection: dataclass_json.loads(r.data) for r in rows}
        return {collection: found.get(collection) for collection in collections}

    def read_states(self, device_id: str, collections: list[str]) -> dict[str, tuple[dict[str, Any] | None, str | None]]:
        """`get_states` with each state's stored text (None where absent), for `put_states_if_unchanged`."""
        for collection in collections:
            self._state_key(device_id, collection)
        rows = self.tx.conn.execute(_GET_STATES, {"k_tenant": self.tx.tenant_id, "k_user": self.user_id,
                                                  "k_device": device_id, "k_collections": list(collections)}).all()
        found = {r.collection: (dataclass_json.loads(r.data), r.data) for r in rows}
        return {collection: found.get(collection, (None, None)) for collection in collections}

    def put_states_if_unchanged(self, device_id: str, read: dict[str, str | None], writes: dict[str, dict[str, Any]]) -> None:
        """Write `writes` (collection -> state) if every state of `read` (collection -> text as read by
        `read_states`, None = absent) is still as read; otherwise raise `StateMoved`, after which the
        caller's transaction must not commit (some of the writes may be done: let it propagate).

        Where every state was read present and at most `MAX_CHECKED` were read and not written, each
        write is one compare-and-swap UPDATE (the first also checks the states not written): no read
        before the writes."""
        others = _unwritten_if_swappable(read, writes)
        if others is not None:
            self._swap(device_id, read, writes, others, _put_if_and(len(others)))
            return
        now = self.read_states(device_id, list(read))
        if any(now[c][1] != text for c, text in read.items()):
            raise StateMoved(",".join(c for c, text in read.items() if now[c][1] != text))
        for collection, data in writes.items():
            self.put_state(device_id, collection, data)

    def put_state_alone(self, device_id: str, read: dict[str, str | None], writes: dict[str, dict[str, Any]]) -> bool:
        """`put_states_if_unchanged` as one statement that commits by itself, when it is one: on a
        PostgreSQL read connection (autocommit), one state written and at most `MAX_CHECKED` read, all
        present, so one compare-and-swap UPDATE is the whole write (BEGIN and COMMIT would be two more
        round trips, and the write transaction a second connection). Returns False, having done nothing,
        where it is not; raises `StateMoved` (nothing written) where a state moved."""
        conn = self.tx.conn
        if len(writes) != 1 or self.tx.writable or conn.dialect.name != "postgresql" or \
                conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            return False
        others = _unwritten_if_swappable(read, writes)
        if others is None:
            return False
        self._swap(device_id, read, writes, others, _put_alone(len(others)))
        return True

    def _swap(self, device_id: str, read: dict[str, str | None], writes: dict[str, dict[str, Any]],
              others: list[str], first: Update) -> None:
        """Each of `writes` as one compare-and-swap UPDATE against its text in `read`, the first (`first`)
        also checking the states `others` still as read; `StateMoved` at the first that finds a change."""
        stamp = now_ms()
        checks: dict[str, Any] = {}
        for i, collection in enumerate(others):
            checks[f"c_collection_{i}"], checks[f"c_data_{i}"] = collection, read[collection]
        statement = first
        for collection, data in writes.items():
            params = {**self._state_key(device_id, collection), **checks, "k_data": read[collection],
                      "v_data": dataclass_json.dumps(data), "v_updated_ms": stamp}
            if self.tx.conn.execute(statement, params).rowcount != 1:
                raise StateMoved(collection)
            statement, checks = _PUT_IF, {}

    def put_state(self, device_id: str, collection: str, data: dict[str, Any]) -> None:
        """Store state in this transaction, so it commits atomically with the data it describes."""
        key = self._state_key(device_id, collection)
        values = {"data": dataclass_json.dumps(data), "updated_ms": now_ms()}
        if self.tx.conn.execute(_PUT_STATE, {**key, "v_data": values["data"], "v_updated_ms": values["updated_ms"]}).rowcount == 0:
            self.tx.conn.execute(insert(s.device_state).values(
                tenant_id=self.tx.tenant_id, user_id=self.user_id, device_id=device_id, collection=collection, **values))

    def delete_state(self, device_id: str, collection: str | None = None) -> int:
        d = s.device_state
        cond = and_(d.c.tenant_id == self.tx.tenant_id, d.c.user_id == self.user_id, d.c.device_id == device_id)
        if collection is not None:
            cond = and_(cond, d.c.collection == collection)
        return int(self.tx.conn.execute(delete(d).where(cond)).rowcount)

    def device_collections(self, device_id: str) -> list[str]:
        """The state collections one device has ("" = its record, "c:<id>" its sync collections...)."""
        d = s.device_state
        rows = self.tx.conn.execute(select(d.c.collection).where(and_(
            d.c.tenant_id == self.tx.tenant_id, d.c.user_id == self.user_id, d.c.device_id == device_id)
        ).order_by(d.c.collection))
        return [r.collection for r in rows]

    def device_ids(self) -> list[str]:
        d = s.device_state
        rows = self.tx.conn.execute(select(d.c.device_id).distinct().where(
            and_(d.c.tenant_id == self.tx.tenant_id, d.c.user_id == self.user_id)).order_by(d.c.device_id))
        return [r.device_id for r in rows]

    def get_settings(self) -> dict[str, Any]:
        """Per-user protocol settings (e.g. EAS out-of-office), a JSON document."""
        return accounts.user_settings(self.tx, self.user_id)

    def put_settings(self, settings: dict[str, Any]) -> None:
        accounts.store_user_settings(self.tx, self.user_id, settings)
