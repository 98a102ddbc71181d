"""`objects.has_attachments` (migration 0017): true exactly while an object has attachments, kept by every
path that adds or removes them, set by the migration for rows that had some; a read of objects without
any sends no attachment query, and reads of objects with some list them as before."""

from __future__ import annotations

from sqlalchemy import select, text

from oxsync.model import Contact, Module, Task
from oxsync.store import schema as s
from tests.fixtures import raw_write, recorded_statements


def _marks(store, tenant_id: int) -> dict[int, bool]:  # type: ignore[no-untyped-def]
    o = s.objects
    with store.transaction(tenant_id) as tx:
        return {r.id: bool(r.has_attachments) for r in tx.conn.execute(select(o.c.id, o.c.has_attachments).where(o.c.tenant_id == tenant_id))}


def _attachment_reads(store, fn):  # type: ignore[no-untyped-def]
    with recorded_statements(store, lambda q: q.lstrip().upper().startswith("SELECT") and "FROM attachments" in q) as seen:
        result = fn()
    return len(seen), result


def test_the_mark_follows_adds_and_deletes_and_reads_skip_unmarked_objects(store, world) -> None:  # type: ignore[no-untyped-def]
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        plain = [session.create_object(contacts, Contact(first_name=f"P{i}", last_name="Plain")).object_id for i in range(5)]
        held = session.create_object(contacts, Contact(first_name="Has", last_name="Files")).object_id
        first = session.add_attachment(contacts, held, "a.txt", "text/plain", b"one")
        second = session.add_attachment(contacts, held, "b.txt", "text/plain", b"two")
    assert _marks(store, world.tenant_id)[held] and not any(_marks(store, world.tenant_id)[i] for i in plain)

    def read(ids: list[int]) -> dict[int, object]:
        with world.as_user(world.alice) as session:
            return session.objects_by_ids(contacts, ids)
    reads, loaded = _attachment_reads(store, lambda: read(plain))
    assert reads == 0 and len(loaded) == 5 and all(not o.attachments for o in loaded.values())  # type: ignore[attr-defined]
    reads, loaded = _attachment_reads(store, lambda: read([*plain, held]))
    assert reads == 1 and [a.filename for a in loaded[held].attachments] == ["a.txt", "b.txt"]  # type: ignore[attr-defined]

    with world.as_user(world.alice, write=True) as session:
        session.delete_attachment(contacts, held, first.id)
    assert _marks(store, world.tenant_id)[held]  # one is left
    with world.as_user(world.alice, write=True) as session:
        session.delete_attachment(contacts, held, second.id)
    assert not _marks(store, world.tenant_id)[held]
    reads, loaded = _attachment_reads(store, lambda: read([*plain, held]))
    assert reads == 0 and loaded[held].attachments == []  # type: ignore[attr-defined]


def test_a_moved_object_keeps_its_mark_and_its_attachments(store, world) -> None:  # type: ignore[no-untyped-def]
    tasks = world.default_folder(world.alice, Module.TASK)
    with world.as_user(world.alice, write=True) as session:
        other = session.create_folder(session.get_folder(tasks).folder.parent_id, "Elsewhere", Module.TASK).folder.id
        task = session.create_object(tasks, Task(title="With a file"))
        session.add_attachment(tasks, task.object_id, "n.txt", "text/plain", b"notes")
        session.move_object(tasks, task.object_id, other)
    assert _marks(store, world.tenant_id)[task.object_id]
    with world.as_user(world.alice) as session:
        assert [a.filename for a in session.get_object(other, task.object_id).attachments] == ["n.txt"]  # type: ignore[attr-defined]


def test_migration_0017_marks_the_objects_that_have_attachments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    from oxsync.store.migrate import upgrade

    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "0016")
    with raw_write(engine) as conn:
        conn.execute(text("INSERT INTO tenants (id, domain, usage_bytes, rev, last_ms, min_valid_rev) VALUES (1, 'old.example', 0, 0, 0, 0)"))
        conn.execute(text("INSERT INTO folders (tenant_id, id, parent_id, module, type, title, creation_ms, last_ms) "
                          "VALUES (1, 20, 1, 'contacts', 'private', 'C', 0, 0)"))
        for object_id in (1, 2, 3):
            conn.execute(text("INSERT INTO objects (tenant_id, id, kind, folder_id, creation_ms, last_ms, private, title, "
                              "search_text, full_time, size, data) VALUES (1, :id, 'contact', 20, 0, 0, 0, '', '', 0, 0, '{}')"),
                         {"id": object_id})
        for attachment_id, object_id in ((1, 2), (2, 2), (3, 3)):
            conn.execute(text("INSERT INTO attachments (tenant_id, id, object_id, filename, mimetype, size, rtf_flag, "
                              "creation_ms, content) VALUES (1, :id, :object_id, 'f', 'text/plain', 1, 0, 0, x'00')"),
                         {"id": attachment_id, "object_id": object_id})
    upgrade(engine)
    with engine.connect() as conn:
        marks = dict(conn.execute(text("SELECT id, has_attachments FROM objects")).all())
    engine.dispose()
    assert marks == {1: 0, 2: 1, 3: 1}
