"""REPORTs: calendar-query (time ranges with recurrence, text-match, VTODO), multigets with limits,
expand, addressbook-query, free-busy-query, and sync-collection per RFC 6578."""

from __future__ import annotations

import pytest

from oxsync.dav import install
from tests.davhelp import NS, Dav, event, sync_body, todo, vcard
from tests.fixtures import raw_write

CQ = '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>{data}</D:prop>' \
     '<C:filter><C:comp-filter name="VCALENDAR">{inner}</C:comp-filter></C:filter></C:calendar-query>'


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


def names(reply) -> set[str]:  # type: ignore[no-untyped-def]
    return {h.rsplit("/", 1)[-1] for h in reply.hrefs() if not h.endswith("/")}


def _fill(dav: Dav) -> str:
    cal = dav.calendar()
    dav.put(cal + "march.ics", event("m1", "Budget review", "20260310T090000Z", "20260310T100000Z"))
    dav.put(cal + "april.ics", event("a1", "Team lunch", "20260410T120000Z", "20260410T130000Z"))
    dav.put(cal + "weekly.ics", event("w1", "Weekly sync", "20260105T080000Z", "20260105T083000Z",
                                      extra="RRULE:FREQ=WEEKLY\r\n"))
    return cal


def test_calendar_query_time_range_with_recurrence(dav: Dav) -> None:
    cal = _fill(dav)
    march = CQ.format(data="", inner='<C:comp-filter name="VEVENT"><C:time-range start="20260309T000000Z" '
                                     'end="20260311T000000Z"/></C:comp-filter>')
    assert names(dav.report(cal, march)) == {"march.ics", "weekly.ics"}
    summer = march.replace("20260309", "20260705").replace("20260311", "20260705T070000Z")
    summer = CQ.format(data="", inner='<C:comp-filter name="VEVENT"><C:time-range start="20260701T000000Z" '
                                      'end="20260702T000000Z"/></C:comp-filter>')
    assert names(dav.report(cal, summer)) == set()
    text = CQ.format(data="", inner='<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY">'
                                   '<C:text-match>LUNCH</C:text-match></C:prop-filter></C:comp-filter>')
    assert names(dav.report(cal, text)) == {"april.ics"}
    negate = text.replace("<C:text-match>", '<C:text-match negate-condition="yes">')
    assert names(dav.report(cal, negate)) == {"march.ics", "weekly.ics"}
    octet = text.replace("<C:text-match>", '<C:text-match collation="i;octet">')
    assert names(dav.report(cal, octet)) == set()
    everything = CQ.format(data="<C:calendar-data/>", inner='<C:comp-filter name="VEVENT"/>')
    reply = dav.report(cal, everything)
    assert names(reply) == {"march.ics", "april.ics", "weekly.ics"}
    assert "BEGIN:VCALENDAR" in reply.prop(cal + "march.ics", "C:calendar-data").text
    bad = CQ.format(data="", inner='<C:comp-filter name="VEVENT"><C:time-range start="nonsense"/></C:comp-filter>')
    assert dav.report(cal, bad).status == 400


def test_expand_recurrences(dav: Dav) -> None:
    cal = _fill(dav)
    body = CQ.format(data='<C:calendar-data><C:expand start="20260101T000000Z" end="20260120T000000Z"/></C:calendar-data>',
                     inner='<C:comp-filter name="VEVENT"><C:time-range start="20260101T000000Z" '
                           'end="20260120T000000Z"/></C:comp-filter>')
    reply = dav.report(cal, body)
    data = reply.prop(cal + "weekly.ics", "C:calendar-data").text
    assert data.count("BEGIN:VEVENT") == 3 and "RRULE" not in data
    assert "RECURRENCE-ID:20260112T080000Z" in data


