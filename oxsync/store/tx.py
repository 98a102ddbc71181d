"""One transaction against one tenant: revision stamping, id allocation, change rows.

Every write transaction bumps the tenant's revision exactly once by updating the tenant row. That
row stays locked until commit (PostgreSQL row lock; SQLite takes the database write lock at BEGIN
IMMEDIATE), so a revision that a reader can see as committed has no uncommitted predecessor: commit
order equals revision order and deltas never skip a change.

On PostgreSQL the object work of a write (object id, the object's side tables and time ranges, the
owner's usage) is done before that lock (`late_stamp`): rows that must carry the revision's stamp are
written or fixed up the moment the stamp is taken, the common ones in the bump's own statement
(`pending`, store/stamping.py) and the others by `at_stamp` callbacks, so writers of different users
overlap in their object work and queue only for the short stamped tail of the transaction
(docs/store.md, "Revision lock")."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, Connection, Integer, and_, bindparam, case, insert, or_, select, update

from oxsync.config import Settings
from oxsync.store import schema as s
from oxsync.store import stamping
from oxsync.store.errors import NotFound, QuotaExceeded

FIRST_IDS = {"folder": 20, "object": 1, "user": 1, "group": 1, "resource": 1, "attachment": 1}
"""First id handed out per sequence; folders 0-19 are OX system folders, group 0 is "all users"."""


def now_ms() -> int:
    return int(time.time() * 1000)


R = TypeVar("R")


def read_once(read: Callable[..., R]) -> Callable[..., R]:
    """A lookup `read(tx, key...)` answered from `tx.repeated_reads` while that is set (a bulk load),
    else read as before; a failed read (NotFound) is not remembered."""
    @functools.wraps(read)
    def lookup(tx: Tx, *args: Any) -> R:
        memo = tx.repeated_reads
        if memo is None:
            return read(tx, *args)
        key = (read.__qualname__, *args)
        if key not in memo:
            memo[key] = read(tx, *args)
        return cast(R, memo[key])
    return lookup


@dataclass
class Stamp:
    rev: int
    ms: int


IdSource = Callable[[int, str], int]
"""(tenant id, sequence name) -> a new id, allocated outside the caller's transaction."""


