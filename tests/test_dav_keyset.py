"""Listings read the folder in id ranges (`id > after ORDER BY id LIMIT listing_page_rows`, store/bulk.py
`member_page`) and write each page as it comes: a listing holds one page of members whatever the
folder's size, a sync-collection continuation page reads only the ids above its token's, and the
answers are byte for byte those of listing the folder at once, series whose exceptions lie on other
pages included. Listings leave the name cache alone. Work is counted, never timed."""

from __future__ import annotations

import gc
import random
import re
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from oxsync.dav import install
from oxsync.dav.layout import NameCache, group_objects, group_page, is_master
from oxsync.model import Module
from oxsync.store.bulk import MemberPage, ObjectVersion
from tests.davhelp import NS, Dav, event, sync_body, vcard
from tests.fixtures import recorded_statements

PAGE = 5
EVENTS = 23


def _series(uid: str, moved: bool) -> str:
    override = (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260914T090000Z\r\n"
                "DTSTART:20260915T090000Z\r\nDTEND:20260915T100000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\n") if moved else ""
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260907T090000Z\r\n"
            "DTEND:20260907T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Series\r\nEND:VEVENT\r\n"
            f"{override}END:VCALENDAR\r\n")


@pytest.fixture
def servers(live_server, store, world) -> tuple[Dav, Dav]:  # type: ignore[no-untyped-def]
    """(pages of PAGE rows, one page holding any folder) on the same store."""
    paged = Dav(live_server(store, setup=install, dav={"listing_page_rows": PAGE}).port, world)
    whole = Dav(live_server(store, setup=install, dav={"listing_page_rows": 100_000}).port, world)
    return paged, whole


def _fill(dav: Dav) -> str:
    """EVENTS events and two series in the calendar; each series' exception is written last, so its id
    lies pages away from its master's."""
    cal = dav.calendar()
    assert dav.put(f"{cal}series-a.ics", _series("sa", False)).status == 201
    for i in range(EVENTS):
        assert dav.put(f"{cal}ev{i}.ics", event(f"e{i}", f"Event {i}")).status == 201
        if i == 7:
            assert dav.put(f"{cal}series-b.ics", _series("sb", False)).status == 201
    for name, uid in (("series-a", "sa"), ("series-b", "sb")):
        assert dav.put(f"{cal}{name}.ics", _series(uid, True)).status == 204
    return cal


def _listings(store) -> list[str]:  # type: ignore[no-untyped-def]
    """Statements listing a folder's object rows."""
    return recorded_statements(store, lambda sql: "FROM objects" in sql and "folder_id" in sql and "UNION ALL" in sql)


def _pages(dav: Dav, cal: str, props: str, limit: int | None = None) -> list[str]:
    """Every page of an initial sync-collection, the continuation tokens followed."""
    bodies, token = [], ""
    for _ in range(50):
        reply = dav.report(cal, sync_body(token, props, limit))
        assert reply.status == 207
        bodies.append(reply.text)
        token = reply.xml.find("D:sync-token", NS).text
        if "507 Insufficient Storage" not in reply.text:
            return bodies
    raise AssertionError("sync-collection never ended")


def test_a_listing_reads_the_folder_a_page_at_a_time_and_answers_as_one(store, servers) -> None:  # type: ignore[no-untyped-def]
    paged, whole = servers
    cal = _fill(paged)
    rows = EVENTS + 2 + 2  # the events, two masters, two exceptions
    for props in ("<D:getetag/>", "<D:getetag/><D:displayname/><C:schedule-tag/>"):  # by template, described
        with _listings(store) as seen:
            reply = paged.propfind(cal, props, "1")
        assert reply.status == 207
        assert len(seen) == rows // PAGE + 1, seen  # ceil(rows / PAGE), and the page that finds none left
        assert all("LIMIT" in sql for sql in seen)
        assert reply.body == whole.propfind(cal, props, "1").body
        assert len(reply.hrefs()) == 1 + EVENTS + 2  # the collection, the events, each series once
    series = paged.report(cal, sync_body("", "<C:calendar-data/>")).prop(f"{cal}series-a.ics", "C:calendar-data")
    assert "RECURRENCE-ID" in series.text and "RRULE" in series.text  # the exception, pages away, served with it
    with _listings(store) as seen:
        synced = paged.report(cal, sync_body()).body
    assert synced == whole.report(cal, sync_body()).body
    assert len(seen) == rows // PAGE + 1


MEETING = ("ORGANIZER:mailto:alice@example.com\r\n"
           "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\r\n"
           "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\n")


