"""Tombstone pruning by age and what each dialect tells a client whose token predates it (issue 10 §4):
only history older than the horizon is pruned; EAS answers Status 3, CalDAV/CardDAV 403
DAV:valid-sync-token, OX re-lists the folder in full."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from oxsync.dialects import install_all
from oxsync.model import Contact, Module
from oxsync.store import schema as s
from oxsync.store.errors import ResyncRequired
from tests.davhelp import Dav, sync_body
from tests.eas_client import client, collection
from tests.fixtures import raw_write
from tests.oxclient import OX_SERVER, OxClient

DAY_MS = 86_400_000


def age_history(store, up_to_rev: int | None = None, days: int = 40) -> None:  # type: ignore[no-untyped-def]
    rl = s.revision_log
    query = update(rl).values(ms=rl.c.ms - days * DAY_MS)
    with raw_write(store.engine) as conn:
        conn.execute(query if up_to_rev is None else query.where(rl.c.rev <= up_to_rev))


def tombstones(store, tenant_id: int) -> set[int]:  # type: ignore[no-untyped-def]
    c = s.changes
    with store.engine.connect() as conn:
        return {r.object_id for r in conn.execute(select(c.c.object_id).where(
            (c.c.tenant_id == tenant_id) & c.c.gone.is_(True)))}


def make_and_delete(world, folder: int, name: str) -> int:  # type: ignore[no-untyped-def]
    with world.as_user(world.alice, write=True) as session:
        item = session.create_object(folder, Contact(last_name=name))
    with world.as_user(world.alice, write=True) as session:
        session.delete_object(folder, item.object_id)
    return item.object_id


def test_only_history_older_than_the_horizon_is_pruned(world) -> None:  # type: ignore[no-untyped-def]
    store = world.store
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice) as session:
        before_old, _ = session.revision()
    old = make_and_delete(world, folder, "Old")
    with world.as_user(world.alice) as session:
        between, _ = session.revision()
    age_history(store, up_to_rev=between)  # only the first deletion is 40 days old
    recent = make_and_delete(world, folder, "Recent")
    assert tombstones(store, world.tenant_id) >= {old, recent}
    assert store.prune_tombstones(world.tenant_id, max_age_days=30) >= 1
    left = tombstones(store, world.tenant_id)
    assert old not in left and recent in left  # "prune everything" would fail here
    with world.as_user(world.alice) as session:
        assert session.object_delta(folder, between).gone == [recent]  # a token after the horizon still works
        with pytest.raises(ResyncRequired):
            session.object_delta(folder, before_old)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.revision_log).where(
            s.revision_log.c.rev > between)).scalar_one() >= 1  # the recent revision log is kept


@pytest.fixture
def everything(live_server, store, world):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install_all, server=OX_SERVER)


def test_eas_answers_status_3_to_a_pruned_sync_key(everything, world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Contact(last_name="Kept"))
    phone = client(everything)
    phone.provision()
    contacts = phone.folder_of_type(9)
    phone.sync(contacts, "0")
    phone.sync(contacts)
    make_and_delete(world, folder, "Gone")
    age_history(world.store)
    assert world.store.prune_tombstones(world.tenant_id, max_age_days=30) >= 1
    reply = phone.sync(contacts)
    assert collection(reply).findtext("AirSync:Status") == "3"


def test_dav_answers_valid_sync_token_then_resyncs(everything, world) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(everything.port, world)
    book = dav.addressbook()
    first = dav.report(book, sync_body())
    token = first.xml.findtext("{DAV:}sync-token")
    folder = world.default_folder(world.alice, Module.CONTACT)
    make_and_delete(world, folder, "Gone")
    assert dav.report(book, sync_body(token)).status == 207  # before pruning: a delta
    age_history(world.store)
    world.store.prune_tombstones(world.tenant_id, max_age_days=30)
    refused = dav.report(book, sync_body(token))
    assert refused.status == 403 and refused.xml.find("{DAV:}valid-sync-token") is not None
    assert dav.report(book, sync_body("")).status == 207  # the client starts again


def test_ox_relists_a_folder_whose_lastsync_predates_pruning(everything, world) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        kept = session.create_object(folder, Contact(last_name="Kept"))
    lastsync = kept.last_modified
    gone = make_and_delete(world, folder, "Gone")
    ox = OxClient(everything.port, "alice", "alice-pw")
    mode = "NEW_AND_MODIFIED,DELETED"
    delta = ox.sync("contacts", folder, lastsync, mode)
    assert [r.int("object_id") for r in delta if r.text("object_status") == "DELETE"] == [gone]
    assert kept.object_id not in [r.int("object_id") for r in delta if r.text("object_status") != "DELETE"]
    age_history(world.store)  # 40 days pass (the client's lastsync ages with the history) ...
    world.store.prune_tombstones(world.tenant_id, max_age_days=30)  # ... and the deletion is pruned
    relisted = ox.sync("contacts", folder, lastsync - 40 * DAY_MS, mode)
    assert [r.int("object_id") for r in relisted] == [kept.object_id]  # the whole folder, nothing missed
