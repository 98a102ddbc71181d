"""A demo tenant with users, a group, a room and sample data, for `oxsync serve --demo`, tests and benchmarks.

`ensure_demo` is idempotent: every account, group, resource and object is looked up first (objects by
a fixed UID) and created only if missing, all in one write transaction, through `UserSession` as the
users themselves so that the store's rights checks and change tracking apply. Passwords are random;
when a file is given they persist there (mode 0600) so a restart shows the same ones.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from oxsync.model import (
    Appointment,
    Contact,
    DistributionListMember,
    Module,
    Participant,
    ParticipantKind,
    Recurrence,
    RecurrenceType,
    ResourceKind,
    Task,
    TaskPriority,
    TaskStatus,
)
from oxsync.model.appointment import MONDAY
from oxsync.store import accounts
from oxsync.store.api import Store
from oxsync.store.errors import NotFound
from oxsync.store.folders import default_folder_id
from oxsync.store.objects import AnyObject
from oxsync.store.session import UserSession
from oxsync.store.tx import Tx

DEMO_DOMAIN = "example.com"
DEMO_USERS = (("alice", "Alice", "Adams"), ("bob", "Bob", "Brown"), ("carol", "Carol", "Clark"))
DEMO_GROUP = ("team", "Team", ("alice", "bob", "carol"))
DEMO_ROOM = ("room1", "room1@example.com", "Meeting room 1", "8 seats, projector")
DEMO_ZONE = "Europe/Berlin"
DEMO_ADMIN = "alice"
"""Administers the demo tenant in the web console (also a platform admin, to show those pages)."""
UID_SUFFIX = "@demo.oxsync"


@dataclass
class DemoIds:
    """Ids the sample objects refer to."""

    users: dict[str, int]
    room: int

    def folder(self, tx: Tx, login: str, module: Module) -> int:
        found = default_folder_id(tx, self.users[login], module)
        if found is None:
            raise NotFound(f"{login} has no default {module.value} folder")
        return found


# ---------------------------------------------------------------- passwords


def load_passwords(path: Path | None) -> dict[str, str]:
    """`login password` lines; a missing file is empty."""
    if path is None or not path.exists():
        return {}
    pairs = (line.split(None, 1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def save_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Written with mode 0600 from the start: the file never exists world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{login} {password}\n" for login, password in sorted(passwords.items()))


# ---------------------------------------------------------------- principals


def _ensure_users(tx: Tx, known: dict[str, str]) -> dict[str, str]:
    """Create missing users; an existing user whose password is unknown gets a new one."""
    passwords: dict[str, str] = {}
    for login, first, last in DEMO_USERS:
        password = known.get(login) or secrets.token_urlsafe(12)
        user_id = accounts.find_user_id(tx, login)
        flags = {"tenant_admin": True, "platform_admin": True} if login == DEMO_ADMIN else None
        if user_id is None:
            accounts.create_user(tx, login, password, first_name=first, last_name=last, flags=flags)
        elif login not in known:
            accounts.update_user(tx, user_id, password=password, flags=flags)
        elif flags:
            accounts.update_user(tx, user_id, flags=flags)
        passwords[login] = password
    return passwords


def _ensure_principals(tx: Tx) -> DemoIds:
    users = {login: accounts.find_user_id(tx, login) for login, _, _ in DEMO_USERS}
    name, display, members = DEMO_GROUP
    if accounts.find_group_id(tx, name) is None:
        accounts.create_group(tx, name, display, [users[m] for m in members])  # type: ignore[misc]
    room_name, email, room_display, description = DEMO_ROOM
    room = accounts.find_resource_id(tx, room_name)
    if room is None:
        room = accounts.create_resource(tx, room_name, email, display_name=room_display, kind=ResourceKind.ROOM,
                                        description=description).id
    return DemoIds({k: v for k, v in users.items() if v is not None}, room)


# ---------------------------------------------------------------- sample objects


def _next_monday(today: date) -> date:
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)


def _at(day: date, hour: int) -> datetime:
    """`hour` o'clock in the demo zone on `day`, as UTC."""
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(DEMO_ZONE)).astimezone(UTC)


def _contacts() -> list[tuple[str, Contact]]:
    return [
        ("alice", Contact(uid="dave" + UID_SUFFIX, first_name="Dave", last_name="Miller", display_name="Dave Miller",
                          company="Miller & Sons", position="Purchasing", email1="dave@miller.example",
                          phone_business="+49 30 1234567", mobile1="+49 170 1234567",
                          business_street="Hauptstr. 1", business_postal_code="10115", business_city="Berlin",
                          business_country="Germany", birthday=date(1980, 4, 12))),
        ("alice", Contact(uid="erin" + UID_SUFFIX, first_name="Erin", last_name="Schmidt", display_name="Erin Schmidt",
                          email1="erin@schmidt.example", phone_home="+49 40 7654321", note="Met at the trade fair")),
        ("bob", Contact(uid="frank" + UID_SUFFIX, first_name="Frank", last_name="Weber", display_name="Frank Weber",
                        company="Weber GmbH", email1="frank@weber.example", email2="f.weber@private.example")),
    ]


