"""Issue 10 §1: one bad item never takes a collection offline.

First the findings of the issue, reproduced over real HTTP on a server running every dialect; then the
poison corpus (tests/data/poison/): hostile values written through every dialect and the importer, and
rows written straight into the store's tables (as an older version or a mapper bug would have left
them); after that every read path of every dialect must answer successfully and serve the good items.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from oxsync.dialects import install_all
from oxsync.eas.wbxml import E
from oxsync.model import Appointment, Module
from tests.davhelp import NS, Dav, event, vcard
from tests.eas_client import client, items
from tests.oxclient import OX_SERVER, OxClient

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

CALENDAR_QUERY = (f'<C:calendar-query xmlns:D="DAV:" xmlns:C="{NS["C"]}"><D:prop><D:getetag/><C:calendar-data/>'
                  '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter>'
                  "</C:filter></C:calendar-query>")
ADDRESSBOOK_QUERY = (f'<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="{NS["CR"]}"><D:prop><D:getetag/><CR:address-data/>'
                     "</D:prop></CR:addressbook-query>")


def multiget(hrefs: list[str], card: bool = False) -> str:
    if card:
        return (f'<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="{NS["CR"]}"><D:prop><D:getetag/><CR:address-data/>'
                f'</D:prop>{"".join(f"<D:href>{h}</D:href>" for h in hrefs)}</CR:addressbook-multiget>')
    return (f'<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{NS["C"]}"><D:prop><D:getetag/><C:calendar-data/>'
            f'</D:prop>{"".join(f"<D:href>{h}</D:href>" for h in hrefs)}</C:calendar-multiget>')


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=OX_SERVER)
    return running, world, OxClient(running.port, "alice", "alice-pw"), Dav(running.port, world)


def calendar_datas(reply) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert reply.status == 207, reply.body[:300]
    out = {}
    for resp in reply.xml.findall("D:response", NS):
        data = resp.find(".//C:calendar-data", NS)
        if data is None:
            data = resp.find(".//CR:address-data", NS)
        if data is not None:
            out[resp.find("D:href", NS).text.rsplit("/", 1)[-1]] = data.text
    return out


# ------------------------------------------------------------------ the findings


@pytest.mark.parametrize("control", ["\x0b", "\x07"])
def test_caldav_description_with_control_character_keeps_the_calendar_readable(env, control: str) -> None:  # type: ignore[no-untyped-def]
    _, _, _, dav = env
    cal = dav.calendar()
    for i in range(3):
        assert dav.put(f"{cal}good{i}.ics", event(f"good{i}", f"Good {i}")).status == 201
    pasted = event("pasted", "From Outlook", extra=f"DESCRIPTION:line one{control}line two\r\n")
    assert dav.put(cal + "pasted.ics", pasted).status in (201, 204)
    got = calendar_datas(dav.report(cal, CALENDAR_QUERY))
    assert set(got) == {"good0.ics", "good1.ics", "good2.ics", "pasted.ics"}
    assert control not in got["pasted.ics"] and "line one\ufffdline two" in got["pasted.ics"].replace("\r\n ", "")
    hrefs = [cal + n for n in ("good0.ics", "pasted.ics", "good2.ics")]
    assert set(calendar_datas(dav.report(cal, multiget(hrefs)))) == {"good0.ics", "pasted.ics", "good2.ics"}
    body = dav.request("GET", cal + "pasted.ics")
    assert body.status == 200 and control not in body.text


def test_vcard_note_with_vertical_tab_keeps_the_address_book_readable(env) -> None:  # type: ignore[no-untyped-def]
    _, _, _, dav = env
    book = dav.addressbook()
    assert dav.put(book + "jane.vcf", vcard("jane", "Jane Doe")).status == 201
    assert dav.put(book + "tab.vcf", vcard("tab", "Tab Person", extra="NOTE:a\x0bb\r\n")).status in (201, 204)
    got = calendar_datas(dav.report(book, ADDRESSBOOK_QUERY))
    assert set(got) == {"jane.vcf", "tab.vcf"} and "\x0b" not in got["tab.vcf"]
    assert set(calendar_datas(dav.report(book, multiget([book + "jane.vcf", book + "tab.vcf"], card=True)))) == \
        {"jane.vcf", "tab.vcf"}


def test_year_9999_invitation_via_ox_is_invalid_input(env) -> None:  # type: ignore[no-untyped-def]
    running, world, _, _ = env
    bob = OxClient(running.port, "bob", "bob-pw")
    folder = world.default_folder(world.bob, Module.CALENDAR)
    start = int(datetime(9999, 12, 31, 9, tzinfo=UTC).timestamp() * 1000)
    [r] = bob.proppatch("calendar", {"folder_id": folder, "title": "far away", "start_date": start,
                                      "end_date": start + 3_600_000,
                                      "participants": f"<ox:user>{world.alice}</ox:user><ox:user>{world.bob}</ox:user>"})
    assert (r.status, r.code) == ("409", 1100), r.description
    assert bob.sync("calendar", folder) == []


def test_year_9999_meeting_row_does_not_break_eas_sync(env, store) -> None:  # type: ignore[no-untyped-def]
    """A row already in the database (stored before the range check) that EAS cannot render is left out:
    the other items are served, on a fresh SyncKey 0 and on a delta, and it is not retried forever."""
    running, world, _, _ = env
    phone = client(running)
    phone.provision()
    cal = phone.folder_of_type(8)
    folder = world.default_folder(world.alice, Module.CALENDAR)
    good = _create(world, world.alice, folder, Appointment(title="good", start_date=datetime(2026, 3, 10, 9, tzinfo=UTC),
                                                             end_date=datetime(2026, 3, 10, 10, tzinfo=UTC)))
    far = _create(world, world.alice, folder, Appointment(title="far", start_date=datetime(2026, 3, 11, 9, tzinfo=UTC),
                                                            end_date=datetime(2026, 3, 11, 10, tzinfo=UTC)))
    _set_dates(store, far, datetime(9999, 12, 31, 22, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC))
    assert phone.sync(cal, "0").status == 200
    first = phone.sync(cal)
    assert first.status == 200 and first.text("AirSync:Collections/AirSync:Collection/AirSync:Status") == "1"
    assert set(items(first)) == {str(good)}
    late = _create(world, world.alice, folder, Appointment(title="late", start_date=datetime(2026, 3, 12, 9, tzinfo=UTC),
                                                             end_date=datetime(2026, 3, 12, 10, tzinfo=UTC)))
    second = phone.sync(cal)
    assert second.status == 200 and set(items(second)) == {str(late)}
    third = phone.sync(cal)  # nothing left over: the unrenderable item is not offered again and again
    assert third.status == 200 and items(third) == {}


@pytest.mark.parametrize("field, value", [("birthday", 10**14), ("birthday", -(10**14)), ("anniversary", 10**17)])
def test_contact_date_out_of_range_via_ox_is_1100(env, field: str, value: int) -> None:  # type: ignore[no-untyped-def]
    _, world, alice, _ = env
    folder = world.default_folder(world.alice, Module.CONTACT)
    [r] = alice.proppatch("contacts", {"folder_id": folder, "last_name": "Far", field: value})
    assert (r.status, r.code) == ("409", 1100), r.description
    assert alice.sync("contacts", folder) == []


@pytest.mark.parametrize("start", [10**17, -(10**17), 10**30])
def test_appointment_start_out_of_range_via_ox_is_1100(env, start: int) -> None:  # type: ignore[no-untyped-def]
    _, world, alice, _ = env
    folder = world.default_folder(world.alice, Module.CALENDAR)
    [r] = alice.proppatch("calendar", {"folder_id": folder, "title": "x", "start_date": start, "end_date": 1_900_000_000_000})
    assert (r.status, r.code) == ("409", 1100), r.description


def test_400_digit_folder_id_via_ox_is_1100(env) -> None:  # type: ignore[no-untyped-def]
    _, world, alice, _ = env
    huge = "9" * 400
    for servlet in ("contacts", "calendar", "tasks"):
        [r] = alice.proppatch(servlet, {"folder_id": huge, "title": "x", "last_name": "x"})
        assert (r.status, r.code) == ("409", 1100), r.description
    status, _, body = alice.request("PROPFIND", "/servlet/webdav.contacts",
                                    f'<D:propfind xmlns:D="DAV:" xmlns:ox="http://www.open-xchange.org"><D:prop>'
                                    f"<ox:folder_id>{huge}</ox:folder_id><ox:lastsync>0</ox:lastsync>"
                                    "<ox:objectmode>NEW_AND_MODIFIED</ox:objectmode></D:prop></D:propfind>")
    assert status == 207 and b"[1100]" in body and b"[1500]" not in body


@pytest.mark.parametrize("header", ["module", "target_folder_id", "target_id", "object_id"])
def test_50_digit_attachment_header_ids_are_invalid_input(env, header: str) -> None:  # type: ignore[no-untyped-def]
    _, world, alice, _ = env
    folder = world.default_folder(world.alice, Module.CONTACT)
    [r] = alice.proppatch("contacts", {"folder_id": folder, "last_name": "Holder"})
    headers = {"module": "7", "target_folder_id": str(folder), "target_id": r.href, "object_id": "1",
               "filename": "a.txt", "mimetype": "text/plain"}
    headers[header] = "9" * 50
    for method in ("GET", "DELETE") if header == "object_id" else ("PUT", "GET", "DELETE"):
        status, _, _ = alice.request(method, "/servlet/webdav.attachments", b"data" if method == "PUT" else None, headers)
        assert 400 <= status < 500, (method, status)


# ------------------------------------------------------------------ helpers


def _create(world, user_id: int, folder: int, obj) -> int:  # type: ignore[no-untyped-def]
    with world.as_user(user_id, write=True) as session:
        return int(session.create_object(folder, obj).object_id)


def _set_dates(store, object_id: int, start: datetime, end: datetime) -> None:  # type: ignore[no-untyped-def]
    """Write dates into an object's row directly, as a version without the range check would have."""
    import json

    from sqlalchemy import text

    with store.engine.begin() as conn:
        data = json.loads(conn.execute(text("SELECT data FROM objects WHERE id = :i"), {"i": object_id}).scalar_one())
        data["start_date"], data["end_date"] = {"dt": start.isoformat()}, {"dt": end.isoformat()}
        conn.execute(text("UPDATE objects SET data = :d, start_ms = :s, end_ms = :e, range_end_ms = :e WHERE id = :i"),
                     {"d": json.dumps(data), "s": int(start.timestamp() * 1000), "e": int(end.timestamp() * 1000),
                      "i": object_id})


_ = (E, etree)
