"""User-session operations the dialects need beyond object CRUD: protocol state per device,
collection revisions (CTags), lookups by DAV resource name, search, the directory and user settings.

Mixed into `UserSession`; every method acts for `self.user_id` inside `self.tx`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update

from oxsync.model import Group, Resource, User
from oxsync.store import accounts, dataclass_json
from oxsync.store import schema as s
from oxsync.store.errors import InvalidData
from oxsync.store.tx import Tx, now_ms

MAX_DEVICE_ID = 64
MAX_COLLECTION = 64


class SessionExtras:
    tx: Tx
    user_id: int

    # ------------------------------------------------------------ per-device protocol state

    def _state_key(self, device_id: str, collection: str):  # type: ignore[no-untyped-def]
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

    # ------------------------------------------------------------ collection revisions

    def folder_revision(self, folder_id: int) -> tuple[int, int]:
        """(revision, ms) of the newest change in or to the folder: a CTag that moves on every change."""
        c, fc = s.changes, s.folder_changes
        objects_row = self.tx.conn.execute(select(func.max(c.c.rev), func.max(c.c.ms)).where(
            and_(c.c.tenant_id == self.tx.tenant_id, c.c.folder_id == folder_id))).one()
        folder_row = self.tx.conn.execute(select(fc.c.rev, fc.c.ms).where(
            and_(fc.c.tenant_id == self.tx.tenant_id, fc.c.folder_id == folder_id))).one_or_none()
        revs = [(int(objects_row[0]), int(objects_row[1]))] if objects_row[0] is not None else []
        if folder_row is not None:
            revs.append((int(folder_row.rev), int(folder_row.ms)))
        return max(revs) if revs else (0, 0)

    # ------------------------------------------------------------ lookups

    def find_by_resource_name(self, folder_id: int, name: str):  # type: ignore[no-untyped-def]
        """The visible object of `folder_id` whose DAV resource name is `name`, or None."""
        from oxsync.store.membership import folders_of_objects

        self._object_folder(folder_id)  # type: ignore[attr-defined]
        o = s.objects
        ids = [r.id for r in self.tx.conn.execute(select(o.c.id).where(
            and_(o.c.tenant_id == self.tx.tenant_id, o.c.resource_name == name)))]
        for object_id, folders in folders_of_objects(self.tx, ids).items():
            if folder_id in folders:
                rows = self._readable_rows(folder_id, [object_id])  # type: ignore[attr-defined]
                if rows:
                    return self.get_object(folder_id, object_id)  # type: ignore[attr-defined]
        return None

    def search_objects(self, folder_id: int, text: str, limit: int = 100) -> list:  # type: ignore[type-arg]
        """Objects of a folder whose names, addresses or titles contain `text` (case-insensitive)."""
        from oxsync.store import objects as object_ops
        from oxsync.store.membership import object_ids_in_folder

        self._object_folder(folder_id)  # type: ignore[attr-defined]
        limit = max(1, min(limit, self.tx.settings.limits.max_result_count))
        needle = text.strip().lower()
        o = s.objects
        ids = object_ids_in_folder(self.tx, folder_id)
        matches: list[int] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            query = select(o.c.id).where(and_(o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(chunk),
                                              o.c.search_text.contains(needle, autoescape=True)))
            matches.extend(r.id for r in self.tx.conn.execute(query))
        rows = self._readable_rows(folder_id, sorted(matches))[:limit]  # type: ignore[attr-defined]
        return [self._personalised(x) for x in  # type: ignore[attr-defined]
                object_ops.load_objects(self.tx, rows, {r.id: folder_id for r in rows})]

    def hidden_busy(self, folder_id: int, start: Any, end: Any) -> list[tuple[Any, Any, Any]]:
        """(start, end, ShownAs) of the appointments in `folder_id` this user may not see (others'
        private ones): free/busy shows their busy time and never their details, while listings and
        queries leave them out entirely. Needs the folder to be visible, like a listing."""
        from oxsync.model import Appointment, ShownAs
        from oxsync.store import objects as object_ops
        from oxsync.store.membership import object_ids_in_folder
        from oxsync.store.scheduling import intervals

        self._object_folder(folder_id)  # type: ignore[attr-defined]
        rights = self.rights(folder_id)  # type: ignore[attr-defined]
        o = s.objects
        ids = object_ids_in_folder(self.tx, folder_id)
        rows = []
        for i in range(0, len(ids), 500):
            rows.extend(self.tx.conn.execute(select(o).where(and_(
                o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(ids[i:i + 500]), o.c.private.is_(True),
                o.c.kind == "appointment"))).all())
        participants = self._participant_users([r.id for r in rows]) if rows else {}  # type: ignore[attr-defined]
        hidden = [r for r in rows if not self._can_read(  # type: ignore[attr-defined]
            r.private, r.created_by, r.id, rights, participants)]
        out = []
        for appt in object_ops.load_objects(self.tx, hidden):
            if isinstance(appt, Appointment) and appt.shown_as != ShownAs.FREE:
                out += [(max(a, start), min(b, end), appt.shown_as) for a, b in intervals(self.tx, appt, start, end)]
        return out

    # ------------------------------------------------------------ directory

    def me(self) -> User:
        return accounts.get_user(self.tx, self.user_id)

    def users(self) -> list[User]:
        return accounts.list_users(self.tx)

    def user(self, user_id: int) -> User:
        return accounts.get_user(self.tx, user_id)

    def groups(self) -> list[Group]:
        return accounts.list_groups(self.tx)

    def resources(self) -> list[Resource]:
        return accounts.list_resources(self.tx)

    def find_principal(self, address: str) -> tuple[str, int] | None:
        """("user", id) or ("resource", id) for a login or any address of this tenant."""
        user_id = accounts.find_user_id(self.tx, address)
        if user_id is not None:
            return "user", user_id
        resource_id = accounts.find_resource_id(self.tx, address)
        return ("resource", resource_id) if resource_id is not None else None

    def deleted_principals(self, since_ms: int) -> list[tuple[str, int, int | None, int]]:
        """(kind, id, contact_id, deleted_ms) of users, groups and resources deleted after `since_ms`."""
        d = s.deleted_principals
        rows = self.tx.conn.execute(select(d).where(and_(d.c.tenant_id == self.tx.tenant_id, d.c.last_ms > since_ms))
                                    .order_by(d.c.last_ms))
        return [(r.kind, r.id, r.contact_id, r.last_ms) for r in rows]

    # ------------------------------------------------------------ per-user settings

    def get_settings(self) -> dict[str, Any]:
        """Per-user protocol settings (e.g. EAS out-of-office), a JSON document."""
        return accounts.user_settings(self.tx, self.user_id)

    def put_settings(self, settings: dict[str, Any]) -> None:
        accounts.store_user_settings(self.tx, self.user_id, settings)

    # ------------------------------------------------------------ mail the user sends

    def allowed_senders(self) -> list[str]:
        """Primary address first, then the send-as addresses an administrator declared."""
        from oxsync.store.sending import allowed_senders

        return allowed_senders(self.tx, self.user_id)

    def send_mail(self, key: str, from_address: str, recipients: list[str], message: bytes,
                  subject: str = "", names: dict[str, str] | None = None) -> bool:
        """Queue a message the user sends (From checked); False if `key` was queued before.
        `names`: display names by lower-cased address (for collected addresses)."""
        from oxsync.store.sending import queue_user_mail

        return queue_user_mail(self.tx, self.user_id, key=key, from_address=from_address,
                               recipients=recipients, message=message, subject=subject, names=names)

    def apply_itip_reply(self, uid: str, attendee: str, partstat: str, comment: str = "", instance: str = "") -> str:
        """An outside attendee answered a meeting this user organises (iMIP REPLY): see store/itip.py."""
        from oxsync.store.itip import apply_reply

        return apply_reply(self.tx, self.user_id, uid, attendee, partstat, comment, instance)

    def collect_addresses(self, people: list[tuple[str, str]]) -> list[str]:
        """(name, address) pairs into "Collected addresses" when the account collects; returns those added."""
        from oxsync.store.collect import collect

        return collect(self.tx, self.user_id, people)
