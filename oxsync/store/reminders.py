"""Reminders mailed when due, and the daily digest of current and upcoming tasks (OXtender manual §1.2:
"Courriels de rappel pour les tâches en cours et à venir").

What must hold:
- `mail_alarms` holds one row per (object, user) with the absolute time its reminder falls due,
  rewritten whenever the object is saved (task reminders of the owner or of each participant; an
  appointment's reminder only when its alarm asks for e-mail, VALARM ACTION:EMAIL), removed with it;
  a series has one row for its next occurrence's alarm (delete and change exceptions skipped: a changed
  occurrence is its own object with its own row), moved on to the following one when it is claimed;
- `scan` claims due rows (PostgreSQL SKIP LOCKED; any node may scan) and queues one mail per
  (object, user, alarm time) in the same transaction that marks the row done: whichever node claims
  it, the key makes it one mail; a reminder found more than `reminder_max_late_hours` late is skipped;
- per-user options live in the user's settings document (`mail_options`): task reminder mails (on by
  default: the reminder was asked for), the daily digest hour (UTC, off by default).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, delete, insert, select, update

from oxsync.config import LimitSettings
from oxsync.model import Appointment, Module, Task
from oxsync.model.appointment import ParticipantKind
from oxsync.model.task import TaskStatus
from oxsync.model.timeutil import to_ms
from oxsync.recurrence import expand
from oxsync.store import accounts, dataclass_json, objects, outbound
from oxsync.store import schema as s
from oxsync.store.engine import WRITE
from oxsync.store.errors import NotFound
from oxsync.store.tx import Tx, now_ms
from oxsync.store.viewer import Viewer

log = logging.getLogger("oxsync.store.reminders")

REMINDER, DIGEST = "reminder", "digest"
OPTIONS_KEY = "mail_options"
DEFAULT_OPTIONS: dict[str, Any] = {"reminder_mails": True, "digest_hour": None, "collect_addresses": False}
SCAN_BATCH = 200


def options(tx: Tx, user_id: int) -> dict[str, Any]:
    stored = accounts.user_settings(tx, user_id).get(OPTIONS_KEY) or {}
    return {**DEFAULT_OPTIONS, **{k: v for k, v in stored.items() if k in DEFAULT_OPTIONS}}


def set_options(tx: Tx, user_id: int, **changes: Any) -> dict[str, Any]:
    unknown = set(changes) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown mail options {sorted(unknown)}")
    hour = changes.get("digest_hour")
    if hour is not None and not (isinstance(hour, int) and 0 <= hour <= 23):
        raise ValueError("digest_hour is an hour of the day (0-23, UTC) or None")
    settings = accounts.user_settings(tx, user_id)
    merged = {**options(tx, user_id), **changes}
    settings[OPTIONS_KEY] = merged
    accounts.store_user_settings(tx, user_id, settings)
    return merged


def _email_alarm(obj: Appointment) -> bool:
    action = obj.extra.get("VALARM:ACTION", "")
    return "EMAIL" in action.upper()


def _due(obj: Task | Appointment) -> list[tuple[int, int]]:
    """(user, due ms) of every reminder of this object that is to be mailed."""
    if isinstance(obj, Task):
        users: list[tuple[int, int | None]] = [
            (p.entity, p.alarm) for p in obj.participants if p.kind == ParticipantKind.USER and p.alarm]
        if not obj.participants and obj.alarm is not None and obj.created_by is not None:
            users = [(obj.created_by, to_ms(obj.alarm))]
        return [(u, int(ms)) for u, ms in users if ms is not None]
    if not _email_alarm(obj) or obj.start_date is None or obj.alarm is None or obj.created_by is None:
        return []
    if obj.is_series:
        due = next_series_alarm(obj, now_ms())
        return [(obj.created_by, due)] if due is not None else []
    start = to_ms(obj.start_date)
    return [(obj.created_by, start - obj.alarm * 60_000)] if start is not None else []


def next_series_alarm(obj: Appointment, after_ms: int, limits: Any = None) -> int | None:
    """The alarm time (ms) of the first occurrence whose alarm falls after `after_ms`, within the
    recurrence window; None when the series has no such occurrence."""
    assert obj.recurrence is not None and obj.start_date is not None and obj.alarm is not None
    lead = timedelta(minutes=obj.alarm)
    low = datetime.fromtimestamp(after_ms / 1000, UTC) + lead
    try:
        found = expand(obj.start_date, obj.end_date, obj.recurrence, obj.timezone or "UTC", window_start=low,
                       window_end=low + timedelta(days=(limits or LimitSettings()).recurrence_window_future_days),
                       max_instances=2, delete_exceptions=[*obj.delete_exceptions, *obj.change_exceptions])
    except (ValueError, OverflowError):
        return None
    for begin, _ in found:
        begin_ms = to_ms(begin)
        due = begin_ms - obj.alarm * 60_000 if begin_ms is not None else None
        if due is not None and due > after_ms:
            return due
    return None


_ma = s.mail_alarms
_ALARMS_OF = select(_ma).where(and_(_ma.c.tenant_id == bindparam("k_tenant", type_=Integer),
                                    _ma.c.object_id == bindparam("k_object", type_=Integer)))
"""Built once: every save of an event or task with a reminder (and every update) reads them."""


def sync_alarms(tx: Tx, obj: Task | Appointment, *, new: bool = False) -> None:
    """Rewrite the object's reminder rows after a save (a changed time is a new reminder)."""
    assert obj.object_id is not None
    if new and not _due(obj):
        return
    ma = s.mail_alarms
    key = and_(ma.c.tenant_id == tx.tenant_id, ma.c.object_id == obj.object_id)
    existing = {(r.user_id, r.due_ms): r.done for r in tx.conn.execute(
        _ALARMS_OF, {"k_tenant": tx.tenant_id, "k_object": obj.object_id})}
    wanted = {(u, due) for u, due in _due(obj)}
    if set(existing) == wanted:
        return
    tx.conn.execute(delete(ma).where(key))
    for user_id, due in sorted(wanted):
        tx.conn.execute(insert(ma).values(tenant_id=tx.tenant_id, object_id=obj.object_id, user_id=user_id,
                                          due_ms=due, done=existing.get((user_id, due), False)))


