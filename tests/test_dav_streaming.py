"""Listings, syncs and reports hold one window of the folder at a time: objects are loaded WINDOW at a
time as their texts are needed (dav/texts.py), the multistatus is serialized every FLUSH_EVERY responses
and spooled to a file beyond SPOOL_BYTES (dav/stream.py). The answers are byte for byte those of one
big window; the work is counted (the ids each statement loads), never timed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from lxml import etree
from sqlalchemy import delete
from sqlalchemy import event as sa_event

from oxsync.dav import install, stream, texts
from oxsync.dav.xml import DAV, qn
from oxsync.store import schema as s
from tests.davhelp import Dav, event, vcard
from tests.fixtures import raw_write

CAL_DATA = '<D:prop><D:getetag/><C:calendar-data/></D:prop>'
QUERIES = {
    "propfind": ("PROPFIND", "cal", '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                 f"{CAL_DATA}</D:propfind>"),
    "calendar-query": ("REPORT", "cal", '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                       f'{CAL_DATA}<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                       '<C:time-range start="20260301T000000Z" end="20260401T000000Z"/></C:comp-filter>'
                       "</C:comp-filter></C:filter></C:calendar-query>"),
    "sync": ("REPORT", "cal", '<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
             f"<D:sync-token/><D:sync-level>1</D:sync-level>{CAL_DATA}</D:sync-collection>"),
    "addressbook-query": ("REPORT", "book", '<CR:addressbook-query xmlns:D="DAV:" '
                          'xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><CR:address-data/>'
                          '</D:prop><CR:filter><CR:prop-filter name="FN"><CR:text-match>Person</CR:text-match>'
                          "</CR:prop-filter></CR:filter></CR:addressbook-query>"),
}


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    return Dav(live_server(store, setup=install).port, world)


@contextmanager
def loads(store) -> Iterator[list[int]]:  # type: ignore[no-untyped-def]
    """Parameters of each statement that reads object bodies (objects.data): how many ids it loads."""
    seen: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "objects.data" in statement:  # an id list binds one parameter per id, or one array (PostgreSQL)
            values = parameters.values() if isinstance(parameters, dict) else parameters
            seen.append(sum(len(v) if isinstance(v, list) else 1 for v in values))

    sa_event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", count)


def _answers(dav: Dav, cal: str, book: str) -> dict[str, bytes]:
    out = {}
    for name, (method, where, body) in QUERIES.items():
        reply = dav.request(method, cal if where == "cal" else book, body, Depth="1",
                            Content_Type="application/xml; charset=utf-8")
        assert reply.status == 207, (name, reply.body[:300])
        out[name] = reply.body
    return out


def _forget_texts(store) -> None:  # type: ignore[no-untyped-def]
    with raw_write(store.engine) as conn:
        conn.execute(delete(s.object_texts))


def test_reports_load_one_window_at_a_time_and_answer_the_same(store, dav: Dav, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cal, book = dav.calendar(), dav.addressbook()
    for i in range(30):
        day = f"202603{10 + i % 18}"
        extra = "RRULE:FREQ=WEEKLY;COUNT=3\r\n" if i % 7 == 0 else ""
        assert dav.put(f"{cal}ev{i}.ics", event(f"e{i}", f"Event {i}", f"{day}T090000Z", f"{day}T100000Z",
                                                extra=extra)).status == 201
        assert dav.put(f"{book}c{i}.vcf", vcard(f"c{i}", f"Person {i}")).status == 201
    _forget_texts(store)
    with loads(store) as one_window:
        expected = _answers(dav, cal, book)  # cold: every object loaded to render its text
    assert max(one_window) > 30  # one statement loaded a whole folder's objects

    monkeypatch.setattr(texts, "WINDOW", 4)
    monkeypatch.setattr(stream, "FLUSH_EVERY", 3)
    monkeypatch.setattr(stream, "SPOOL_BYTES", 2000)  # every answer here is spooled to a file and streamed
    _forget_texts(store)
    with loads(store) as windowed:
        got = _answers(dav, cal, book)
    assert got == expected
    assert len(windowed) >= 4 * len(QUERIES)
    assert max(windowed) <= 2 * 4 + 4, windowed  # a window of 4 resources (a series may bring its exceptions)
    for body in got.values():
        assert len(etree.fromstring(body).findall(qn(DAV, "response"))) >= 20


def test_a_multiget_in_any_order_reads_each_text_once(store, dav: Dav, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cal = dav.calendar()
    hrefs = [f"{cal}ev{i}.ics" for i in range(30)]
    for i, href in enumerate(hrefs):
        assert dav.put(href, event(f"e{i}", f"Event {i}", "20260310T090000Z", "20260310T100000Z")).status == 201
    monkeypatch.setattr(texts, "WINDOW", 4)
    asked = sorted(hrefs, key=lambda h: (int(h.rsplit("ev", 1)[1][:-4]) * 7) % 30)  # not the store's order
    body = ('<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">' + CAL_DATA +
            "".join(f"<D:href>{h}</D:href>" for h in asked) + "</C:calendar-multiget>")
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "object_texts" in statement:
            seen.append(statement)

    sa_event.listen(store.engine, "before_cursor_execute", count)
    try:
        reply = dav.report(cal, body)
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", count)
    assert reply.status == 207 and len(reply.hrefs()) == 30
    assert len(seen) <= 30 // 4 + 2, len(seen)  # one read per window, not one per href asked out of order


def test_multistatus_holds_at_most_flush_every_responses() -> None:
    out = stream.Multistatus(flush_every=2, spool_bytes=64)
    for k in range(7):
        response = etree.SubElement(out.root, qn(DAV, "response"))
        etree.SubElement(response, qn(DAV, "href")).text = f"/dav/x/{k}.ics"
        out.step()
        assert len(out.root) < 2
    etree.SubElement(out.root, qn(DAV, "sync-token")).text = "token"
    body, spooled = out.finish()
    assert body == b"" and spooled is not None  # larger than 64 bytes: streamed from the spool
    document = etree.fromstring(spooled.read())
    spooled.close()
    assert [h.text for h in document.iter(qn(DAV, "href"))] == [f"/dav/x/{k}.ics" for k in range(7)]
    assert document[-1].tag == qn(DAV, "sync-token")
    small = stream.Multistatus()
    assert etree.fromstring(small.finish()[0]).tag == qn(DAV, "multistatus")