def test_limit_recurrence_set_and_task_expand(dav: Dav) -> None:
    cal = dav.calendar()
    series = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:lim\r\n"
              "DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\n"
              "RRULE:FREQ=WEEKLY;COUNT=8\r\nSUMMARY:S\r\nEND:VEVENT\r\n"
              "BEGIN:VEVENT\r\nUID:lim\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260112T090000Z\r\n"
              "DTSTART:20260112T110000Z\r\nDTEND:20260112T120000Z\r\nSUMMARY:early\r\nEND:VEVENT\r\n"
              "BEGIN:VEVENT\r\nUID:lim\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260216T090000Z\r\n"
              "DTSTART:20260216T110000Z\r\nDTEND:20260216T120000Z\r\nSUMMARY:late\r\nEND:VEVENT\r\n"
              "END:VCALENDAR\r\n")
    assert dav.put(cal + "lim.ics", series).status == 201
    body = CQ.format(data='<C:calendar-data><C:limit-recurrence-set start="20260201T000000Z" '
                          'end="20260301T000000Z"/></C:calendar-data>', inner='<C:comp-filter name="VEVENT"/>')
    data = dav.report(cal, body).prop(cal + "lim.ics", "C:calendar-data").text
    assert "SUMMARY:late" in data and "SUMMARY:early" not in data and "RRULE" in data
    tasks = dav.tasks()
    dav.put(tasks + "rt.ics", todo("rt", "Water plants", "DTSTART;VALUE=DATE:20260105\r\n"
                                   "DUE;VALUE=DATE:20260106\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"))
    body = CQ.format(data='<C:calendar-data><C:expand start="20260101T000000Z" end="20260201T000000Z"/>'
                          "</C:calendar-data>",
                     inner='<C:comp-filter name="VTODO"><C:time-range start="20260101T000000Z" '
                           'end="20260201T000000Z"/></C:comp-filter>')
    data = dav.report(tasks, body).prop(tasks + "rt.ics", "C:calendar-data").text
    assert data.count("BEGIN:VTODO") == 4 and "RRULE" not in data


def test_vtodo_query(dav: Dav) -> None:
    tasks = dav.tasks()
    dav.put(tasks + "due.ics", todo("t1", "Pay bills", "DUE:20260315T120000Z\r\n"))
    dav.put(tasks + "open.ics", todo("t2", "Someday", "CREATED:20260401T000000Z\r\n"))
    dav.put(tasks + "done.ics", todo("t3", "Done", "STATUS:COMPLETED\r\nCOMPLETED:20260101T100000Z\r\n"))
    ranged = CQ.format(data="", inner='<C:comp-filter name="VTODO"><C:time-range start="20260314T000000Z" '
                                      'end="20260316T000000Z"/></C:comp-filter>')
    found = names(dav.report(tasks, ranged))  # RFC 4791 §9.9: CREATED keeps the undated task out
    assert "due.ics" in found and "open.ics" not in found
    pending = CQ.format(data="", inner='<C:comp-filter name="VTODO"><C:prop-filter name="COMPLETED">'
                                       "<C:is-not-defined/></C:prop-filter></C:comp-filter>")
    assert names(dav.report(tasks, pending)) == {"due.ics", "open.ics"}
    time_of_day = dav.request("GET", tasks + "due.ics").text
    assert "DUE:20260315T120000Z" in time_of_day


