"""The hosting FAQ's per-account rights, enforced for every dialect inside `UserSession`.

- `public_folders` off: every public folder (other than the system ones, e.g. the global address
  book) is invisible to the account; the public root stays visible but closed to new subfolders.
- `sharing` off ("droit de partages collaboratifs"): the account may not invite other people to a
  meeting, delegate a task, nor grant anyone a right on a folder. Removing shares and booking
  resources stay possible. What already exists is left alone: only what is newly granted is refused.

A change of `public_folders` records a folder change on every public folder, so each client's next
hierarchy delta shows the folders appearing or gone, on every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select

from oxsync.model import FolderType, Permission, Rights
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.folder import FIRST_REAL_FOLDER, PUBLIC_ROOT
from oxsync.store import schema as s
from oxsync.store.errors import PermissionDenied
from oxsync.store.tx import Tx

NOT_INVITATIONS = frozenset({ParticipantKind.RESOURCE, ParticipantKind.RESOURCE_GROUP})
"""Participants that are bookings, not invitations of other people."""

SHARING_REFUSED = "collaborative sharing is not enabled for this account"


@dataclass(frozen=True)
class AccountRights:
    public_folders: bool = True
    sharing: bool = True


_U, _GM = s.users, s.group_members
_GROUPS_AND_RIGHTS = select(_U.c.public_folders, _U.c.sharing, _GM.c.group_id).select_from(
    _U.outerjoin(_GM, and_(_GM.c.tenant_id == _U.c.tenant_id, _GM.c.user_id == _U.c.id))).where(
    and_(_U.c.tenant_id == bindparam("tenant"), _U.c.id == bindparam("user"))).order_by(_GM.c.group_id)
"""Built once (building a statement costs more than running it here): the user's row joined with their
group memberships, one row per group (one with a NULL group for a user in none)."""


def groups_and_account_rights(tx: Tx, user_id: int) -> tuple[list[int], AccountRights]:
    """The groups the user is in (besides "all users") and the account's rights, in one statement: every
    rights check needs both. An unknown user is in no group and has the default rights."""
    rows = tx.conn.execute(_GROUPS_AND_RIGHTS, {"tenant": tx.tenant_id, "user": user_id}).all()
    if not rows:
        return [], AccountRights()
    groups = [int(r.group_id) for r in rows if r.group_id is not None]
    return groups, AccountRights(bool(rows[0].public_folders), bool(rows[0].sharing))


def public_folder_ids(tx: Tx) -> frozenset[int]:
    """Public folders an account without the right must not see (system folders excepted)."""
    f = s.folders
    rows = tx.conn.execute(select(f.c.id).where(and_(
        f.c.tenant_id == tx.tenant_id, f.c.type == FolderType.PUBLIC.value, f.c.id >= FIRST_REAL_FOLDER)))
    return frozenset(r.id for r in rows)


def restrict(rights: dict[int, Rights], hidden: frozenset[int]) -> dict[int, Rights]:
    """Effective rights with the hidden public folders removed and the public root closed."""
    out = {fid: (Rights() if fid in hidden else r) for fid, r in rights.items()}
    if PUBLIC_ROOT in out and out[PUBLIC_ROOT].can_see_folder:
        out[PUBLIC_ROOT] = Rights(2, 0, 0, 0, False)
    return out


def touch_public_folders(tx: Tx) -> None:
    f = s.folders
    for row in tx.conn.execute(select(f.c.id, f.c.parent_id).where(and_(
            f.c.tenant_id == tx.tenant_id, f.c.type == FolderType.PUBLIC.value, f.c.id >= FIRST_REAL_FOLDER))).all():
        tx.record_folder_change(row.id, row.parent_id, gone=False)


def check_new_grants(actor: int, before: Iterable[Permission], after: Iterable[Permission]) -> None:
    """Without the sharing right, no entry for anyone else may be added or widened."""
    old = {(p.entity, p.is_group): p.rights for p in before}
    for entry in after:
        key = (entry.entity, entry.is_group)
        if key == (actor, False):
            continue
        previous = old.get(key)
        if previous is None or previous.merge(entry.rights) != previous:
            raise PermissionDenied(SHARING_REFUSED)


def check_new_participants(actor: int, allowed_users: set[int], before: Iterable[Participant],
                           after: Iterable[Participant]) -> None:
    """Without the sharing right, no person (user, group, external address) may be newly invited;
    `allowed_users` are the actor and the owner of the folder the object lives in."""
    def key(p: Participant) -> tuple[int, int, str]:
        return int(p.kind), int(p.entity or 0), (p.email or "").lower()

    known = {key(p) for p in before}
    for p in after:
        kind = ParticipantKind(p.kind)
        if kind in NOT_INVITATIONS or key(p) in known:
            continue
        if kind == ParticipantKind.USER and p.entity in allowed_users:
            continue
        raise PermissionDenied(SHARING_REFUSED)
