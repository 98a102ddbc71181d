"""Protocol state one user's clients keep in the store: per device and collection (EAS sync keys,
folder hierarchies...) and per user (EAS out-of-office and other protocol settings).

State is written in the caller's transaction, so it commits atomically with the data it describes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, select, update

from oxsync.store import accounts, dataclass_json
from oxsync.store import schema as s
from oxsync.store.errors import InvalidData
from oxsync.store.tx import Tx, now_ms

MAX_DEVICE_ID = 64
MAX_COLLECTION = 64


class ProtocolState:
    """The protocol state of `user_id` inside `tx`."""

    def __init__(self, tx: Tx, user_id: int) -> None:
        self.tx = tx
        self.user_id = user_id

    def _state_key(self, device_id: str, collection: str) -> ColumnElement[bool]:
        if not device_id or len(device_id) > MAX_DEVICE_ID or len(collection) > MAX_COLLECTION:
            raise InvalidData("device id or collection name is empty or too long", field="device_id")
        d = s.device_state
        return and_(d.c.tenant_id == self.tx.tenant_id, d.c.user_id == self.user_id, d.c.device_id == device_id,
                    d.c.collection == collection)

    def get_state(self, device_id: str, collection: str) -> dict[str, Any] | None:
        """Opaque protocol state (e.g. EAS sync keys) of one device and collection ("" = the device)."""
        row = self.tx.conn.execute(select(s.device_state.c.data).where(self._state_key(device_id, collection))).one_or_none()
        return dataclass_json.loads(row.data) if row else None

    def put_state(self, device_id: str, collection: str, data: dict[str, Any]) -> None:
        """Store state in this transaction, so it commits atomically with the data it describes."""
        key = self._state_key(device_id, collection)
        values = {"data": dataclass_json.dumps(data), "updated_ms": now_ms()}
        if self.tx.conn.execute(update(s.device_state).where(key).values(**values)).rowcount == 0:
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
