"""Realistic data for simulated users, written straight through the store API (fast, one transaction per user).

The owners' served texts of what it wrote are rendered after it (`oxsync.texts_ahead`), so the first
DAV read of the run costs what a later one does (the seed cache's key names that: `SEED_FORMAT`).

Each user gets contacts (some with photos, a distribution list), a year of appointments (weekly series,
meetings with colleagues and a room), tasks, and a calendar shared with their team at Outlook level 2.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from oxsync.model import Appointment, Contact, Module, Permission, Task
from oxsync.model.appointment import Participant, ParticipantKind, Recurrence, RecurrenceType
from oxsync.model.contact import DistributionListMember
from oxsync.model.permissions import rights_for_level
from oxsync.store import accounts
from oxsync.store import folders as folder_ops
from oxsync.store.api import Store
from oxsync.store.settle import settled_after
from oxsync.texts_ahead import rendering_after

PASSWORD = "sim-password"
FIRST = ("Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Greta", "Hugo", "Inès", "Jonas", "Karin", "Léo")
LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau")
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # a 2 KB stand-in JPEG payload


@dataclass
class SimUser:
    login: str
    password: str
    user_id: int
    calendar: int
    contacts: int
    tasks: int


def seed(store: Store, users: int, contacts_per_user: int, appointments_per_user: int, *, domain: str = "sim.example",
         seed_value: int = 7) -> list[SimUser]:
    rng = random.Random(seed_value)
    tenant = store.create_tenant(domain)
    created: list[SimUser] = []
    with store.transaction(tenant.id, write=True) as tx:
        for n in range(users):
            user = accounts.create_user(tx, f"user{n:04d}", PASSWORD, first_name=rng.choice(FIRST), last_name=rng.choice(LAST))
            folders = {m: folder_ops.default_folder_id(tx, user.id, m) for m in Module}
            created.append(SimUser(user.login, PASSWORD, user.id, folders[Module.CALENDAR],  # type: ignore[arg-type]
                                   folders[Module.CONTACT], folders[Module.TASK]))  # type: ignore[arg-type]
        room = accounts.create_resource(tx, "simroom", f"simroom@{domain}").id
        team_size = 10
        for start in range(0, users, team_size):
            members = [u.user_id for u in created[start:start + team_size]]
            accounts.create_group(tx, f"team{start // team_size:03d}", members=members)
    # each folder owner's served texts, as if DAV clients had written it all; then settled (oxsync.store.settle)
    with settled_after(store), rendering_after(store):
        for index, user in enumerate(created):
            team = created[(index // 10) * 10:(index // 10) * 10 + 10]
            with store.session(tenant.id, user.user_id, write=True) as session:
                _contacts(session, user, contacts_per_user, rng)
                _appointments(session, user, team, room, appointments_per_user, rng)
                _tasks(session, user, rng)
                entries = session.get_folder(user.calendar).folder.permissions
                session.set_permissions(user.calendar, entries + [
                    Permission(u.user_id, False, rights_for_level(2)) for u in team if u is not user])
    return created


def _contacts(session, user: SimUser, count: int, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    made = []
    for n in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        contact = Contact(first_name=first, last_name=last, display_name=f"{first} {last}",
                          email1=f"{first.lower()}.{last.lower()}{n}@customer.example", company="Customer SA",
                          phone_business=f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {n % 100:02d}",
                          mobile1=f"+33 6 {rng.randint(10000000, 99999999)}", business_city="Paris",
                          note="Met at the fair" if n % 7 == 0 else "",
                          image1=PHOTO if n % 25 == 0 else None, image_content_type="image/jpeg" if n % 25 == 0 else "")
        made.append(session.create_object(user.contacts, contact))
    members = [DistributionListMember(c.email1, c.display_name, c.object_id, user.contacts, 1) for c in made[:20]]
    session.create_object(user.contacts, Contact(display_name="Customers", distribution_list=members))


def _appointments(session, user: SimUser, team: list[SimUser], room: int, count: int, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    base = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=180)
    session.create_object(user.calendar, Appointment(
        title="Weekly team meeting", start_date=base, end_date=base + timedelta(minutes=30), ignore_conflicts=True,
        recurrence=Recurrence(RecurrenceType.WEEKLY, 1, days=2), timezone="Europe/Paris"))
    for n in range(count):
        start = base + timedelta(days=rng.randint(0, 365), hours=rng.randint(0, 9))
        parts = []
        if n % 5 == 0 and len(team) > 1:
            others = rng.sample([u for u in team if u is not user], k=min(2, len(team) - 1))
            parts = [Participant(ParticipantKind.USER, user.user_id)] + [
                Participant(ParticipantKind.USER, u.user_id) for u in others]
        session.create_object(user.calendar, Appointment(
            title=f"Appointment {n}", location="Office", start_date=start, end_date=start + timedelta(hours=1),
            participants=parts, ignore_conflicts=True, private_flag=n % 17 == 0))
    del room  # the room is booked by the simulated Outlook clients (hard conflicts are part of the load)


def _tasks(session, user: SimUser, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    for n in range(10):
        session.create_object(user.tasks, Task(title=f"Task {n}", percent_completed=rng.choice((0, 25, 50, 100))))


def seed_contact_folder(url: str, contacts: int) -> tuple[int, int]:
    """A fresh store at `url` with one account "bench" (password "bench-pw") whose default contact folder
    holds `contacts` filled-in contacts, written in one transaction; returns (user id, folder id)."""
    from oxsync.config import Settings, StoreSettings
    from oxsync.store.objects import insert_object

    store = Store(Settings(store=StoreSettings(url=url)))
    store.create_schema()
    tenant = store.create_tenant("bench.example")
    with store.transaction(tenant.id, write=True) as tx:
        user = accounts.create_user(tx, "bench", "bench-pw")
        folder = folder_ops.default_folder_id(tx, user.id, Module.CONTACT)
        assert folder is not None
        for n in range(contacts):
            contact = Contact(first_name=f"First{n}", last_name=f"Last{n}", email1=f"p{n}@example.org",
                              phone_business=f"+33 1 00 00 {n:05d}", company="ACME", street=f"{n} rue de la Paix",
                              city="Paris", note="A short note about this contact.")
            insert_object(tx, contact, folder, user.id)
            tx.record_object_change(folder, contact.object_id, gone=False, kind="create")
    store.dispose()
    return user.id, folder