def test_meetings_placed_for_a_participant_are_paged_with_the_folder(store, servers) -> None:  # type: ignore[no-untyped-def]
    """Bob's calendar: his own events and alice's meetings (at home in her calendar, in his by his
    participant row) interleaved by id across pages, and a page of his own events that ends before a
    run of meetings: listed as at once."""
    paged, whole = servers
    cal, bob = paged.calendar(), paged.calendar("bob")
    for i in range(17):
        if i % 3 == 0 or 9 <= i <= 13:
            assert paged.put(f"{cal}m{i}.ics", event(f"m{i}", f"Meeting {i}", extra=MEETING)).status == 201
        else:
            assert paged.put(f"{bob}own{i}.ics", event(f"b{i}", f"Own {i}"), user="bob").status == 201
    listed = paged.propfind(bob, "<D:getetag/>", "1", user="bob")
    assert len(listed.hrefs()) == 1 + 17
    assert listed.body == whole.propfind(bob, "<D:getetag/>", "1", user="bob").body
    for limit in (None, 3):
        token, hrefs = "", []
        for _ in range(20):
            reply = paged.report(bob, sync_body(token, "<D:getetag/>", limit), user="bob")
            hrefs += [h for h in reply.hrefs() if h != bob]
            token = reply.xml.find("D:sync-token", NS).text
            if "507 Insufficient Storage" not in reply.text:
                break
        assert hrefs == [h for h in whole.report(bob, sync_body(), user="bob").hrefs()]


def test_a_continuation_page_reads_only_the_ids_after_its_token(store, servers) -> None:  # type: ignore[no-untyped-def]
    paged, whole = servers
    cal = _fill(paged)
    for props in ("<D:getetag/>", "<D:getetag/><C:calendar-data/>"):
        first = whole.report(cal, sync_body("", props)).text
        token = ""
        pages = []
        for _ in range(20):
            after = int(token.rsplit(".", 1)[1]) if token.count(".") >= 3 else 0
            with recorded_statements(store, lambda sql: "FROM objects" in sql and "UNION ALL" in sql) as seen, \
                    recorded_statements(store, lambda sql: True) as every:
                reply = paged.report(cal, sync_body(token, props, limit=4))
            pages.append(reply)
            assert seen and all("LIMIT" in sql for sql in seen)
            assert len(seen) <= 2  # 4 members: one page of PAGE rows, or two when exceptions were skipped
            # the rows are read by key from the token's id on: every listing statement is bound to it
            bound = [sql for sql in every if "objects.id > " in sql]
            assert bound, every
            token = reply.xml.find("D:sync-token", NS).text
            if "507 Insufficient Storage" not in reply.text:
                break
            assert int(token.rsplit(".", 1)[1]) > after
        hrefs = [h for page in pages for h in page.hrefs() if h != cal]
        assert hrefs == [h for h in whole.report(cal, sync_body("", props)).hrefs()]
        assert len(hrefs) == EVENTS + 2 == len(set(hrefs))
        def members(text: str) -> list[str]:
            return [r for r in re.findall(r"<D:response>.*?</D:response>", text, re.S) if "507 Insufficient" not in r]

        assert [r for page in pages for r in members(page.text)] == members(first)


def test_listings_leave_the_name_cache_alone(store, servers) -> None:  # type: ignore[no-untyped-def]
    paged, _ = servers
    cal = _fill(paged)
    book = paged.addressbook()
    for i in range(7):
        assert paged.put(f"{book}c{i}.vcf", vcard(f"c{i}", f"Person {i}")).status == 201
    caches = [o for o in gc.get_objects() if isinstance(o, NameCache)]
    assert caches
    for cache in caches:
        cache._names.clear()  # what the PUTs above remembered
    assert paged.propfind(cal, "<D:getetag/>", "1").status == 207
    assert paged.report(cal, sync_body()).status == 207
    assert paged.report(book, sync_body("", "<D:getetag/><CR:address-data/>")).status == 207
    assert sum(len(cache._names) for cache in caches) == 0


def test_a_delete_after_a_restart_keeps_the_clients_href(store, servers) -> None:  # type: ignore[no-untyped-def]
    """The tombstone keeps the name: no listing needs to have filled the name cache."""
    paged, _ = servers
    cal = paged.calendar()
    assert paged.put(f"{cal}Odd-Name_1.ics", event("odd", "Odd")).status == 201
    token = paged.report(cal, sync_body()).xml.find("D:sync-token", NS).text
    for cache in (o for o in gc.get_objects() if isinstance(o, NameCache)):
        cache._names.clear()  # as after a restart
    assert paged.request("DELETE", f"{cal}Odd-Name_1.ics").status == 204
    for cache in (o for o in gc.get_objects() if isinstance(o, NameCache)):
        cache._names.clear()
    reply = paged.report(cal, sync_body(token))
    assert reply.status == 207 and f"{cal}Odd-Name_1.ics" in reply.hrefs()