def _claim_due(conn: Any, now: int) -> list[Any]:
    ma = s.mail_alarms
    query = select(ma).where(and_(ma.c.done.is_(False), ma.c.due_ms <= now)).order_by(ma.c.due_ms).limit(SCAN_BATCH)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query))


def _reminder_payload(obj: Task | Appointment, user: Any, due_ms: int) -> dict[str, Any]:
    return {"object": dataclass_json.to_dict(obj), "type": "task" if isinstance(obj, Task) else "appointment",
            "to": [user.display_name, user.email], "due_ms": due_ms}


def scan(store: Any, now: int | None = None, settings: Any = None) -> int:
    """Queue every due reminder; returns the number of mails queued. Safe on any number of nodes."""
    now = now_ms() if now is None else now
    settings = settings or store.settings
    late_ms = settings.outbound.reminder_max_late_hours * 3_600_000
    queued = 0
    while True:
        with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            rows = _claim_due(conn, now)
            ma = s.mail_alarms
            for row in rows:
                tx = Tx(conn, row.tenant_id, settings, writable=True)
                sent, next_due = _one(tx, row, now, late_ms)
                queued += sent
                following = {"done": True} if next_due is None else {"due_ms": next_due, "done": False}
                conn.execute(update(ma).where(and_(ma.c.tenant_id == row.tenant_id, ma.c.object_id == row.object_id,
                                                   ma.c.user_id == row.user_id, ma.c.due_ms == row.due_ms))
                             .values(**following))
        if rows and queued:
            store.mail_queued()
        if len(rows) < SCAN_BATCH:
            return queued


