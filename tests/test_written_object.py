"""A DAV PUT answers (ETag, Schedule-Tag, the served text it stores) from the object as the store wrote
it (`session.written_object`), decoded by the same code as a read, instead of reading it back (three
statements). What must hold: it is exactly what a read of the object returns in that transaction, for
every kind of object the store holds, after a create and after an update, whoever placed it where."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event

from bench.peers_objects import card_contacts, event_masters
from oxsync.formats.ical import CalendarItem, parse_calendar
from oxsync.formats.vcard import parse_vcards
from oxsync.model import Appointment, Contact, Module, Task
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.contact import DistributionListMember

CORPUS = Path(__file__).parent / "data" / "roundtrip"


def _corpus() -> list[tuple[Module, Any]]:
    out: list[tuple[Module, Any]] = []
    for path in sorted(CORPUS.iterdir()):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ics":
            for item in parse_calendar(text):
                if isinstance(item, CalendarItem) and item.master is not None:
                    master = item.master
                    module = Module.TASK if isinstance(master, Task) else Module.CALENDAR
                    out.append((module, master))
        else:
            contact = next(iter(parse_vcards(text))).contact
            assert contact is not None
            out.append((Module.CONTACT, contact))
    return out


def _objects(world) -> list[tuple[Module, Any]]:  # type: ignore[no-untyped-def]
    meeting = event_masters(40, 41, 100)[0]
    meeting.participants.append(Participant(ParticipantKind.USER, world.bob))  # placed in bob's calendar too
    private = event_masters(41, 42, 100)[0]
    private.private_flag = True
    listed = Contact(display_name="Team list", distribution_list=[
        DistributionListMember(email="x@elsewhere.test", display_name="X"), DistributionListMember(email="y@e.test")])
    task = Task(title="Do it", participants=[Participant(ParticipantKind.USER, world.bob)])
    return [*_corpus(), *((Module.CALENDAR, e) for e in event_masters(0, 12, 100)), (Module.CALENDAR, meeting),
            (Module.CALENDAR, private), *((Module.CONTACT, c) for c in card_contacts(0, 3)),
            (Module.CONTACT, listed), (Module.TASK, task)]


def _same(session, folder_id: int, object_id: int) -> Any:  # type: ignore[no-untyped-def]
    written = session.written_object(folder_id, object_id)
    read = session.objects_by_ids(folder_id, [object_id])[object_id]
    assert written is not None
    assert dataclasses.asdict(written) == dataclasses.asdict(read)
    assert written == read
    return written


def test_written_object_is_what_a_read_returns(store, world) -> None:  # type: ignore[no-untyped-def]
    objects = _objects(world)
    folders = {m: world.default_folder(world.alice, m) for m in (Module.CALENDAR, Module.TASK, Module.CONTACT)}
    created: list[tuple[int, int]] = []
    with store.session(world.tenant_id, world.alice, write=True) as session:
        for module, obj in objects:
            if isinstance(obj, Appointment):
                obj.ignore_conflicts = True
            saved = session.create_object(folders[module], copy.deepcopy(obj))
            _same(session, folders[module], saved.object_id)
            created.append((folders[module], saved.object_id))
    bob_calendar = world.default_folder(world.bob, Module.CALENDAR)
    for folder_id, object_id in created:
        with store.session(world.tenant_id, world.alice, write=True) as session:
            session.add_attachment(folder_id, object_id, "a.txt", "text/plain", b"attached")
            current = session.get_object(folder_id, object_id)
            if isinstance(current, Appointment):
                current.ignore_conflicts = True
            if isinstance(current, Contact):
                current.last_name = "Changed"
            else:
                current.title = f"{current.title} changed"
            session.update_object(folder_id, current)
            written = _same(session, folder_id, object_id)
            assert [a.filename for a in written.attachments] == ["a.txt"]
    meeting_id = created[len(_corpus()) + 12][1]
    with store.session(world.tenant_id, world.bob, write=True) as session:  # bob updates it from his folder
        current = session.get_object(bob_calendar, meeting_id)
        current.location = "Elsewhere"
        current.ignore_conflicts = True
        session.update_object(bob_calendar, current)
        _same(session, bob_calendar, meeting_id)


def test_written_object_reads_nothing(store, world) -> None:  # type: ignore[no-untyped-def]
    """After a create or an update, the written object costs no statement; written again since (here its
    participants by a confirmation), it is read."""
    folder_id = world.default_folder(world.alice, Module.CALENDAR)
    seen: list[str] = []

    def count(conn, cursor, statement, *_: object) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event = event_masters(5, 6, 100)[0]
    event.ignore_conflicts = True
    with store.session(world.tenant_id, world.alice, write=True) as session:
        saved = session.create_object(folder_id, event)
        sa_event.listen(store.engine, "before_cursor_execute", count)
        try:
            assert session.written_object(folder_id, saved.object_id) is not None
            assert seen == []
            saved.title = "Changed"
            saved.ignore_conflicts = True
            session.update_object(folder_id, saved)
            seen.clear()
            assert session.written_object(folder_id, saved.object_id).title == "Changed"
            assert seen == []
            session.delete_object(folder_id, saved.object_id)
            seen.clear()
            assert session.written_object(folder_id, saved.object_id) is None
            assert seen != []  # gone: read, and found missing
        finally:
            sa_event.remove(store.engine, "before_cursor_execute", count)
