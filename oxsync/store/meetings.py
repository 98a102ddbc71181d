"""Meeting and delegation semantics: one object, placed in every internal participant's folder.

What must hold (OXtender manual ch. 2 and 7):
- groups expand to their members when saved; resources and external addresses are kept as given;
- each internal user participant gets the object in their default calendar (tasks: default task
  folder) unless they already placed it elsewhere; the owner of a private home folder is always one;
- each participant's confirmation, message and reminder are theirs: an organizer's save keeps them;
  only `confirm()` (by the participant) changes a confirmation;
- a participant who deletes declines and loses only their own placement.
"""

from __future__ import annotations

from sqlalchemy import Integer, and_, bindparam, select, update

from oxsync.model import Appointment, Folder, FolderType, Module, Task
from oxsync.model.appointment import Confirmation, Participant, ParticipantKind
from oxsync.model.timeutil import datetime_from_ms, to_ms
from oxsync.store import accounts, objects
from oxsync.store import folders as folder_ops
from oxsync.store import schema as s
from oxsync.store.errors import InvalidData, NotFound, PermissionDenied
from oxsync.store.membership import record_everywhere
from oxsync.store.tx import Tx
from oxsync.store.validate import check_text

Scheduled = Appointment | Task
MODULE_OF = {Appointment: Module.CALENDAR, Task: Module.TASK}


def expand_groups(tx: Tx, parts: list[Participant]) -> list[Participant]:
    """Replace group participants by their members; drop duplicate users (first entry wins)."""
    out: list[Participant] = []
    seen_users: set[int] = set()
    for p in parts:
        if p.kind == ParticipantKind.GROUP:
            try:
                members = accounts.get_group(tx, p.entity).members
            except NotFound as exc:
                raise InvalidData(f"unknown group {p.entity}", field="participants") from exc
            candidates = [Participant(ParticipantKind.USER, m) for m in members]
        else:
            candidates = [p]
        for c in candidates:
            if c.kind == ParticipantKind.USER:
                if c.entity in seen_users:
                    continue
                seen_users.add(c.entity)
            out.append(c)
    return out


def _validate(tx: Tx, parts: list[Participant]) -> None:
    for p in parts:
        if p.kind == ParticipantKind.USER:
            if _resolved_here(tx, p):
                continue
            try:
                user = accounts.get_user(tx, p.entity)
            except NotFound as exc:
                raise InvalidData(f"unknown user {p.entity}", field="participants") from exc
            p.email = p.email or user.email
            p.display_name = p.display_name or user.display_name
        elif p.kind == ParticipantKind.RESOURCE:
            try:
                resource = accounts.get_resource(tx, p.entity)
            except NotFound as exc:
                raise InvalidData(f"unknown resource {p.entity}", field="participants") from exc
            p.email, p.display_name = resource.email, p.display_name or resource.display_name
        elif p.is_external:
            if "@" not in p.email:
                raise InvalidData("an external participant needs an e-mail address", field="participants")
            p.entity = 0
            p.display_name = p.display_name or p.email
        else:
            raise InvalidData(f"participant kind {p.kind.name} is not supported here", field="participants")


def _resolved_here(tx: Tx, p: Participant) -> bool:
    """A user participant with its address and name given, whose address this transaction resolved to
    that user (`principals.find_principals`, a CalDAV write's ATTENDEEs): it exists and nothing of its row
    is needed, so it is not read again."""
    return bool(p.email and p.display_name) and tx.resolved_addresses.get(p.email.strip().lower()) == p.entity


_p = s.participants
_STORED_PARTICIPANTS = select(_p).where(and_(_p.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                             _p.c.object_id == bindparam("k_object", type_=Integer))).order_by(_p.c.position)
"""Built once: every update of a meeting reads its stored participants."""


def _stored_participants(tx: Tx, object_id: int) -> list[Participant]:
    rows = tx.conn.execute(_STORED_PARTICIPANTS, {"k_tenant": tx.tenant_id, "k_object": object_id}).all()
    return [objects.participant_of_row(r) for r in rows]


