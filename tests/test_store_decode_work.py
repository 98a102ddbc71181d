"""The Python work of decoding a stored object (every Sync window, multiget and listing decodes rows):
a row's JSON document is parsed once; decoding follows the stored document (the keys it holds), not
every field of the class, and builds the object from a per-class template of its defaults instead of the
generated `__init__`. Counted as Python line events per row (deterministic, unlike time); the object
built is the one the constructor builds (equal, same attributes in the same order, fresh defaults)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bench.peers_objects import card_contacts, event_masters
from oxsync.model import Contact, Module
from oxsync.store import dataclass_json
from tests.test_store_objects import full_appointment, full_contact, full_task


def lines_in(fn: Callable[[], Any], where: Callable[[str], bool]) -> tuple[int, Any]:
    """(Python line events in code whose file `where` accepts while `fn` runs, its result)."""
    count = 0

    def tracer(frame, event, _arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if not where(frame.f_code.co_filename):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        result = fn()
    finally:
        sys.settrace(None)
    return count, result


def _decoding(filename: str) -> bool:
    """The decode of a row: dataclass_json and a dataclass's generated __init__ (file "<string>")."""
    return filename.endswith("dataclass_json.py") or filename == "<string>"


def _contacts(world, n: int) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        ids = [o.stored_id for o in session.create_objects(folder, card_contacts(0, n))]
    return folder, ids


def test_a_row_is_parsed_once(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder, ids = _contacts(world, 20)
    with world.as_user(world.alice, write=True) as session:
        lists = session.create_object(folder, Contact(display_name="team", distribution_list=[]))
        calendar = world.default_folder(world.alice, Module.CALENDAR)
        events = [o.stored_id for o in session.create_objects(calendar, event_masters(0, 10, 10))]
    parses: list[str] = []
    real = dataclass_json.loads

    def counting(text: str) -> dict[str, Any]:
        parses.append(text)
        return real(text)

    monkeypatch.setattr(dataclass_json, "loads", counting)
    with world.as_user(world.alice) as session:
        found = session.objects_by_ids(folder, [*ids, lists.stored_id])
        assert len(parses) == len(ids) + 1 == len(found)
        assert found[lists.stored_id].distribution_list == []
        parses.clear()
        assert len(session.objects_by_ids(calendar, events)) == len(parses) == 10


def test_decoding_follows_the_document(world) -> None:  # type: ignore[no-untyped-def]
    folder, ids = _contacts(world, 50)
    with world.as_user(world.alice) as session:
        session.objects_by_ids(folder, ids[:1])  # decoders chosen, templates built
        lines, found = lines_in(lambda: session.objects_by_ids(folder, ids), _decoding)
    assert len(found) == 50
    # a bench vCard stores 14 keys of the ~110 fields of a Contact; walking every field in from_dict and in
    # the generated __init__ took 511 line events per contact (165 now)
    assert lines / 50 <= 250, lines / 50


def test_decoded_objects_are_what_init_builds() -> None:
    for obj in (full_contact(), full_appointment(1, 2), full_task(), Contact(extra={"X": "y"})):
        data = dataclass_json.to_dict(obj)
        built = dataclass_json.from_dict(type(obj), data)
        reference = type(obj)(**{f.name: getattr(built, f.name) for f in dataclasses.fields(obj)})
        assert built == reference and list(vars(built)) == list(vars(reference))  # same attributes, same order
        fresh = dataclass_json.from_dict(type(obj), {})
        assert fresh == type(obj)()
        for f in dataclasses.fields(obj):  # default factories give each object its own list or dict
            if f.default_factory is not dataclasses.MISSING:
                assert getattr(fresh, f.name) is not getattr(dataclass_json.from_dict(type(obj), {}), f.name)
    with pytest.raises(TypeError):  # a required field missing fails as the constructor does
        dataclass_json.from_dict(_Required, {})
    assert dataclass_json.from_dict(_Required, {"name": "x"}) == _Required("x")


@dataclasses.dataclass
class _Required:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)




