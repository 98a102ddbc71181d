"""What changed since a sync token, as one user sees it now: the tenant revision, object and folder
deltas, and the revision of one collection (a CTag).

Revision order is commit order (one revision per tenant, taken in the write transaction), so a delta
is a range scan over change rows, filtered through the session's `Viewer`: an object that became
invisible comes back as gone. A token from the future or older than the pruning horizon is refused
(`ResyncRequired`: the client lists the collection again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, bindparam, func, select

from oxsync.model.folder import FolderAccess
from oxsync.store import folders as folder_ops
from oxsync.store import schema as s
from oxsync.store.bulk import in_folder, visible_versions
from oxsync.store.errors import ResyncRequired
from oxsync.store.viewer import Viewer

_t, _c = s.tenants, s.changes
_OBJECT_CHANGES = (
    select(_t.c.rev, _t.c.last_ms, _t.c.min_valid_rev, _c.c.object_id, _c.c.gone, _c.c.resource_name)
    .select_from(_t.outerjoin(_c, and_(_c.c.tenant_id == _t.c.id, _c.c.folder_id == bindparam("k_folder", type_=Integer),
                                       _c.c.rev > bindparam("k_since", type_=BigInteger), _c.c.rev <= _t.c.rev)))
    .where(_t.c.id == bindparam("k_tenant", type_=Integer)))
"""The revision and the changes of one folder up to it in one statement (a tenant row, joined to its
changes), built once: every delta (an EAS Sync, an OX or DAV delta) starts with it."""


@dataclass
class ObjectDelta:
    """Changes in one folder since a revision, as seen by one user now."""

    revision: int
    last_modified: int
    changed: list[Any] = field(default_factory=list)
    """The changed objects, or their `ObjectVersion`s (nothing decoded) past `object_delta`'s `decode_up_to`."""
    gone: list[int] = field(default_factory=list)
    gone_names: dict[int, str] = field(default_factory=dict)
    """DAV resource names of gone objects where known ("" = the object had none: its default href)."""


@dataclass
class FolderDelta:
    revision: int
    last_modified: int
    changed: list[FolderAccess] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)


