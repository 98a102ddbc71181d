"""Finding a user's objects by UID, by DAV resource name or by text, and the busy time of the objects
they may not see.

Every lookup answers only with what the session's `Viewer` lets the user read in that folder; free/busy
of hidden (others' private) appointments gives their times and never their details.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from oxsync.model import Appointment, ShownAs
from oxsync.store import objects as object_ops
from oxsync.store import principals
from oxsync.store import schema as s
from oxsync.store.errors import NotFound
from oxsync.store.membership import folders_of_objects, object_ids_in_folder
from oxsync.store.objects import AnyObject
from oxsync.store.scheduling import intervals
from oxsync.store.viewer import CHUNK, Viewer


class Lookups:
    """Searches of the viewer's user, in the viewer's transaction."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.tx = viewer.tx

    def find_by_uid(self, folder_id: int, uid: str, own: Collection[int] = ()) -> AnyObject | None:
        """The first object with this UID inside `folder_id`, if this user may read it. `own`: ids of the
        resource the caller is about to rewrite, read by this user in this folder in this transaction
        (a series and its exceptions): reaching one of them first answers None without reading it again."""
        for object_id, _ in self.viewer.uid_rows(uid):
            if object_id in own:
                return None
            inside, obj = self.viewer.fetch(folder_id, object_id)
            if inside:
                try:
                    self.viewer.object_folder(folder_id)  # as get_object: the folder must be visible
                except NotFound:
                    return None
                return None if obj is None else self.viewer.personalised(obj)
        return None

    def find_principals(self, addresses: Iterable[str], uid: str | None = None) -> dict[str, tuple[str, int] | None]:
        """`find_principal` of several addresses in one statement (lowercased address -> answer); with the UID
        a write is about to check (`find_by_uid`, its create's `_uid_taken`), the objects holding it are read in
        the same statement and kept for those checks."""
        if uid is None:
            return principals.find_principals(self.tx, addresses)
        answers, rows = principals.find_principals_and_uid(self.tx, addresses, uid)
        self.viewer.remember_uid_rows(uid, rows)
        return answers

    def find_by_resource_name(self, folder_id: int, name: str) -> AnyObject | None:
        """The visible object of `folder_id` whose DAV resource name is `name`, or None."""
        self.viewer.object_folder(folder_id)
        o = s.objects
        ids = [r.id for r in self.tx.conn.execute(select(o.c.id).where(
            and_(o.c.tenant_id == self.tx.tenant_id, o.c.resource_name == name)))]
        for object_id, folders in folders_of_objects(self.tx, ids).items():
            if folder_id in folders:
                rows = self.viewer.readable_rows(folder_id, [object_id])
                if rows:
                    return self.viewer.get_object(folder_id, object_id)
        return None

    def search_objects(self, folder_id: int, text: str, limit: int = 100) -> list[AnyObject]:
        """Objects of a folder whose names, addresses or titles contain `text` (case-insensitive)."""
        self.viewer.object_folder(folder_id)
        limit = max(1, min(limit, self.tx.settings.limits.max_result_count))
        needle = text.strip().lower()
        o = s.objects
        ids = object_ids_in_folder(self.tx, folder_id)
        matches: list[int] = []
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            query = select(o.c.id).where(and_(o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(chunk),
                                              o.c.search_text.contains(needle, autoescape=True)))
            matches.extend(r.id for r in self.tx.conn.execute(query))
        rows = self.viewer.readable_rows(folder_id, sorted(matches))[:limit]
        return self.viewer.loaded(folder_id, rows)

    def hidden_busy(self, folder_id: int, start: datetime, end: datetime) -> list[tuple[Any, Any, Any]]:
        """(start, end, ShownAs) of the appointments in `folder_id` this user may not see (others'
        private ones): free/busy shows their busy time and never their details, while listings and
        queries leave them out entirely. Needs the folder to be visible, like a listing."""
        self.viewer.object_folder(folder_id)
        rights = self.viewer.rights(folder_id)
        o = s.objects
        ids = object_ids_in_folder(self.tx, folder_id)
        rows: list[Any] = []
        for i in range(0, len(ids), CHUNK):
            rows.extend(self.tx.conn.execute(select(o).where(and_(
                o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(ids[i:i + CHUNK]), o.c.private.is_(True),
                o.c.kind == "appointment"))).all())
        participants = self.viewer.participant_users([r.id for r in rows]) if rows else {}
        hidden = [r for r in rows if not self.viewer.can_read(r.private, r.created_by, r.id, rights, participants)]
        out = []
        for appt in object_ops.load_objects(self.tx, hidden):
            if isinstance(appt, Appointment) and appt.shown_as != ShownAs.FREE:
                out += [(max(a, start), min(b, end), appt.shown_as) for a, b in intervals(self.tx, appt, start, end)]
        return out