def test_participant_rows_decode_without_calling_their_enums(world) -> None:  # type: ignore[no-untyped-def]
    calendar = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as session:
        events = [o.stored_id for o in session.create_objects(calendar, event_masters(0, 20, 20))]
    with world.as_user(world.alice) as session:
        session.objects_by_ids(calendar, events[:1])
        lines, found = lines_in(lambda: session.objects_by_ids(calendar, events), lambda f: f.endswith("enum.py"))
    parts = sum(len(e.participants) for e in found.values())
    assert len(found) == 20 and parts >= 20
    # kind and confirmation of each participant row were looked up by calling the enum: 2 calls, 13 line
    # events per participant; what is left is the enum-typed fields of the events' documents
    assert lines / parts <= 4, (lines, parts)


def test_rows_are_fetched_at_once(world) -> None:  # type: ignore[no-untyped-def]
    folder, ids = _contacts(world, 50)

    def fetching(filename: str) -> bool:
        return filename.endswith(("engine/cursor.py", "engine/result.py"))
    with world.as_user(world.alice) as session:
        session.objects_by_ids(folder, ids[:1])
        lines, found = lines_in(lambda: session.objects_by_ids(folder, ids), fetching)
    assert len(found) == 50
    # fetched row by row, the result's iteration ran 10 line events per row (2 now), on both engines
    assert lines / 50 <= 4, lines / 50


def _row_kinds_decoded(monkeypatch) -> list[type]:  # type: ignore[no-untyped-def]
    """The type of every row `objects._load_one` decodes from now on (filled as it runs)."""
    from oxsync.store import objects

    kinds: list[type] = []
    real = objects._load_one

    def recording(r, *args):  # type: ignore[no-untyped-def]
        kinds.append(type(r))
        return real(r, *args)
    monkeypatch.setattr(objects, "_load_one", recording)
    return kinds


def test_bulk_read_rows_are_plain_tuples(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Decoding and the rights check read ~20 fields of each row: a SQLAlchemy Row resolves each name per
    access (~10x an index), so the rows of a bulk read are handed on as plain named tuples."""
    from oxsync.store import objects

    folder, ids = _contacts(world, 20)
    kinds = _row_kinds_decoded(monkeypatch)
    with world.as_user(world.alice) as session:
        found = session.objects_by_ids(folder, ids)
    assert len(found) == 20 and kinds == [objects.ObjectRow] * 20
    assert objects.ObjectRow._fields == tuple(c.name for c in objects.s.objects.c)


def test_delta_rows_are_fetched_at_once_as_plain_tuples(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A small delta (an ActiveSync or DAV sync of a few changes) reads its rows by id like a bulk read:
    fetched at once and handed on as plain named tuples (row by row as SQLAlchemy Rows before)."""
    from oxsync.store import objects

    folder, ids = _contacts(world, 30)
    with world.as_user(world.alice) as session:
        since = session.revision()[0]
    with world.as_user(world.alice, write=True) as session:
        for object_id in ids[:10]:
            contact = session.get_object(folder, object_id)
            contact.first_name += " changed"
            session.update_object(folder, contact)
    kinds = _row_kinds_decoded(monkeypatch)

    def fetching(filename: str) -> bool:
        return filename.endswith(("engine/cursor.py", "engine/result.py"))
    with world.as_user(world.alice) as session:
        session.object_delta(folder, since)  # statements compiled, results' metadata cached
        kinds.clear()
        lines, delta = lines_in(lambda: session.object_delta(folder, since), fetching)
    assert sorted(o.stored_id for o in delta.changed) == sorted(ids[:10])
    assert kinds == [objects.ObjectRow] * 10
    assert lines <= 120, lines  # 94-98 on either engine; 179-183 with the rows fetched one at a time