class Tx:
    """A live transaction bound to a tenant. Not thread-safe: one thread, one request."""

    def __init__(self, conn: Connection, tenant_id: int, settings: Settings, writable: bool, *,
                 ids: IdSource | None = None) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.settings = settings
        self.writable = writable
        self._stamp: Stamp | None = None
        self.late_stamp = conn.dialect.name == "postgresql"
        """Take the tenant lock as late as possible (PostgreSQL); SQLite holds its write lock from BEGIN."""
        self._ids = ids
        self.at_stamp: list[Callable[[Stamp], None]] = []
        """Writes waiting for this transaction's stamp (object rows written before it); run when it is taken."""
        self.pending = stamping.Pending()
        """The common writes waiting for the stamp (usage, object stamps, change rows): on PostgreSQL they
        join the revision bump's statement (store/stamping.py); `at_stamp` runs after it."""
        self.tenant_bytes = 0
        """Growth of the tenant's usage not yet applied: added (quota-guarded) with the revision bump."""
        self.written_objects: set[int] = set()
        """Objects this transaction inserted or rewrote and did not delete (they exist, with a new version)."""
        self.object_writes = 0
        """Object rows inserted, rewritten or deleted so far: a reader's memo of them is valid while it stays."""
        self.written_rows: dict[int, Any] = {}
        """Object id -> what this transaction last wrote of it (`objects.Written`): a DAV PUT answers from it
        instead of reading its object back."""
        self.after_commit: list[Callable[[Connection], None]] = []
        """Best-effort writes a read transaction asks for (cache fills), run in a write transaction of
        their own after it commits; skipped when the database is busy."""
        self.touched_folders: set[int] = set()
        """Folders whose content or definition changed; published to the change bus after commit."""
        self.changed_objects: dict[int, set[int]] = {}
        """folder id -> objects changed there by this transaction and still in it (their change rows):
        what `Store.add_object_listener` hears after commit (served texts to render)."""
        self.closing_texts: dict[tuple[int, int, str], dict[str, Any]] = {}
        """PostgreSQL: served-text rows to upsert at the end of this write transaction, keyed by (object,
        viewer, variant): in one statement with its NOTIFY (store/notify.py), else alone before COMMIT
        (`bulk.write_closing_texts`). Nothing reads them back in the transaction that wrote them."""
        self.texts_written: set[int] = set()
        """Objects whose served text this write transaction stored (a DAV PUT's own): not to render again."""
        self.changed_accounts: set[int] = set()
        """Users whose login, password, suspension, protocol rights or existence changed: every node's
        verified-login cache forgets them after commit (`Store.add_account_listener`, NOTIFY)."""
        self.queued_mail = False
        """Mail was enqueued (store/outbound.py): the workers are woken after commit."""
        self.account_rows: dict[int, tuple[bool, bool]] = {}
        """User id -> (public_folders, sharing) of the user's row as `accounts.get_user` last read it in this
        transaction (every DAV request reads its own account): `Viewer.account_rights` takes it rather than
        reading the row again when no group is needed (a CalDAV write's invitation check)."""
        self.resolved_addresses: dict[str, int | None] = {}
        """Lowercased login or address -> the user it names (None: no user), as `principals.find_principals`
        answered in this transaction; `accounts.find_user_id` answers from it. Only a CalDAV write asks
        `find_principals` (its body's ORGANIZER/ATTENDEE, before the write), and it changes no login or
        address: the iTIP step does not resolve the organizer again."""
        self.repeated_reads: dict[tuple[object, ...], object] | None = None
        """While a bulk load runs (store/bulk_load.py): answers of the `@read_once` lookups it repeats for
        every object (users, folders), which none of its writes changes. None: every call reads."""

    @property
    def stamp(self) -> Stamp:
        """The revision and OX millisecond stamp of this write transaction (allocated on first use:
        from here to commit, this transaction holds the tenant's revision lock)."""
        if self._stamp is None:
            if not self.writable:
                raise RuntimeError("write attempted in a read-only store transaction")
            grow, self.tenant_bytes = self.tenant_bytes, 0
            params = {"tenant": self.tenant_id, "now": now_ms(), "grow": grow}
            pending = self.pending
            if self.late_stamp:  # PostgreSQL: the bump, its revision_log row and the pending writes in one round trip
                self.pending = stamping.Pending()
                statement = stamping.statement(_bump(_sign(grow)), *stamping.shape(pending))
                row = self.conn.execute(statement, {**params, **stamping.parameters(pending)}).one_or_none()
            else:
                row = self.conn.execute(_bump(_sign(grow)), params).one_or_none()
            if row is None:
                t = s.tenants
                quota = self.conn.execute(select(t.c.quota_bytes).where(t.c.id == self.tenant_id)).one_or_none()
                if quota is None:
                    raise NotFound(f"tenant {self.tenant_id} does not exist")
                raise QuotaExceeded(f"tenant quota of {quota.quota_bytes} bytes exceeded")
            self._stamp = Stamp(int(row.rev), int(row.last_ms))
            for i, user_id in enumerate(pending.usage if self.late_stamp else ()):
                if not getattr(row, f"u{i}"):
                    _refuse_usage(self.conn, self.tenant_id, user_id)
            if not self.late_stamp:
                self.conn.execute(_INSERT_REVISION, {"tenant_id": self.tenant_id, "rev": row.rev, "ms": row.last_ms})
            callbacks, self.at_stamp = self.at_stamp, []
            for write in callbacks:
                write(self._stamp)
        return self._stamp

    @property
    def stamped(self) -> Stamp | None:
        """The stamp this transaction took, None while it has written nothing (reading it takes none):
        the commit path tells the change listeners about a write only."""
        return self._stamp

    @property
    def drafting(self) -> bool:
        """Object work may run before the stamp: its rows get the stamp later, through `at_stamp`."""
        return self.late_stamp and self._stamp is None

    def finish(self) -> None:
        """Before commit: a transaction that wrote rows waiting for the stamp takes it now."""
        if self.at_stamp or self.tenant_bytes or self.pending:
            self.stamp  # noqa: B018

    def next_id(self, sequence: str) -> int:
        """Allocate the next id of `sequence` in this tenant: object ids on PostgreSQL from the
        store's id source (outside this transaction, so that no lock is held for it), every other id
        in this transaction behind the tenant row lock."""
        if not self.writable:
            raise RuntimeError("write attempted in a read-only store transaction")
        if self.late_stamp:
            if sequence == "object" and self._ids is not None:
                return self._ids(self.tenant_id, sequence)
            self.stamp  # noqa: B018 - serialises id allocation behind the tenant row lock
        # SQLite: this transaction holds the database write lock since BEGIN IMMEDIATE
        allocated = self.conn.execute(
            _ALLOCATE, {"k_tenant": self.tenant_id, "k_name": sequence, "count": 1}).scalar_one_or_none()
        if allocated is not None:
            return int(allocated) - 1
        first = FIRST_IDS[sequence]
        self.conn.execute(insert(s.sequences).values(tenant_id=self.tenant_id, name=sequence, next_value=first + 1))
        return first

    def next_ids(self, sequence: str, count: int) -> Sequence[int]:
        """`count` consecutive new ids of `sequence` in one statement (a bulk load), allocated as
        `next_id` does: object ids on PostgreSQL from the id source, the others behind the tenant lock."""
        if not self.writable:
            raise RuntimeError("write attempted in a read-only store transaction")
        take = getattr(self._ids, "take", None)
        if self.late_stamp and sequence == "object" and take is not None:
            taken: list[int] = take(self.tenant_id, sequence, count)
            return taken
        if count <= 0:
            return range(0)
        if self.late_stamp:
            self.stamp  # noqa: B018 - serialises id allocation behind the tenant row lock
        seq = s.sequences
        after = self.conn.execute(
            _ALLOCATE, {"k_tenant": self.tenant_id, "k_name": sequence, "count": count}).scalar_one_or_none()
        if after is not None:
            return range(int(after) - count, int(after))
        first = FIRST_IDS[sequence]
        self.conn.execute(insert(seq).values(tenant_id=self.tenant_id, name=sequence, next_value=first + count))
        return range(first, first + count)

    def record_object_change(self, folder_id: int, object_id: int, gone: bool, kind: str, *, new: bool = False,
                             name: str | None = None) -> None:
        """Upsert the (folder, object) change row to this transaction's revision (`new`: no row can exist yet).

        A tombstone keeps the object's DAV resource name (`name`, else read from the still existing row;
        "" = it had none), so every node can report the deleted member by its href."""
        stamp = self.stamp
        if gone and name is None:
            o = s.objects
            found = self.conn.execute(select(o.c.resource_name).where(
                and_(o.c.tenant_id == self.tenant_id, o.c.id == object_id))).first()
            name = (found.resource_name or "") if found is not None else None
        values = {"rev": stamp.rev, "ms": stamp.ms, "gone": gone, "kind": kind,
                  "resource_name": name if gone else None}
        key = {"k_tenant": self.tenant_id, "k_folder": folder_id, "k_object": object_id}
        if new or self.conn.execute(_UPDATE_CHANGE, {**key, **values}).rowcount == 0:
            self.conn.execute(_INSERT_CHANGE, {"tenant_id": self.tenant_id, "folder_id": folder_id,
                                               "object_id": object_id, **values})
        self._note_change(folder_id, object_id, gone)

    def _note_change(self, folder_id: int, object_id: int, gone: bool) -> None:
        """What the commit tells listeners: the folders touched, and the objects changed in them."""
        self.touched_folders.add(folder_id)
        if gone:
            self.changed_objects.get(folder_id, set()).discard(object_id)
        else:
            self.changed_objects.setdefault(folder_id, set()).add(object_id)

    def record_present_change(self, folder_id: int, object_id: int, kind: str, *, new: bool = False) -> None:
        """`record_object_change` of an object still in the folder: while the stamp is still to be taken
        (PostgreSQL), the row joins the stamp's statement (`pending`)."""
        if not self.drafting:
            self.record_object_change(folder_id, object_id, gone=False, kind=kind, new=new)
            return
        self.pending.change(folder_id, object_id, kind, new)
        self._note_change(folder_id, object_id, gone=False)

    def record_folder_change(self, folder_id: int, parent_id: int, gone: bool) -> None:
        stamp = self.stamp
        fc = s.folder_changes
        key = and_(fc.c.tenant_id == self.tenant_id, fc.c.folder_id == folder_id)
        values = {"rev": stamp.rev, "ms": stamp.ms, "gone": gone, "parent_id": parent_id}
        if self.conn.execute(update(fc).where(key).values(**values)).rowcount == 0:
            self.conn.execute(insert(fc).values(tenant_id=self.tenant_id, folder_id=folder_id, **values))
        self.touched_folders.add(folder_id)
        self.touched_folders.add(parent_id)

    def bump_folder_contents(self, folder_id: int) -> None:
        """Re-stamp every object row of a folder: its visibility may have changed for some viewers."""
        stamp = self.stamp
        c = s.changes
        self.conn.execute(
            update(c)
            .where(and_(c.c.tenant_id == self.tenant_id, c.c.folder_id == folder_id))
            .values(rev=stamp.rev, ms=stamp.ms)
        )
        self.touched_folders.add(folder_id)


