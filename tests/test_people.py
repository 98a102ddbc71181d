"""Moving people: `export --user U --all DIR` and `import --user U DIR` (every folder, its tree and its
permissions by name), user rename, tenant rename and delete."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oxsync.cli import main
from oxsync.model import Appointment, Contact, Module, Protocol, Task
from oxsync.model.permissions import Permission, Rights
from oxsync.store import accounts
from oxsync.store.errors import AuthenticationFailed
from tests.fixtures import make_store

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ADMIN = Rights(folder=128, read=128, write=128, delete=128, admin=True)
READER = Rights(folder=2, read=4, write=0, delete=0)


def cli(url: str, *argv: str) -> int:
    return main(["--db", url, *argv])


def fill_alice(store, world) -> int:  # type: ignore[no-untyped-def]
    start = datetime(2027, 3, 1, 9, tzinfo=UTC)
    with world.as_user(world.alice, write=True) as session:
        contacts = world.default_folder(world.alice, Module.CONTACT)
        for name in ("Dupont", "Martin"):
            session.create_object(contacts, Contact(uid=f"{name}@test", last_name=name, email1=f"{name.lower()}@x.org"))
        calendar = world.default_folder(world.alice, Module.CALENDAR)
        session.create_object(calendar, Appointment(title="Standup", start_date=start, end_date=start + timedelta(hours=1)))
        session.create_object(world.default_folder(world.alice, Module.TASK), Task(title="Report"))
        projects = session.create_folder(calendar, "Projects", Module.CALENDAR).folder.id
        kickoff = start + timedelta(days=1)
        session.create_object(projects, Appointment(title="Kickoff", start_date=kickoff, end_date=kickoff + timedelta(hours=2)))
        team = accounts.find_group_id(session.tx, "team")
        session.set_permissions(projects, [Permission(world.alice, False, ADMIN), Permission(world.bob, False, READER),
                                           Permission(team, True, READER)])
    return projects


def titles(store, tenant_id: int, user_id: int) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    with store.session(tenant_id, user_id) as session:
        return {fa.folder.title: sorted(getattr(o, "title", None) or getattr(o, "last_name", "") for o in
                                        session.list_objects(fa.folder.id))
                for fa in session.list_folders() if fa.folder.owner == user_id and fa.folder.module in
                (Module.CONTACT, Module.CALENDAR, Module.TASK) and not fa.shared}


@SQLITE_ONLY
def test_export_all_and_import_elsewhere(store, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fill_alice(store, world)
    url = store.settings.store.url
    out = tmp_path / "alice"
    assert cli(url, "export", "--user", "alice", "--all", str(out)) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    projects = next(f for f in manifest["folders"] if f["title"] == "Projects")
    assert projects["parent"] == world.default_folder(world.alice, Module.CALENDAR) and projects["objects"] == 1
    assert {(p["kind"], p["name"]) for p in projects["permissions"]} == {("user", "alice"), ("user", "bob"),
                                                                          ("group", "team")}

    other_url = f"sqlite:///{tmp_path}/other.db"
    other = make_store(other_url)
    tenant = other.create_tenant("elsewhere.org")
    with other.transaction(tenant.id, write=True) as tx:
        alice2 = accounts.create_user(tx, "alice2", "alice-pw").id
        bob2 = accounts.create_user(tx, "bob", "bob-pw").id
    assert cli(other_url, "import", "--user", "alice2", str(out)) == 0
    assert titles(other, tenant.id, alice2) == titles(store, world.tenant_id, world.alice)
    with other.session(tenant.id, alice2) as session:
        moved = next(fa.folder for fa in session.list_folders() if fa.folder.title == "Projects")
        parent = session.get_folder(moved.parent_id).folder
    assert parent.default_folder and parent.module == Module.CALENDAR  # the tree is kept
    entries = {(p.entity, p.is_group): p.rights for p in moved.permissions}
    assert entries[(bob2, False)] == READER and entries[(alice2, False)].admin  # bob by name; no group 'team' there
    assert cli(other_url, "import", "--user", "alice2", str(out)) == 0  # again: nothing doubled
    assert titles(other, tenant.id, alice2) == titles(store, world.tenant_id, world.alice)
    other.dispose()


@SQLITE_ONLY
def test_user_rename_and_tenant_rename_and_delete(store, world) -> None:  # type: ignore[no-untyped-def]
    fill_alice(store, world)
    url = store.settings.store.url
    before = titles(store, world.tenant_id, world.alice)
    assert cli(url, "user", "rename", "alice", "alicia") == 0
    with pytest.raises(AuthenticationFailed):
        store.authenticate("alice", "alice-pw", Protocol.DAV)
    assert store.authenticate("alicia@example.com", "alice-pw", Protocol.DAV).user_id == world.alice
    assert titles(store, world.tenant_id, world.alice) == before

    other = store.create_tenant("other.org")
    with store.transaction(other.id, write=True) as tx:
        accounts.create_user(tx, "olga", "olga-pw")
    with store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "boardroom", "boardroom@example.com")
    assert cli(url, "--tenant", "example.com", "user", "alias", "add", "alicia", "sales@example.com", "--send-as") == 0
    assert cli(url, "tenant", "rename", "example.com", "example.net") == 0
    with store.engine.connect() as conn:  # every address of the tenant follows the domain
        from sqlalchemy import select

        from oxsync.store import schema
        assert conn.execute(select(schema.resources.c.email).where(schema.resources.c.id == room.id)).scalar_one() \
            == "boardroom@example.net"
        assert set(conn.execute(select(schema.send_as_addresses.c.address)).scalars()) == {"sales@example.net"}
    assert store.authenticate("alicia@example.net", "alice-pw", Protocol.DAV).user_id == world.alice
    with store.transaction(world.tenant_id) as tx:
        assert accounts.get_user(tx, world.alice).email == "alicia@example.net"

    assert cli(url, "tenant", "delete", "example.net") == 2  # no --confirm
    assert cli(url, "tenant", "delete", "example.net", "--confirm", "example.net") == 0
    assert [t.domain for t in store.tenants()] == ["other.org"]
    with pytest.raises(AuthenticationFailed):
        store.authenticate("alicia", "alice-pw", Protocol.DAV)
    assert store.authenticate("olga", "olga-pw", Protocol.DAV).tenant_id == other.id
    from sqlalchemy import inspect, text
    with store.engine.connect() as conn:
        for table in inspect(store.engine).get_table_names():
            columns = {c["name"] for c in inspect(store.engine).get_columns(table)}
            if "tenant_id" in columns:
                left = conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": world.tenant_id})
                assert left.scalar_one() == 0, table
