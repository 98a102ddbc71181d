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
from oxsync.model import Contact
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