_seq = s.sequences
_ALLOCATE = update(_seq).where(and_(_seq.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                    _seq.c.name == bindparam("k_name"))).values(
    next_value=_seq.c.next_value + bindparam("count", type_=BigInteger)).returning(_seq.c.next_value)
"""`count` ids of a sequence (its next value after them), built once: SQLite allocates every object id with it."""
_c = s.changes
_UPDATE_CHANGE = update(_c).where(and_(_c.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                       _c.c.folder_id == bindparam("k_folder", type_=Integer),
                                       _c.c.object_id == bindparam("k_object", type_=Integer)))
"""A (folder, object) change row to a new revision; SET from the parameters. Built once, as the next two."""
_INSERT_CHANGE = insert(_c)
_INSERT_REVISION = insert(s.revision_log)


def _refuse_usage(conn: Connection, tenant_id: int, user_id: int) -> None:
    """A user's usage growth matched no row: over the user's quota (QuotaExceeded), or no such user (nothing)."""
    u = s.users
    exists = conn.execute(select(u.c.quota_bytes).where(and_(u.c.tenant_id == tenant_id, u.c.id == user_id))).first()
    if exists is not None:
        raise QuotaExceeded(f"user quota of {exists.quota_bytes} bytes exceeded")


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


@functools.cache
def _bump(grow: int) -> Any:
    """The revision bump of the tenant row, returning (rev, last_ms); `grow` is the sign of the usage
    growth it also applies (0: none; 1: guarded by the tenant's quota). Built once per sign (building a
    statement costs more CPU than running it); parameters tenant, now, grow."""
    t = s.tenants
    now = bindparam("now", type_=BigInteger)
    values: dict[str, object] = {"rev": t.c.rev + 1, "last_ms": case((t.c.last_ms < now, now), else_=t.c.last_ms + 1)}
    guard = t.c.id == bindparam("tenant", type_=Integer)
    if grow:
        values["usage_bytes"] = t.c.usage_bytes + bindparam("grow", type_=BigInteger)
        if grow > 0:
            guard = and_(guard, or_(t.c.quota_bytes.is_(None),
                                    t.c.usage_bytes + bindparam("grow", type_=BigInteger) <= t.c.quota_bytes))
    return update(t).where(guard).values(**values).returning(t.c.rev, t.c.last_ms)