def test_multiget_and_limit(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(live_server(store, setup=install, limits={"max_multiget_hrefs": 3}).port, world)
    cal = _fill(dav)
    hrefs = "".join(f"<D:href>{cal}{n}</D:href>" for n in ("march.ics", "april.ics", "gone.ics"))
    body = ('<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
            f"<C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>")
    reply = dav.report(cal, body)
    assert reply.status == 207
    assert "UID:m1" in reply.prop(cal + "march.ics", "C:calendar-data").text
    missing = [r for r in reply.xml.findall("D:response", NS) if r.find("D:href", NS).text.endswith("gone.ics")]
    assert "404" in missing[0].find("D:status", NS).text
    too_many = body.replace("</C:calendar-multiget>", f"<D:href>{cal}x.ics</D:href></C:calendar-multiget>")
    refused = dav.report(cal, too_many)
    assert refused.status == 403 and b"number-of-matches-within-limits" in refused.body


def test_addressbook_query_and_multiget(dav: Dav) -> None:
    book = dav.addressbook()
    dav.put(book + "jane.vcf", vcard("c1", "Jane Doe"))
    dav.put(book + "john.vcf", vcard("c2", "John Smith", "TEL;TYPE=CELL:+33 6 12 34 56 78\r\n"))
    query = ('<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/>'
             '<CR:address-data/></D:prop><CR:filter><CR:prop-filter name="FN"><CR:text-match match-type="starts-with">'
             "jo</CR:text-match></CR:prop-filter></CR:filter></CR:addressbook-query>")
    reply = dav.report(book, query)
    assert names(reply) == {"john.vcf"}
    assert "FN:John Smith" in reply.prop(book + "john.vcf", "CR:address-data").text
    tel = query.replace('name="FN"><CR:text-match match-type="starts-with">jo</CR:text-match>', 'name="TEL">')
    assert names(dav.report(book, tel)) == {"john.vcf"}
    limited = query.replace("<CR:filter>", "<CR:limit><CR:nresults>1</CR:nresults></CR:limit><CR:filter>") \
        .replace('match-type="starts-with">jo', 'match-type="contains">o')
    assert b"507" in dav.report(book, limited).body
    get = ('<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop>'
           f'<CR:address-data version="4.0"/></D:prop><D:href>{book}jane.vcf</D:href></CR:addressbook-multiget>')
    assert "VERSION:4.0" in dav.report(book, get).prop(book + "jane.vcf", "CR:address-data").text


def test_free_busy_query(dav: Dav) -> None:
    cal = _fill(dav)
    dav.put(cal + "free.ics", event("f1", "Lunch alone", "20260310T120000Z", "20260310T130000Z",
                                    "TRANSP:TRANSPARENT\r\n"))
    body = ('<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20260309T000000Z" '
            'end="20260311T000000Z"/></C:free-busy-query>')
    reply = dav.report(cal, body)
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/calendar")
    assert "20260310T090000Z/20260310T100000Z" in reply.text and "20260309T080000Z/20260309T083000Z" in reply.text
    assert "20260310T120000Z" not in reply.text and "Budget" not in reply.text


def test_sync_collection(dav: Dav) -> None:
    cal = dav.calendar()
    first = dav.report(cal, sync_body(), depth="0")
    assert first.status == 207
    token0 = first.xml.find("D:sync-token", NS).text
    assert token0.startswith("http://oxsync/ns/sync/")
    dav.put(cal + "a.ics", event("s-a"))
    dav.put(cal + "b.ics", event("s-b"))
    delta = dav.report(cal, sync_body(token0), depth="0")
    assert names(delta) == {"a.ics", "b.ics"}
    token1 = delta.xml.find("D:sync-token", NS).text
    assert token1 != token0
    ctag = dav.propfind(cal, "<CS:getctag/><D:sync-token/>")
    assert ctag.prop(cal, "D:sync-token").text == token1
    assert names(dav.report(cal, sync_body(token1), depth="0")) == set()
    dav.request("DELETE", cal + "a.ics")
    dav.put(cal + "b.ics", event("s-b", "changed"))
    after = dav.report(cal, sync_body(token1), depth="0")
    statuses = {r.find("D:href", NS).text.rsplit("/", 1)[-1]: r for r in after.xml.findall("D:response", NS)}
    assert "404" in statuses["a.ics"].find("D:status", NS).text
    assert statuses["b.ics"].find(".//D:getetag", NS) is not None
    for bad in ("http://oxsync/ns/sync/99999999", "urn:other:1", "http://oxsync/ns/sync/x"):
        refused = dav.report(cal, sync_body(bad), depth="0")
        assert refused.status == 403 and b"valid-sync-token" in refused.body


def test_sync_collection_limit_pages_without_loss(dav: Dav) -> None:
    cal = dav.calendar()
    token = dav.report(cal, sync_body(), depth="0").xml.find("D:sync-token", NS).text
    for i in range(5):
        dav.put(cal + f"p{i}.ics", event(f"page-{i}"))
    seen: set[str] = set()
    pages = 0
    while True:
        reply = dav.report(cal, sync_body(token, limit=2), depth="0")
        assert reply.status == 207
        pages += 1
        seen |= names(reply)
        truncated = any(r.find("D:href", NS).text == cal and "507" in r.find("D:status", NS).text
                        for r in reply.xml.findall("D:response", NS))
        token = reply.xml.find("D:sync-token", NS).text
        if not truncated:
            break
        assert pages < 10
    assert seen == {f"p{i}.ics" for i in range(5)} and pages == 3
    initial = dav.report(cal, sync_body(limit=4), depth="0")
    assert len(names(initial)) == 4 and b"number-of-matches-within-limits" in initial.body


def test_sync_reports_changes_from_other_dialects(dav: Dav, world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.model import Appointment, Module

    cal = dav.calendar()
    folder = world.default_folder(world.alice, Module.CALENDAR)
    token = dav.report(cal, sync_body(), depth="0").xml.find("D:sync-token", NS).text
    from datetime import UTC, datetime

    with world.as_user(world.alice, write=True) as s:
        created = s.create_object(folder, Appointment(title="From OX", start_date=datetime(2026, 5, 1, 9, tzinfo=UTC),
                                                      end_date=datetime(2026, 5, 1, 10, tzinfo=UTC)))
    delta = dav.report(cal, sync_body(token, "<D:getetag/><C:calendar-data/>"), depth="0")
    assert names(delta) == {f"{created.object_id}.ics"}
    assert "SUMMARY:From OX" in dav.request("GET", f"{cal}{created.object_id}.ics").text


def test_removed_member_is_reported_by_its_name_on_any_node(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    """The tombstone keeps the client's resource name: a node that never saw the member (or one that
    restarted) still reports `client-name.ics` as 404. Only a tombstone from before names were kept
    forces a full resync."""
    from sqlalchemy import update

    from oxsync.model import Module
    from oxsync.store import schema

    running = live_server(store, setup=install)
    dav = Dav(running.port, world)
    cal = dav.calendar()
    dav.put(cal + "client-name.ics", event("renamed"))
    dav.put(cal + "legacy.ics", event("legacy"))
    token = dav.report(cal, sync_body(), depth="0").xml.find("D:sync-token", NS).text
    folder = world.default_folder(world.alice, Module.CALENDAR)
    with world.as_user(world.alice, write=True) as s:
        s.delete_object(folder, s.find_by_uid(folder, "renamed").object_id)
    other_node = Dav(live_server(store, setup=install).port, world)  # its name cache has never seen them
    after = other_node.report(cal, sync_body(token), depth="0")
    assert after.status == 207
    [gone] = after.xml.findall("D:response", NS)
    assert gone.find("D:href", NS).text == cal + "client-name.ics" and "404" in gone.find("D:status", NS).text
    token = after.xml.find("D:sync-token", NS).text
    with world.as_user(world.alice, write=True) as s:
        legacy_id = s.find_by_uid(folder, "legacy").object_id
        s.delete_object(folder, legacy_id)
    with raw_write(store.engine) as conn:  # as written before tombstones kept names
        conn.execute(update(schema.changes).where(schema.changes.c.object_id == legacy_id).values(resource_name=None))
    refused = other_node.report(cal, sync_body(token), depth="0")
    assert refused.status == 403 and b"valid-sync-token" in refused.body
    assert names(other_node.report(cal, sync_body(), depth="0")) == set()