def _distribution_list(members: list[Contact]) -> Contact:
    entries = [DistributionListMember(c.email1, c.display_name, c.object_id, c.folder_id, 1) for c in members]
    entries.append(DistributionListMember("info@partner.example", "Partner office"))
    return Contact(uid="customers" + UID_SUFFIX, display_name="Customers", distribution_list=entries)


def _appointments(tx: Tx, ids: DemoIds, monday: date) -> list[tuple[str, Appointment]]:
    alice, bob = ids.users["alice"], ids.users["bob"]
    meeting = Appointment(
        uid="review" + UID_SUFFIX, title="Project review", location="Meeting room 1", timezone=DEMO_ZONE,
        start_date=_at(monday + timedelta(days=2), 14), end_date=_at(monday + timedelta(days=2), 15), alarm=15,
        organizer="alice@" + DEMO_DOMAIN, organizer_id=alice, participants=[
            # the store places the meeting in bob's calendar and books the room
            Participant(ParticipantKind.USER, alice),
            Participant(ParticipantKind.USER, bob),
            Participant(ParticipantKind.RESOURCE, ids.room),
        ],
    )
    weekly = Appointment(
        uid="standup" + UID_SUFFIX, title="Weekly team meeting", timezone=DEMO_ZONE, location="Kitchen",
        start_date=_at(monday, 9), end_date=_at(monday, 9) + timedelta(minutes=30),
        recurrence=Recurrence(RecurrenceType.WEEKLY, interval=1, days=MONDAY),
    )
    holiday = Appointment(
        uid="offsite" + UID_SUFFIX, title="Team offsite", full_time=True, start_date=monday + timedelta(days=4),
        end_date=monday + timedelta(days=5), categories="Team",
    )
    dentist = Appointment(
        uid="dentist" + UID_SUFFIX, title="Dentist", private_flag=True, timezone=DEMO_ZONE,
        start_date=_at(monday + timedelta(days=1), 8), end_date=_at(monday + timedelta(days=1), 9),
    )
    return [("alice", meeting), ("alice", weekly), ("carol", holiday), ("bob", dentist)]


def _tasks(monday: date) -> list[tuple[str, Task]]:
    return [
        ("alice", Task(uid="report" + UID_SUFFIX, title="Prepare quarterly report", start_date=monday,
                       end_date=monday + timedelta(days=7), status=TaskStatus.IN_PROGRESS, percent_completed=25,
                       priority=TaskPriority.HIGH)),
        ("bob", Task(uid="travel" + UID_SUFFIX, title="Book travel for the conference",
                     end_date=monday + timedelta(days=10), note="Train preferred")),
        ("carol", Task(uid="contract" + UID_SUFFIX, title="Review the supplier contract", status=TaskStatus.DONE,
                       percent_completed=100, date_completed=_at(monday - timedelta(days=3), 16))),
    ]


def _ensure_object(tx: Tx, ids: DemoIds, login: str, module: Module, obj: AnyObject) -> AnyObject:
    session = UserSession(tx, ids.users[login])
    folder_id = ids.folder(tx, login, module)
    existing = session.find_by_uid(folder_id, obj.uid)
    return existing if existing is not None else session.create_object(folder_id, obj)


def _ensure_objects(tx: Tx, ids: DemoIds) -> None:
    monday = _next_monday(datetime.now(UTC).date())
    made = [(login, _ensure_object(tx, ids, login, Module.CONTACT, c)) for login, c in _contacts()]
    alice_contacts = [c for login, c in made if login == "alice"]
    _ensure_object(tx, ids, "alice", Module.CONTACT, _distribution_list(alice_contacts))  # type: ignore[arg-type]
    for login, appointment in _appointments(tx, ids, monday):
        _ensure_object(tx, ids, login, Module.CALENDAR, appointment)
    for login, task in _tasks(monday):
        _ensure_object(tx, ids, login, Module.TASK, task)


# ---------------------------------------------------------------- entry point


def ensure_demo(store: Store, passwords_path: Path | None = None) -> dict[str, str]:
    """Create whatever of the demo tenant is missing; returns login -> password of the demo users.

    Without `passwords_path` the passwords cannot be recalled, so existing users get new ones."""
    try:
        tenant = store.tenant(DEMO_DOMAIN)
    except NotFound:
        tenant = store.create_tenant(DEMO_DOMAIN)
    known = load_passwords(passwords_path)
    with store.transaction(tenant.id, write=True) as tx:
        passwords = _ensure_users(tx, known)
        ids = _ensure_principals(tx)
        _ensure_objects(tx, ids)
    if passwords_path is not None and passwords != known:
        save_passwords(passwords_path, passwords)
    return passwords
