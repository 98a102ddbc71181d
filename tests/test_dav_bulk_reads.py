"""Multiget resolves all hrefs with a fixed number of store statements (bulk reads by resource name and
by id, rights checked in the store), not a few queries per href; the answers stay complete."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest
from sqlalchemy import event as sa_event

from oxsync.dav import install
from oxsync.formats.ical import parse_calendar
from oxsync.model import Module, Permission
from oxsync.model.permissions import rights_for_level
from tests.davhelp import Dav, event, vcard
from tests.fixtures import counted_renders, recorded_statements

MG = ('<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
      "<C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>")
AMG = ('<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/>'
       "<CR:address-data/></D:prop>{hrefs}</CR:addressbook-multiget>")


OBJECT_TABLES = ("objects", "participants", "list_members", "attachments", "object_ranges")


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    # the read path's own rendering and statements; texts rendered ahead of it: tests/test_texts_ahead.py
    return Dav(live_server(store, setup=install, dav={"texts_ahead_max_pending": 0}).port, world)


def counted(store) -> AbstractContextManager[list[str]]:  # type: ignore[no-untyped-def]
    """Statements on the object tables (not the login/session bookkeeping)."""
    return recorded_statements(store, lambda statement: any(f" {table}" in statement for table in OBJECT_TABLES))


def _series_with_override(uid: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260907T090000Z\r\n"
            "DTEND:20260907T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Series\r\nEND:VEVENT\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260914T090000Z\r\n"
            "DTSTART:20260915T090000Z\r\nDTEND:20260915T100000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_calendar_multiget_costs_the_same_for_4_and_40_hrefs(store, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    cal = dav.calendar()
    hrefs = []
    for i in range(40):
        body = _series_with_override(f"s{i}") if i % 5 == 0 else event(f"e{i}", f"Event {i}", f"202603{10 + i % 18}T090000Z",
                                                                       f"202603{10 + i % 18}T100000Z")
        assert dav.put(f"{cal}ev{i}.ics", body).status == 201
        hrefs.append(f"{cal}ev{i}.ics")
    hrefs.append(f"{cal}missing.ics")
    costs = []
    for wanted in (hrefs[:4] + hrefs[-1:], hrefs):
        with counted(store) as seen:
            reply = dav.report(cal, MG.format(hrefs="".join(f"<D:href>{h}</D:href>" for h in wanted)))
        assert reply.status == 207
        assert len(reply.hrefs()) == len(wanted)
        for h in wanted[:-1]:
            text = reply.prop(h, "C:calendar-data").text
            assert "BEGIN:VEVENT" in text
            if h.endswith(("ev0.ics", "ev5.ics")):
                assert "RECURRENCE-ID" in text and "Moved" in text  # the series comes with its override
        costs.append(len(seen))
    assert costs[0] == costs[1], costs


def test_addressbook_multiget_costs_the_same_for_4_and_40_hrefs(store, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    book = dav.addressbook()
    hrefs = []
    for i in range(40):
        assert dav.put(f"{book}c{i}.vcf", vcard(f"c{i}", f"Person{i} Doe")).status == 201
        hrefs.append(f"{book}c{i}.vcf")
    costs = []
    for wanted in (hrefs[:4], hrefs):
        with counted(store) as seen:
            reply = dav.report(book, AMG.format(hrefs="".join(f"<D:href>{h}</D:href>" for h in wanted)))
        assert reply.status == 207 and len(reply.hrefs()) == len(wanted)
        assert all("BEGIN:VCARD" in reply.prop(h, "CR:address-data").text for h in wanted)
        costs.append(len(seen))
    assert costs[0] == costs[1], costs


def test_multiget_by_default_name_and_rights(store, world, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    """Objects written by other dialects have no resource name: their `<id>.ics` href resolves in bulk
    too, and a private object of another user stays invisible."""

    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    with world.as_user(world.bob, write=True) as s:
        entries = s.get_folder(bob_cal).folder.permissions
        s.set_permissions(bob_cal, entries + [Permission(world.alice, False, rights_for_level(2))])
        ids = []
        for uid, private in (("open", False), ("secret", True)):
            master = parse_calendar(event(uid, uid))[0].master  # type: ignore[union-attr]
            master.private_flag = private
            master.ignore_conflicts = True
            ids.append(s.create_object(bob_cal, master).object_id)
    base = f"/dav/calendars/alice/{bob_cal}/"
    reply = dav.report(base, MG.format(hrefs="".join(f"<D:href>{base}{i}.ics</D:href>" for i in ids)))
    assert reply.status == 207
    assert "UID:open" in reply.prop(f"{base}{ids[0]}.ics", "C:calendar-data").text
    assert reply.prop(f"{base}{ids[1]}.ics", "C:calendar-data") is None


def _etags(reply) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {h: reply.prop(h, "D:getetag").text for h in reply.hrefs() if not h.endswith("/")}


def test_listings_decode_nothing_and_agree_with_full_reads(store, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    """PROPFIND Depth 1 and an initial sync-collection asking for ETags read ids, names and versions
    only (no object body, no side table), with the same hrefs and ETags a full read gives."""
    cal = dav.calendar()
    for i in range(12):
        body = _series_with_override(f"s{i}") if i % 4 == 0 else event(f"e{i}", f"Event {i}")
        assert dav.put(f"{cal}ev{i}.ics", body).status == 201
    for wanted in ("<D:getetag/><D:getcontenttype/><D:resourcetype/><D:getlastmodified/>", None):
        with counted(store) as seen:
            if wanted is None:
                listing = dav.request("PROPFIND", cal, "", Depth="1")  # allprop
            else:
                listing = dav.propfind(cal, wanted, "1")
        assert listing.status == 207
        assert not [x for x in seen if "objects.data" in x or "list_members" in x or "attachments" in x], seen
    with counted(store) as seen:
        synced = dav.report(cal, '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
                                 "<D:prop><D:getetag/></D:prop></D:sync-collection>", depth="0")
    assert not [x for x in seen if "objects.data" in x], seen
    full = dav.report(cal, '<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:sync-token/>'
                           "<D:sync-level>1</D:sync-level><D:prop><D:getetag/><C:calendar-data/></D:prop>"
                           "</D:sync-collection>", depth="0")
    assert len(_etags(full)) == 12
    assert _etags(listing) == _etags(full) == _etags(synced)


def test_served_texts_are_cached_per_version_and_viewer(store, world, dav: Dav, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A second multiget renders nothing (the texts of this version were kept); a change made through
    another dialect is rendered again and served changed; another viewer gets texts of their own."""
    rendered = counted_renders(monkeypatch)
    folder = world.default_folder(world.alice, Module.CALENDAR)
    entries = s_entries = []
    with world.as_user(world.alice, write=True) as s:
        entries = s.get_folder(folder).folder.permissions
        s.set_permissions(folder, entries + [Permission(world.bob, False, rights_for_level(2))])
        for i in range(5):
            master = parse_calendar(event(f"t{i}", f"Talk {i}", f"2026031{i}T090000Z", f"2026031{i}T100000Z"))[0].master  # type: ignore[union-attr]
            master.ignore_conflicts = True
            s_entries.append(s.create_object(folder, master).object_id)
    base = f"/dav/calendars/alice/{folder}/"
    body = MG.format(hrefs="".join(f"<D:href>{base}{i}.ics</D:href>" for i in s_entries))
    first = dav.report(base, body)
    assert sorted(rendered) == sorted(s_entries)
    rendered.clear()
    with counted(store) as seen:
        again = dav.report(base, body)
    assert rendered == [] and again.body == first.body
    assert not [x for x in seen if "objects.data" in x]  # served from texts: no object decoded at all
    with world.as_user(world.alice, write=True) as s:
        changed = s.get_object(folder, s_entries[2])
        changed.title = "Talk moved"
        changed.ignore_conflicts = True
        s.update_object(folder, changed)
    third = dav.report(base, body)
    assert rendered == [s_entries[2]]
    assert "SUMMARY:Talk moved" in third.prop(f"{base}{s_entries[2]}.ics", "C:calendar-data").text
    rendered.clear()
    bob_view = f"/dav/calendars/bob/{folder}/"
    dav.report(bob_view, MG.format(hrefs="".join(f"<D:href>{bob_view}{i}.ics</D:href>" for i in s_entries)),
               user="bob")
    assert sorted(rendered) == sorted(s_entries)


