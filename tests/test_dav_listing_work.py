"""Listings (PROPFIND Depth 1, initial sync-collection) write their object members from one template per
listing (dav/members.py): no element is built and no property getter runs per member, no object is
loaded for getetag, and the statements do not grow with the folder. The answers are byte for byte those
of describing each member on its own, for every property. Work is counted, never timed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from lxml import etree

from oxsync.dav import install, members, multistatus, stream
from oxsync.dav.props import PROPS
from oxsync.dav.xml import DAV, qn
from tests.davhelp import NS, Dav, event, sync_body, todo, vcard
from tests.fixtures import recorded_statements

BODY = {qn(NS["C"], "calendar-data"), qn(NS["CR"], "address-data")}


@pytest.fixture
def dav(live_server, store, world) -> Dav:  # type: ignore[no-untyped-def]
    # no account poll: its statements (every second) are not a listing's
    return Dav(live_server(store, setup=install, auth={"account_poll_seconds": 0}).port, world)


def _series(uid: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260907T090000Z\r\n"
            "DTEND:20260907T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Series\r\nEND:VEVENT\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260914T090000Z\r\n"
            "DTSTART:20260915T090000Z\r\nDTEND:20260915T100000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def _fill(dav: Dav, count: int) -> tuple[str, str, str]:
    cal, tasks, book = dav.calendar(), dav.tasks(), dav.addressbook()
    names = ["plain", "with%20space%20%26%20amp", "caf%C3%A9%20%25", "a+b=c;d"]  # URL-encoded: quoted again in hrefs
    for i in range(count):
        name = names[i % len(names)] + str(i)
        body = _series(f"s{i}") if i % 3 == 0 else event(f"e{i}", f"Event {i}")
        assert dav.put(f"{cal}{name}.ics", body).status == 201
        assert dav.put(f"{tasks}{name}.ics", todo(f"t{i}", f"Task {i}")).status == 201
        assert dav.put(f"{book}{name}.vcf", vcard(f"c{i}", f"Person {i}")).status == 201
    return cal, tasks, book


def _propfind(names: list[str] | None, kind: str = "prop") -> str:
    if kind == "propname":
        return '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'
    if names is None:
        return '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
    props = "".join(f'<X{k}:{n.split("}")[1]} xmlns:X{k}="{n[1:].split("}")[0]}"/>' for k, n in enumerate(names))
    return f'<D:propfind xmlns:D="DAV:"><D:prop>{props}</D:prop></D:propfind>'


@contextmanager
def responses_built(monkeypatch) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """The DAV:responses built as lxml elements (for a member described on its own, or a template)."""
    built: list[str] = []
    original = multistatus.add_response

    def counting(ms: Any, path: str, found: Any, missing: Any) -> Any:
        built.append(path)
        return original(ms, path, found, missing)

    monkeypatch.setattr(multistatus, "add_response", counting)
    monkeypatch.setattr(members, "add_response", counting)
    yield built


def test_template_answers_are_those_of_describing_each_member(store, dav: Dav, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cal, tasks, book = _fill(dav, 8)
    every = [n for n in PROPS if n not in BODY]
    bodies = [_propfind(None), _propfind(None, "propname"), _propfind(every + ["{urn:x}unknown"])]
    bodies += [_propfind([n]) for n in PROPS]
    rendered: list[int] = []
    original = members.MemberTemplate.render

    def render(self: members.MemberTemplate, res: Any) -> str:
        rendered.append(1)
        return original(self, res)

    def answers() -> list[bytes]:
        out = []
        for path in (cal, tasks, book):
            for body in bodies:
                reply = dav.request("PROPFIND", path, body, Depth="1")
                assert reply.status == 207, reply.body[:300]
                out.append(reply.body)
            for props in ("<D:getetag/>", "<D:getetag/><D:getlastmodified/><D:resourcetype/><D:getcontenttype/>"):
                reply = dav.report(path, sync_body("", props), depth="0")
                assert reply.status == 207
                out.append(reply.body)
        return out

    monkeypatch.setattr(members.MemberTemplate, "render", render)
    templated = answers()
    assert len(rendered) >= 8 * 3 * (len(bodies) - 1)  # the template served all but propname (and body props)
    monkeypatch.setattr(members, "template_for", lambda *args, **kw: None)
    described = answers()
    assert templated == described
    hrefs = etree.fromstring(templated[0]).findall("D:response/D:href", NS)
    assert any("with%20space%20%26%20amp" in h.text for h in hrefs)


def test_a_listing_builds_no_element_and_no_statement_per_member(store, dav: Dav, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cal, _, book = dav.calendar(), dav.tasks(), dav.addressbook()
    getetag = _propfind([qn(DAV, "getetag")])
    work: dict[int, list[tuple[int, Counter[str]]]] = {}
    for count in (3, 15):
        for i in range(len(work) * 3, count):
            body = _series(f"s{i}") if i % 4 == 0 else event(f"e{i}", f"Event {i}")
            assert dav.put(f"{cal}ev{i}.ics", body).status == 201
            assert dav.put(f"{book}c{i}.vcf", vcard(f"c{i}", f"Person {i}")).status == 201
        work[count] = []
        for method, path, body, depth in (("PROPFIND", cal, getetag, "1"), ("REPORT", cal, sync_body(), "0"),
                                          ("REPORT", book, sync_body(), "0")):
            built_counts, statements = [], []
            for _ in range(3):
                with responses_built(monkeypatch) as built, recorded_statements(store) as seen:
                    reply = dav.request(method, path, body, Depth=depth)
                assert reply.status == 207 and len(reply.hrefs()) >= count
                built_counts.append(len(built))
                statements.append(Counter(" ".join(s.split())[:160] for s in seen))
                monkeypatch.undo()
            # the statements of all three runs: the server's own workers (texts rendered ahead, polls) may
            # run some meanwhile, on other threads, never in every run
            common = statements[0] & statements[1] & statements[2]
            work[count].append((min(built_counts), common))
            assert not any("objects.data" in s for s in common)  # getetag needs no object loaded
    for (built3, seen3), (built15, seen15) in zip(work[3], work[15], strict=True):
        # the same work for 3 and 15 members (the message names the statements that differ)
        assert (built3, seen3) == (built15, seen15), (built3, built15, seen3 - seen15, seen15 - seen3)
    assert all(built <= 2 for built, _ in work[15])  # the collection's own response and the template


def test_http_dates_are_those_of_email_utils() -> None:
    values = [0, 999, 1000, -1, -1500, 1796562318647, 951782400000, 253402300799999]
    values += [k * 7_919_777_777 + 13 for k in range(-200, 4000)]
    for ms in values:
        expected = format_datetime(datetime.fromtimestamp(ms / 1000, UTC), usegmt=True)
        assert members.http_date(ms) == expected, ms
    with pytest.raises(ValueError):
        members.http_date(253402300800000)  # year 10000: datetime refuses it too (the member is left out)


def test_written_responses_keep_their_place_among_elements() -> None:
    def response(k: int) -> etree._Element:
        resp = etree.Element(qn(DAV, "response"))
        etree.SubElement(resp, qn(DAV, "href")).text = f"/dav/x/{k}.ics"
        return resp

    def text_of(resp: etree._Element) -> str:
        root = stream.Multistatus().root
        root.append(resp)
        document = etree.tostring(root, encoding=str)
        return document[document.index(">") + 1:document.rindex("</")]

    for flush_every in (1, 2, 3, 50):
        mixed, plain = stream.Multistatus(flush_every=flush_every), stream.Multistatus(flush_every=flush_every)
        for k in range(9):
            if k % 3 == 1:
                mixed.write(text_of(response(k)))
            else:
                mixed.root.append(response(k))
                mixed.step()
            plain.root.append(response(k))
            plain.step()
        assert mixed.finish() == plain.finish()
    only = stream.Multistatus()
    only.write(text_of(response(0)))
    reference = stream.Multistatus()
    reference.root.append(response(0))
    assert only.finish() == reference.finish()
