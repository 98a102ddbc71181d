"""The real PyPI client `pyactivesync` (EAS 16.1) against a live oxsync on loopback.

Covers provisioning, folder sync, two-way contact sync, calendar read and a Ping woken by a change
made through another path. The other path is a table of writers: today the store API; the OX and
DAV dialects can add theirs (a function that creates a contact in a user's folder) without touching
the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

try:
    import pyactivesync
except ImportError as exc:  # a conformance client missing is a failure, not a skip: `make test` installs it
    raise ImportError("pyactivesync is not installed: run `make test` or pip install -e '.[conformance]'") from exc

from oxsync.eas import install  # noqa: E402
from oxsync.model import Appointment, Contact, Module  # noqa: E402

Writer = Callable[..., None]


def write_through_store(world, running, user_id: int, folder_id: int, first_name: str) -> None:  # type: ignore[no-untyped-def]
    with world.as_user(user_id, write=True) as session:
        session.create_object(folder_id, Contact(first_name=first_name, last_name="Other-Path"))


OTHER_PATHS: dict[str, Writer] = {"store": write_through_store}
"""How a change reaches the store without ActiveSync; add "ox" / "carddav" writers here."""


def make_client(running, user: str = "alice", password: str = "alice-pw", device: str = "pyas01"):  # type: ignore[no-untyped-def]
    client = pyactivesync.Client(server=f"127.0.0.1:{running.port}", username=user, password=password,
                                 device_id=device, timeout=20)
    client._transport.base_url = f"http://127.0.0.1:{running.port}/Microsoft-Server-ActiveSync"
    return client


@pytest.fixture
def running(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install)


def test_provision_folders_and_two_way_contacts(running, world) -> None:  # type: ignore[no-untyped-def]
    client = make_client(running)
    folders = client.list_folders()
    kinds = sorted(int(f.type) for f in folders)
    assert {7, 8, 9} <= set(kinds)
    contacts = next(f for f in folders if int(f.type) == 9)
    folder_id = int(contacts.id)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder_id, Contact(first_name="Ada", last_name="Lovelace", email1="ada@example.org"))
    first = client.sync_folder(contacts.id)
    result = client.sync_folder(contacts.id, sync_key=first.sync_key)
    names = [item.fields.get("Contacts.FirstName") for item in result.added]
    assert names == ["Ada"]
    added = client.create_contact(contacts.id, result.sync_key, pyactivesync.Contact(
        first_name="Grace", last_name="Hopper", email1_address="grace@example.com", company_name="Navy"))
    assert added.status == "1" and added.server_id
    with world.as_user(world.alice) as session:
        stored = session.get_object(folder_id, int(added.server_id))
    assert (stored.first_name, stored.company, stored.email1) == ("Grace", "Navy", "grace@example.com")
    change = pyactivesync.ContactChange(server_id=added.server_id, contact=pyactivesync.Contact(
        first_name="Grace", last_name="Hopper", job_title="Rear Admiral"))
    changed = client.apply_contact_changes(contacts.id, added.sync_key, [change])
    with world.as_user(world.alice) as session:
        assert session.get_object(folder_id, int(added.server_id)).position == "Rear Admiral"
    delete = pyactivesync.ContactChange(server_id=added.server_id, delete=True)
    client.apply_contact_changes(contacts.id, changed.sync_key, [delete])
    with world.as_user(world.alice) as session:
        assert [o.first_name for o in session.list_objects(folder_id)] == ["Ada"]
    # folder create / rename / delete through pyactivesync's own FolderSync-0-first sequence
    created = client.create_folder("Team contacts", type=pyactivesync.FolderType(14)).id
    client.update_folder(created, "Team")
    with world.as_user(world.alice) as session:
        assert session.get_folder(int(created)).folder.title == "Team"
    client.delete_folder(created)
    assert all(f.id != created for f in client.list_folders())


def test_calendar_read(running, world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CALENDAR)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Appointment(title="Planning", location="Room 3", start_date=start,
                                                  end_date=start + timedelta(hours=1), timezone="Europe/Paris"))
    client = make_client(running, device="pyas02")
    calendar = next(f for f in client.list_folders() if int(f.type) == 8)
    key = client.sync_folder(calendar.id, filter_type="0").sync_key
    result = client.sync_folder(calendar.id, sync_key=key, filter_type="0")
    assert len(result.added) == 1
    values = set(result.added[0].fields.values())  # no Calendar code page in pyactivesync: synthetic tag names
    assert "Planning" in values and start.strftime("%Y%m%dT%H%M%SZ") in values


@pytest.mark.parametrize("path", sorted(OTHER_PATHS))
def test_ping_woken_by_another_path(running, world, path: str) -> None:  # type: ignore[no-untyped-def]
    client = make_client(running, device=f"pyping{path}")
    contacts = next(f for f in client.list_folders() if int(f.type) == 9)
    key = client.sync_folder(contacts.id).sync_key
    client.sync_folder(contacts.id, sync_key=key)
    outcome: dict[str, object] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault(
        "ping", client.ping([contacts.id], folder_class="Contacts", heartbeat=120, timeout=60)))
    thread.start()
    for _ in range(1000):
        if len(running.service.eas.parked):
            break
        time.sleep(0.01)
    OTHER_PATHS[path](world, running, world.alice, int(contacts.id), "Pushed")
    thread.join(60)
    ping = outcome["ping"]
    assert ping.status == "2" and ping.changed_folder_ids == [contacts.id]