def test_warm_multiget_reads_only_rows_texts_and_what_membership_needs(store, world, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    """Once the texts are kept, a multiget reads the objects' rows by name, the series' members and the
    texts: the participants only of objects not at home in the folder (an invitation in the guest's
    calendar, which must still resolve), and no series lookup at all in an address book."""
    from datetime import UTC, datetime, timedelta

    from oxsync.model import Appointment, Participant
    from oxsync.model.appointment import ParticipantKind

    cal, book = dav.calendar(), dav.addressbook()
    for i in range(6):
        assert dav.put(f"{cal}ev{i}.ics", _series_with_override(f"s{i}") if i % 3 == 0 else event(f"e{i}")).status == 201
        assert dav.put(f"{book}c{i}.vcf", vcard(f"c{i}", f"Person{i} Doe")).status == 201
    cal_body = MG.format(hrefs="".join(f"<D:href>{cal}ev{i}.ics</D:href>" for i in range(6)))
    book_body = AMG.format(hrefs="".join(f"<D:href>{book}c{i}.vcf</D:href>" for i in range(6)))
    for path, body in ((cal, cal_body), (book, book_body)):
        first = dav.report(path, body)
        with counted(store) as seen:
            again = dav.report(path, body)
        assert again.status == 207 and again.body == first.body and len(again.hrefs()) == 6
        assert not [x for x in seen if "FROM participants" in x], seen  # all at home, none private
        if path == book:
            assert not [x for x in seen if "series_id IN" in x], seen

    start = datetime(2027, 1, 4, 9, tzinfo=UTC)  # alice invites bob: the object lives in alice's calendar
    with world.as_user(world.alice, write=True) as s:
        meeting = s.create_object(world.default_folder(world.alice, Module.CALENDAR), Appointment(
            title="Review", start_date=start, end_date=start + timedelta(hours=1), ignore_conflicts=True,
            participants=[Participant(ParticipantKind.USER, world.alice), Participant(ParticipantKind.USER, world.bob)]))
    bob_cal = dav.calendar("bob")
    href = f"{bob_cal}{meeting.object_id}.ics"
    for _ in range(2):  # rendered, then served from the kept text
        with counted(store) as seen:
            reply = dav.report(bob_cal, MG.format(hrefs=f"<D:href>{href}</D:href>"), user="bob")
        assert "SUMMARY:Review" in reply.prop(href, "C:calendar-data").text
        assert [x for x in seen if "FROM participants" in x]  # bob's copy is placed by his participation


def test_multiget_reads_each_row_once(store, dav: Dav) -> None:  # type: ignore[no-untyped-def]
    """The rows a multiget found by name are not read again when it looks for their series' exceptions:
    only the exceptions (not asked by name) are read by id."""
    cal = dav.calendar()
    for i in range(6):
        assert dav.put(f"{cal}ev{i}.ics", _series_with_override(f"s{i}") if i % 3 == 0 else event(f"e{i}")).status == 201
    body = MG.format(hrefs="".join(f"<D:href>{cal}ev{i}.ics</D:href>" for i in range(6)))
    by_id: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "FROM objects" in statement and "objects.id = ANY" in statement:  # PostgreSQL: one array of ids
            by_id.append(len(next(v for v in parameters.values() if isinstance(v, list))))
        elif "FROM objects" in statement and "objects.id IN" in statement:
            by_id.append(len(parameters) - 1)  # the tenant, then the ids

    first = dav.report(cal, body)
    sa_event.listen(store.engine, "before_cursor_execute", count)
    try:
        again = dav.report(cal, body)
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", count)
    assert again.body == first.body and first.body.count(b"Moved") == 2
    assert by_id == [2], by_id  # the two overrides, not the six masters again