def prepare(tx: Tx, actor: int, obj: Scheduled, home_folder_id: int, previous_id: int | None,
            home: Folder | None = None, previous: list[Participant] | None = None) -> None:
    """Normalise `obj.participants` before it is written (expansion, placement, per-user state). `home`:
    the home folder when the caller loaded it in this transaction (else its kind and owner are read);
    `previous`: the stored participants of `previous_id` when the caller read them in it (else read)."""
    if not obj.participants:
        return
    parts = expand_groups(tx, obj.participants)
    _validate(tx, parts)
    if home is not None and home.id == home_folder_id:
        private, home_owner = home.type == FolderType.PRIVATE, home.owner
    else:
        private, home_owner = folder_ops.home_kind(tx, home_folder_id)  # not the folder's permissions
    module = MODULE_OF[type(obj)]
    owner = home_owner if private else None
    if owner is not None and not any(p.kind == ParticipantKind.USER and p.entity == owner for p in parts):
        parts.insert(0, Participant(ParticipantKind.USER, owner))
        _validate(tx, parts[:1])
    if previous is None:
        previous = _stored_participants(tx, previous_id) if previous_id else []
    before = {p.entity: p for p in previous
              if p.kind == ParticipantKind.USER}
    own_alarm = _own_alarm(obj)
    for p in parts:
        if p.kind != ParticipantKind.USER:
            continue
        old = before.get(p.entity)
        if old is not None:  # keep what belongs to that participant
            p.confirmation, p.message, p.folder_id, p.alarm = old.confirmation, old.message, old.folder_id, old.alarm
        else:
            p.confirmation = Confirmation.ACCEPT if p.entity == actor else Confirmation.NONE
            p.message = ""
            p.alarm = None
            if p.entity == owner:
                p.folder_id = home_folder_id
            elif private:
                p.folder_id = folder_ops.default_folder_id(tx, p.entity, module)
            else:
                p.folder_id = None  # public folder: everyone sees it there
        if p.entity == actor:
            p.alarm = own_alarm
    if len(parts) > tx.settings.limits.max_participants:
        raise InvalidData("too many participants", field="participants")
    obj.participants = parts


def _own_alarm(obj: Scheduled) -> int | None:
    if isinstance(obj, Task):
        return to_ms(obj.alarm) if obj.alarm else None
    return obj.alarm


def personalise(obj: Scheduled, viewer: int) -> None:
    """Show the viewer their own reminder (participants each have one)."""
    for p in obj.participants:
        if p.kind == ParticipantKind.USER and p.entity == viewer:
            if isinstance(obj, Task):
                obj.alarm = datetime_from_ms(p.alarm) if p.alarm is not None else None
            else:
                obj.alarm = p.alarm
            return


def participant_row(tx: Tx, object_id: int, user_id: int):
    p = s.participants
    return tx.conn.execute(select(p).where(and_(
        p.c.tenant_id == tx.tenant_id, p.c.object_id == object_id, p.c.kind == int(ParticipantKind.USER),
        p.c.entity == user_id,
    ))).one_or_none()


def confirm(tx: Tx, user_id: int, object_id: int, confirmation: Confirmation, message: str = "") -> None:
    """Set the caller's own confirmation; everyone who sees the object gets the change."""
    if participant_row(tx, object_id, user_id) is None:
        raise PermissionDenied(f"user {user_id} is not a participant of object {object_id}")
    message = check_text(message, "confirm_message", tx.settings.limits)
    p = s.participants
    tx.conn.execute(update(p).where(and_(
        p.c.tenant_id == tx.tenant_id, p.c.object_id == object_id, p.c.kind == int(ParticipantKind.USER),
        p.c.entity == user_id,
    )).values(confirmation=int(confirmation), message=message[:4000]))
    record_everywhere(tx, [object_id], "confirm", actor=user_id)


def decline_and_leave(tx: Tx, user_id: int, object_id: int, folder_id: int) -> None:
    """A participant's delete: they decline and the object leaves only their own folder."""
    p = s.participants
    tx.conn.execute(update(p).where(and_(
        p.c.tenant_id == tx.tenant_id, p.c.object_id == object_id, p.c.kind == int(ParticipantKind.USER),
        p.c.entity == user_id,
    )).values(confirmation=int(Confirmation.DECLINE), folder_id=None))
    tx.record_object_change(folder_id, object_id, gone=True, kind="decline")
    record_everywhere(tx, [object_id], "confirm", actor=user_id)  # the others see the decline


def is_organizer(obj: Scheduled, user_id: int) -> bool:
    organizer = getattr(obj, "organizer_id", None)
    return obj.created_by == user_id or organizer == user_id