def _one(tx: Tx, row: Any, now: int, late_ms: int) -> tuple[int, int | None]:
    """Queue the reminder of one claimed row: (mails queued, the row's next due time for a series)."""
    o = s.objects
    found = objects.load_objects(tx, tx.conn.execute(select(o).where(and_(o.c.tenant_id == tx.tenant_id,
                                                                           o.c.id == row.object_id))).all())
    obj = found[0] if found else None
    if not isinstance(obj, Appointment | Task):  # gone, or (never written so) a contact
        return 0, None
    next_due = None
    occurrence_ms = None
    if isinstance(obj, Appointment) and obj.is_series and obj.alarm is not None:
        next_due = next_series_alarm(obj, max(row.due_ms, now), tx.settings.limits)
        occurrence_ms = row.due_ms + obj.alarm * 60_000
    if row.due_ms < now - late_ms:
        log.info("reminder skipped: found too late", extra={"event": "reminder.late", "object": row.object_id})
        return 0, next_due
    try:
        user = accounts.get_user(tx, row.user_id)
    except NotFound:
        return 0, None
    if not user.active or not options(tx, user.id)["reminder_mails"]:
        return 0, next_due
    if isinstance(obj, Task) and obj.status == TaskStatus.DONE:
        return 0, None
    key = f"reminder:{tx.tenant_id}:{row.object_id}:{row.user_id}:{row.due_ms}"
    sender = tx.settings.outbound.reminder_from or user.email
    payload = _reminder_payload(obj, user, row.due_ms)
    if occurrence_ms is not None:
        payload["occurrence_start_ms"] = occurrence_ms
    queued = outbound.enqueue(tx, kind=REMINDER, key=key, sender=sender, recipients=[user.email],
                              subject=f"Reminder: {obj.title}"[:255], payload=payload, user_id=user.id)
    return int(queued), next_due


# ------------------------------------------------------------------------------ daily digest

def _task_folders(tx: Tx, user_id: int) -> list[int]:
    f = s.folders
    rows = tx.conn.execute(select(f.c.id).where(and_(f.c.tenant_id == tx.tenant_id, f.c.owner_id == user_id,
                                                     f.c.module == Module.TASK.value, f.c.type == "private")))
    return [r.id for r in rows]


def digest_tasks(tx: Tx, user_id: int, today: date, upcoming_days: int) -> tuple[list[Task], list[Task]]:
    """(current, upcoming) open tasks in the user's own task folders: current = started or overdue,
    upcoming = due within `upcoming_days`."""
    viewer = Viewer(tx, user_id)
    current: list[Task] = []
    upcoming: list[Task] = []
    horizon = today + timedelta(days=upcoming_days)
    for folder_id in _task_folders(tx, user_id):
        for task in viewer.list_objects(folder_id):
            if not isinstance(task, Task) or task.status == TaskStatus.DONE:
                continue
            if (task.start_date and task.start_date <= today) or (task.end_date and task.end_date <= today):
                current.append(task)
            elif task.end_date and task.end_date <= horizon:
                upcoming.append(task)
    order = lambda t: (t.end_date or date.max, t.title)  # noqa: E731
    return sorted(current, key=order), sorted(upcoming, key=order)


def scan_digests(store: Any, now: int | None = None, settings: Any = None) -> int:
    """Queue today's digest for every user whose digest hour has come (one per user and day)."""
    now = now_ms() if now is None else now
    settings = settings or store.settings
    moment = datetime.fromtimestamp(now / 1000, UTC)
    today = moment.date()
    queued = 0
    days = settings.outbound.digest_upcoming_days
    for tenant in store.tenants():
        with store.transaction(tenant.id, write=True) as tx:
            for user in accounts.list_users(tx):
                hour = options(tx, user.id)["digest_hour"]
                if hour is None or not user.active or moment.hour < hour:
                    continue
                current, upcoming = digest_tasks(tx, user.id, today, days)
                if not current and not upcoming:
                    continue
                payload = {"to": [user.display_name, user.email], "day": today.isoformat(),
                           "current": [dataclass_json.to_dict(t) for t in current],
                           "upcoming": [dataclass_json.to_dict(t) for t in upcoming], "created_ms": now}
                queued += outbound.enqueue(
                    tx, kind=DIGEST, key=f"digest:{tenant.id}:{user.id}:{today.isoformat()}",
                    sender=settings.outbound.reminder_from or user.email, recipients=[user.email],
                    subject=f"Tasks for {today.isoformat()}", payload=payload, user_id=user.id)
    return queued