class Deltas:
    """Change tracking for the viewer's user, in the viewer's transaction."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.tx = viewer.tx
        self._min_valid = 0
        """The pruning horizon (oldest revision a delta may start from), read with the revision."""

    def revision(self) -> tuple[int, int]:
        """(revision, last_modified ms) of the newest committed change in this tenant."""
        row = self.tx.conn.execute(select(s.tenants.c.rev, s.tenants.c.last_ms, s.tenants.c.min_valid_rev)
                                   .where(s.tenants.c.id == self.tx.tenant_id)).one()
        self._min_valid = int(row.min_valid_rev)
        return int(row.rev), int(row.last_ms)

    def _check_token(self, since_rev: int) -> tuple[int, int]:
        rev, ms = self.revision()
        return self._checked(since_rev, rev, ms, self._min_valid)

    def _checked(self, since_rev: int, rev: int, ms: int, min_valid: int) -> tuple[int, int]:
        """(rev, ms) if a delta may start at `since_rev`, else ResyncRequired."""
        self._min_valid = min_valid
        if since_rev > rev:
            raise ResyncRequired(f"sync token {since_rev} is from the future (now {rev})")
        if 0 < since_rev < self._min_valid:
            raise ResyncRequired(f"sync token {since_rev} predates the pruning horizon {self._min_valid}")
        return rev, ms

    def rev_for_ms(self, ms: int) -> int:
        """The newest revision committed at or before OX timestamp `ms` (0 if none). A timestamp older
        than the pruned history maps to a revision before the horizon, so that a delta from it is
        refused (ResyncRequired: the client is re-listed) instead of read as 'from the beginning'."""
        rl = s.revision_log
        found = self.tx.conn.execute(
            select(rl.c.rev).where(and_(rl.c.tenant_id == self.tx.tenant_id, rl.c.ms <= ms)).order_by(rl.c.rev.desc()).limit(1)
        ).scalar_one_or_none()
        if found is None and ms > 0:
            self.revision()  # reads the horizon
            if self._min_valid > 1:
                return self._min_valid - 1
        return int(found or 0)

    def object_delta(self, folder_id: int, since_rev: int, decode_up_to: int | None = None) -> ObjectDelta:
        """What changed in `folder_id` after `since_rev`, filtered by what this user may see now.

        With `decode_up_to`, more changes than that come back as `ObjectVersion`s (id, version, series;
        nothing decoded): a caller that sends them in windows decodes each window's items only."""
        found = self.tx.conn.execute(_OBJECT_CHANGES, {"k_tenant": self.tx.tenant_id, "k_folder": folder_id,
                                                       "k_since": since_rev}).all()
        rev, ms = self._checked(since_rev, int(found[0].rev), int(found[0].last_ms), int(found[0].min_valid_rev))
        self.viewer.object_folder(folder_id)
        rows = [r for r in found if r.object_id is not None]
        delta = ObjectDelta(rev, ms)
        delta.gone_names = {r.object_id: r.resource_name for r in rows if r.gone and r.resource_name is not None}
        present = [r.object_id for r in rows if not r.gone]
        delta.gone = sorted(r.object_id for r in rows if r.gone)
        if decode_up_to is not None and len(present) > decode_up_to:
            versions = visible_versions(self.viewer, folder_id, present)
            readable_ids = {v.object_id for v in versions}
            delta.changed = versions
        else:  # the rows first: those at home in the folder need no participant read to be in it
            rows = self.viewer.rows_by_id(present)
            inside = in_folder(self.tx, folder_id, {int(r.id): r for r in rows})
            readable = self.viewer.readable_of(folder_id, [r for r in rows if int(r.id) in inside])
            readable_ids = {r.id for r in readable}
            delta.changed = self.viewer.loaded(folder_id, readable)
        hidden = sorted(set(present) - readable_ids)
        delta.gone = sorted(set(delta.gone) | set(hidden))
        if hidden:  # still stored, only no longer visible here: their names are on the rows
            o = s.objects
            for r in self.tx.conn.execute(select(o.c.id, o.c.resource_name).where(
                    and_(o.c.tenant_id == self.tx.tenant_id, o.c.id.in_(hidden)))):
                delta.gone_names[r.id] = r.resource_name or ""
        return delta

    def folder_delta(self, since_rev: int) -> FolderDelta:
        rev, ms = self._check_token(since_rev)
        fc = s.folder_changes
        rows = self.tx.conn.execute(
            select(fc.c.folder_id, fc.c.gone).where(and_(fc.c.tenant_id == self.tx.tenant_id, fc.c.rev > since_rev, fc.c.rev <= rev))
        ).all()
        visible = self.viewer.visible_folder_rights()
        delta = FolderDelta(rev, ms)
        changed_ids = [r.folder_id for r in rows if not r.gone and r.folder_id in visible]
        loaded = folder_ops.load_folders(self.tx, changed_ids)
        delta.changed = [self.viewer.access(loaded[i], visible[i]) for i in sorted(loaded)]
        delta.gone = sorted(r.folder_id for r in rows if r.folder_id not in loaded)
        return delta

    def folder_revision(self, folder_id: int) -> tuple[int, int]:
        """(revision, ms) of the newest change in or to the folder: a CTag that moves on every change."""
        c, fc = s.changes, s.folder_changes
        here = and_(c.c.tenant_id == self.tx.tenant_id, c.c.folder_id == folder_id)
        # one subquery per maximum, so each reads the end of its own index (ix_changes_rev, ix_changes_ms)
        # instead of every change row of the folder
        objects_row = self.tx.conn.execute(select(select(func.max(c.c.rev)).where(here).scalar_subquery(),
                                                  select(func.max(c.c.ms)).where(here).scalar_subquery())).one()
        folder_row = self.tx.conn.execute(select(fc.c.rev, fc.c.ms).where(
            and_(fc.c.tenant_id == self.tx.tenant_id, fc.c.folder_id == folder_id))).one_or_none()
        revs = [(int(objects_row[0]), int(objects_row[1]))] if objects_row[0] is not None else []
        if folder_row is not None:
            revs.append((int(folder_row.rev), int(folder_row.ms)))
        return max(revs) if revs else (0, 0)