@pytest.mark.parametrize("forget", [False, True], ids=["name-cache", "tombstone"])
def test_a_removed_member_is_reported_by_its_encoded_href(store, servers, forget: bool) -> None:  # type: ignore[no-untyped-def]
    """A name with a space is listed as %20; its removal must be reported by the same href, whether the
    name comes from this node's name cache or from the store's tombstone."""
    paged, _ = servers
    cal = paged.calendar()
    assert paged.put(f"{cal}two%20words.ics", event("two-words", "Two words")).status == 201
    listed = paged.report(cal, sync_body())
    assert f"{cal}two%20words.ics" in listed.hrefs()
    token = listed.xml.find("D:sync-token", NS).text
    assert paged.request("DELETE", f"{cal}two%20words.ics").status == 204
    if forget:
        for cache in (o for o in gc.get_objects() if isinstance(o, NameCache)):
            cache._names.clear()
    gone = paged.report(cal, sync_body(token))
    assert gone.status == 207 and gone.hrefs() == [f"{cal}two%20words.ics"]


def _version(object_id: int, series: int | None) -> ObjectVersion:
    return ObjectVersion(object_id, f"n{object_id}", object_id, series)


def _store_page(everything: list[ObjectVersion], after: int, rows: int) -> MemberPage:
    """What store `member_page` answers for a folder holding `everything` (all readable)."""
    above = [v for v in everything if v.object_id > after]
    versions = above[:rows]
    if not versions:
        return MemberPage([], [], None)
    last = versions[-1].object_id
    inside = {v.object_id for v in versions}
    masters = {v.object_id for v in versions if is_master(v)}
    by_id = {v.object_id: v for v in everything}
    outside = {v.object_id for v in everything if v.object_id not in inside and v.recurrence_id in masters
               and v.recurrence_id != v.object_id}
    outside |= {v.recurrence_id for v in versions if v.recurrence_id is not None
                and not after < v.recurrence_id <= last and v.recurrence_id in by_id}
    return MemberPage(versions, [by_id[i] for i in sorted(outside)], last if len(versions) == rows else None)


@pytest.mark.parametrize("seed", range(30))
def test_pages_group_series_as_the_whole_folder_does(seed: int) -> None:
    """Masters, exceptions before and after their master's page, orphans (no such master) and orphans
    of an exception master: page by page, the resources of `group_objects` over the whole folder."""
    rng = random.Random(seed)
    ids = sorted(rng.sample(range(1, 400), 60))
    everything: list[ObjectVersion] = []
    for object_id in ids:
        roll = rng.random()
        earlier = [v.object_id for v in everything]
        if roll < 0.5 or not earlier:
            everything.append(_version(object_id, None))
        elif roll < 0.65:
            everything.append(_version(object_id, object_id))  # a series master
        elif roll < 0.9:
            everything.append(_version(object_id, rng.choice(ids)))  # an exception, master before or after
        else:
            everything.append(_version(object_id, 1000 + object_id))  # its master is not here
    whole = group_objects(_Calendar(), everything)  # type: ignore[arg-type]
    rows = rng.choice([1, 2, 3, 7, 16])
    masters, orphans, after = [], [], 0
    while True:
        page = _store_page(everything, after, rows)
        found, lone = group_page(_Calendar(), page)  # type: ignore[arg-type]
        masters += found
        orphans += lone
        if page.last is None:
            break
        after = page.last

    def shape(resources: list) -> list:  # type: ignore[type-arg]
        return [(r.name, r.object_id, [e.object_id for e in r.exceptions]) for r in resources]

    assert shape(masters + orphans) == shape(whole)


class _Calendar:
    """What grouping reads of a collection: its module (for default names)."""

    module = Module.CALENDAR


def test_a_page_is_a_range_of_the_folder_index(store, servers) -> None:  # type: ignore[no-untyped-def]
    """SQLite's plans: the folder's rows by (tenant, folder, id > after), the meetings placed in it for a
    participant likewise; never a walk of the tenant's objects or participants, nor of all the folder's
    participant rows (each page would cost the folder's size again)."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans")
    paged, _ = servers
    cal = _fill(paged)
    seen: list[tuple[str, Any]] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "UNION ALL" in statement or "series_id >" in statement:
            seen.append((statement, parameters))

    sa_event.listen(store.engine, "before_cursor_execute", note)
    try:
        assert paged.propfind(cal, "<D:getetag/>", "1").status == 207
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", note)
    assert seen
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            steps = " / ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "SCAN objects" not in steps and "SCAN participants" not in steps, steps
            if "UNION ALL" in statement:
                assert "ix_objects_folder (tenant_id=? AND folder_id=? AND id>?)" in steps, steps
                assert "ix_participants_folder_object (tenant_id=? AND folder_id=? AND object_id>? AND object_id<?)" in steps, steps
            else:
                assert "ix_objects_series (tenant_id=? AND series_id>? AND series_id<?)" in steps, steps
