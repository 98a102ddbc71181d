"""The Python work per item of an ActiveSync window (an initial Sync converts every item of the folder):
`ClassMapping.to_eas` walks the rows chosen once per version. Counted as Python line events per item
(deterministic, unlike time), and checked to give what the row-by-row reference gives, byte for byte,
for every protocol version and body preference."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bench.peers_objects import card_contacts, event_masters
from oxsync.eas.mapping.calendar import CALENDAR
from oxsync.eas.mapping.common import ClassMapping, Field, MapContext, get_attr
from oxsync.eas.mapping.contacts import CONTACTS
from oxsync.eas.mapping.tasks import TASKS
from oxsync.eas.wbxml import E, encode
from oxsync.model import Contact, Module
from tests.test_store_decode_work import lines_in
from tests.test_store_objects import full_appointment, full_contact, full_task

VERSIONS = (2.5, 12.0, 12.1, 14.0, 14.1, 16.0, 16.1)


def _reference_to_eas(mapping: ClassMapping, obj: Any, ctx: MapContext) -> Any:
    """`to_eas` as it was written first: every row, its version range and export flag checked per object."""
    data = E("AirSync:ApplicationData")
    for row in mapping.rows:
        if not row.applies(ctx.version):
            continue
        if isinstance(row, Field):
            if not row.export:
                continue
            text = row.conv.out(get_attr(obj, row.attr))
            if text is not None:
                data.append(E(row.tag, text))
        else:
            data.children.extend(row.out(obj, ctx))
    return data


def _objects() -> list[tuple[ClassMapping, Any]]:
    bad = "bell\x07 and \x0b tab"
    contacts = [*card_contacts(0, 5), full_contact(), dataclasses.replace(full_contact(), note=bad, first_name=bad,
                                                                          extra={"YomiFirstName": bad, "MMS": "1"}),
                Contact(first_name=0, last_name=7, nickname=None, extra={"MMS": 0, "CustomerId": 3})]  # type: ignore[arg-type]
    for k, c in enumerate(contacts):
        c.object_id, c.folder_id = 100 + k, 7
    return [*((CONTACTS, c) for c in contacts), (CALENDAR, full_appointment(1, 2)), (TASKS, full_task()),
            *((CALENDAR, e) for e in event_masters(0, 5, 5))]


@pytest.mark.parametrize("version", VERSIONS)
def test_to_eas_gives_what_the_rows_give(version: float) -> None:
    for mapping, obj in _objects():
        for ctx in (MapContext(version, user_id=1), MapContext(version, user_id=1, body_type=2, truncation=20, preview=5)):
            assert encode(mapping.to_eas(obj, ctx)) == encode(_reference_to_eas(mapping, obj, ctx)), (mapping.name, obj)


def test_to_eas_walks_the_rows_chosen_once_per_version() -> None:
    contacts = card_contacts(0, 20)
    ctx = MapContext(14.1, user_id=1)
    CONTACTS.to_eas(contacts[0], ctx)
    lines, _ = lines_in(lambda: [CONTACTS.to_eas(c, ctx) for c in contacts], lambda f: f.endswith("common.py"))
    # checking each of the table's 65 rows (version range, kind, export flag, "extra:" prefix) per item took
    # 632 line events per bench vCard (282 now)
    assert lines / 20 <= 400, lines / 20


CONTEXTS = (dict(), dict(body_type=2), dict(truncation=20, preview=5), dict(truncation=4000, preview=8),
            dict(body_type=4, truncation=0, all_or_none=True))
"""Body preferences: plain, HTML, truncated with a preview, whole (under the truncation), MIME truncated to nothing."""


@pytest.mark.parametrize("version", VERSIONS)
def test_to_wbxml_writes_the_bytes_of_to_eas(version: float) -> None:
    """A Sync window writes each item straight to WBXML (`ClassMapping.to_wbxml`): the same bytes as the
    encoder writes of `to_eas`'s elements, inside a document whose items end on other code pages."""
    objects = _objects()
    for settings in CONTEXTS:
        ctx = MapContext(version, user_id=1, **settings)  # type: ignore[arg-type]
        for mapping, obj in objects:
            assert encode(mapping.to_wbxml(obj, ctx)) == encode(mapping.to_eas(obj, ctx)), (mapping.name, obj, settings)

        def window(render: str, ctx: MapContext) -> bytes:
            return encode(E("AirSync:Commands", *(
                E("AirSync:Add", E("AirSync:ServerId", str(k)), getattr(mapping, render)(obj, ctx))
                for k, (mapping, obj) in enumerate(objects))))
        assert window("to_wbxml", ctx) == window("to_eas", ctx), settings


def test_an_empty_item_is_its_bare_token() -> None:
    empty = Contact(note="", file_as="", display_name="")
    ctx = MapContext(2.5, user_id=1)
    assert encode(CONTACTS.to_wbxml(empty, ctx)) == encode(CONTACTS.to_eas(empty, ctx))


@pytest.fixture
def phone(live_server, store, world):  # type: ignore[no-untyped-def]
    from oxsync.eas import install
    from tests.eas_client import client

    c = client(live_server(store, setup=install, eas={"export_cache_objects": 0}, dav={"texts_ahead_max_pending": 0}))
    c.provision()
    return c


def test_a_window_builds_no_element_per_field(phone, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The server builds a few `Element`s per item sent (Add, ServerId, the sealed ApplicationData), not one
    per field: 14 per item of this window before `to_wbxml` (its Body alone 4), 4 now. Counted in the
    server's threads only (the test's client decodes the answer into elements of its own)."""
    import threading

    from oxsync.eas.wbxml import Element
    from tests.eas_client import items
    from tests.test_eas_sync import add_contacts

    add_contacts(world, 30)
    folder_id = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        for obj in session.list_objects(folder_id):
            obj.note, obj.company, obj.position, obj.phone_business = "A note.", "Company", "Engineer", "+33 1 00"
            session.update_object(folder_id, obj)
    folder = phone.folder_of_type(9)
    phone.sync(folder, "0")
    phone.sync(folder, window=5)  # the pass planned; the elements counted below are a window's
    built = {"n": 0}
    client_thread = threading.get_ident()
    init = Element.__init__

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.get_ident() != client_thread:
            built["n"] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(Element, "__init__", counting)
    reply = phone.sync(folder, window=20)
    monkeypatch.undo()
    assert len(items(reply)) == 20
    assert built["n"] / 20 <= 5, built["n"] / 20


def test_a_run_of_text_fields_is_one_step_whatever_its_kinds() -> None:
    """Consecutive text fields are one step of `to_eas`/`to_wbxml` (their values read by one call per
    stretch of attributes or of `extra` keys), even where attributes and extra keys alternate, as in
    Contacts2: a contact's plan at 14.1 was 18 steps (11 of them text runs), 11 now (4)."""
    plan = CONTACTS.export_plan(14.1)
    runs = [step for step in plan if step[2] is None and step[3] is None]
    assert (len(plan), len(runs)) == (11, 4), (len(plan), len(runs))
    mixed = Contact(nickname="Nick", managers_name="Boss", extra={"MMS": "mms:1", "IMAddress3": "im3", "CustomerId": "c7"})
    ctx = MapContext(14.1, user_id=1)
    assert encode(CONTACTS.to_wbxml(mixed, ctx)) == encode(CONTACTS.to_eas(mixed, ctx)) == \
        encode(_reference_to_eas(CONTACTS, mixed, ctx))
