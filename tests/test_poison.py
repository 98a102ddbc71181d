"""Issue 10 §1: one bad item never takes a collection offline.

First the findings of the issue, reproduced over real HTTP on a server running every dialect; then the
poison corpus (the `poison = true` cases of tests/data/regressions/): hostile values written through
every dialect and the importer, and rows written straight into the store's tables (as an older version
or a mapper bug would have left them); after that every read path of every dialect must answer successfully and serve the good items.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from oxsync.dialects import install_all
from oxsync.eas.wbxml import E
from oxsync.model import Appointment, Module
from tests.davhelp import NS, Dav, event, vcard
from tests.eas_client import client, items
from tests.fixtures import raw_write
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
    # the rows are poisoned behind the store's back (same version): a text rendered ahead from the clean
    # row would be served for them, as one a DAV client had read before would; the reads are the point here
    running = live_server(store, setup=install_all, server=OX_SERVER, dav={"texts_ahead_max_pending": 0})
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


def test_numbers_beyond_64_bits_anywhere_are_invalid_input(env, store) -> None:  # type: ignore[no-untyped-def]
    """The store's last line (a guard on every statement's parameters) turns what no explicit check
    caught into invalid input, on SQLite (OverflowError) as on PostgreSQL."""
    from oxsync.store.errors import InvalidInput

    _, world, alice, dav = env
    folder = world.default_folder(world.alice, Module.CONTACT)
    status, _, body = alice.request("PROPFIND", "/servlet/webdav.contacts",
                                    f'<D:propfind xmlns:D="DAV:" xmlns:ox="http://www.open-xchange.org"><D:prop>'
                                    f"<ox:folder_id>{folder}</ox:folder_id><ox:lastsync>{10**30}</ox:lastsync>"
                                    "<ox:objectmode>NEW_AND_MODIFIED,DELETED</ox:objectmode></D:prop></D:propfind>")
    assert status == 207 and b"[1500]" not in body and b"[1100]" in body
    with world.as_user(world.alice) as session, pytest.raises(InvalidInput):
        session.rev_for_ms(10**30)
    reply = dav.propfind(f"/dav/calendars/alice/{'9' * 50}/", "<D:getetag/>", "1")
    assert 400 <= reply.status < 500
    huge = "9" * 50
    sync = dav.report(dav.calendar(), f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>http://oxsync/ns/sync/{huge}</D:sync-token>'
                                      "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")
    assert 400 <= sync.status < 500
    [folder_patch] = alice.proppatch("folders", {"object_id": huge, "folder_id": 1, "title": "x", "last_modified": 1})
    assert folder_patch.code in (1001, 1100), folder_patch.description
    running = env[0]
    phone = client(running)
    phone.provision()
    cid = phone.folder_of_type(9)
    moved = phone.post("MoveItems", E("Move:MoveItems", E("Move:Move", E("Move:SrcMsgId", huge), E("Move:SrcFldId", cid),
                                                              E("Move:DstFldId", huge))))
    assert moved.status == 200, moved.raw[:200]


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


# ------------------------------------------------------------------ the corpus: writes through every dialect

DATA = Path(__file__).parent / "data" / "regressions"
"""The poison cases live in the regression corpus (`poison = true` in its MANIFEST.toml)."""
CTL = "\x01\x07\x0b\x0c\x1f"
GOOD_START = datetime(2026, 3, 10, 9, tzinfo=UTC)
GOOD = {
    ".ics": ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//oxsync poison corpus//EN\r\nBEGIN:VEVENT\r\n"
             "UID:poison-good\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260310T090000Z\r\n"
             "DTEND:20260310T100000Z\r\nSUMMARY:Good event\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    ".vcf": ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:poison-card-good\r\nFN:Good Card\r\nN:Card;Good;;;\r\n"
             "EMAIL;TYPE=INTERNET:good@example.org\r\nEND:VCARD\r\n"),
}
"""The control item written beside the poison ones: it must come back untouched."""


def _uid(text: str) -> str:
    return next(line[4:] for line in text.split("\r\n") if line.startswith("UID:"))


def _poison(suffix: str) -> dict[str, str]:
    """UID -> the text of each poison case of that kind (one VCALENDAR or VCARD each), the control first."""
    manifest = tomllib.loads((DATA / "MANIFEST.toml").read_text(encoding="utf-8"))
    out = {_uid(GOOD[suffix]): GOOD[suffix]}
    for name, entry in sorted(manifest.items()):
        if entry.get("poison") and name.endswith(suffix):
            with open(DATA / name, encoding="utf-8", newline="") as handle:  # keep CRLF and the raw controls
                text = handle.read()
            out[_uid(text)] = text
    return out


def _joined(suffix: str) -> str:
    """All poison cases of a kind in one file, as an export holds them (one VCALENDAR, or VCARDs in a row)."""
    texts = list(_poison(suffix).values())
    if suffix == ".vcf":
        return "".join(texts)
    head = texts[0].partition("BEGIN:VEVENT\r\n")[0]
    events = ["BEGIN:VEVENT\r\n" + t.partition("BEGIN:VEVENT\r\n")[2].rpartition("END:VCALENDAR\r\n")[0]
              for t in texts]
    return head + "".join(events) + "END:VCALENDAR\r\n"


IN_RANGE_EVENTS = {"poison-good", "poison-ctl", "poison-min", "poison-max", "poison-series"}
IN_RANGE_CARDS = {"poison-card-good", "poison-card-ctl", "poison-card-min", "poison-card-noyear"}


def test_corpus_through_caldav_and_carddav(env) -> None:  # type: ignore[no-untyped-def]
    """Every corpus item is stored (cleaned) or refused with the DAV precondition; never a 5xx."""
    _, _, _, dav = env
    cal, book = dav.calendar(), dav.addressbook()
    events = _poison(".ics")
    for uid, body in events.items():
        reply = dav.put(f"{cal}{uid}.ics", body)
        assert reply.status < 500, (uid, reply.status, reply.body[:200])
        assert (reply.status in (201, 204)) == (uid in IN_RANGE_EVENTS), (uid, reply.status, reply.body)
    for uid, body in _poison(".vcf").items():
        reply = dav.put(f"{book}{uid}.vcf", body)
        assert reply.status < 500, (uid, reply.status, reply.body[:200])
        assert (reply.status in (201, 204)) == (uid in IN_RANGE_CARDS), (uid, reply.status, reply.body)
    got = calendar_datas(dav.report(cal, CALENDAR_QUERY))
    assert {n[:-4] for n in got} == IN_RANGE_EVENTS
    assert all(not any(c in text for c in CTL) for text in got.values())
    assert "Pasted\ufffd" in got["poison-ctl.ics"]
    cards = calendar_datas(dav.report(book, ADDRESSBOOK_QUERY))
    assert {n[:-4] for n in cards} == IN_RANGE_CARDS
    assert all(not any(c in text for c in CTL) for text in cards.values())
    # whatever the store accepted, at both ends of the range, every other dialect renders too
    from oxsync import render

    running, world, alice, _ = env
    skipped = sum(render.skipped_items_total().values())
    for servlet, module, wanted in (("calendar", Module.CALENDAR, IN_RANGE_EVENTS), ("contacts", Module.CONTACT, IN_RANGE_CARDS)):
        listed = alice.sync(servlet, world.default_folder(world.alice, module))
        assert len([r for r in listed if r.status == "200"]) == len(wanted), servlet
    phone = client(running)
    phone.provision()
    for kind, wanted in ((8, IN_RANGE_EVENTS), (9, IN_RANGE_CARDS)):
        cid = phone.folder_of_type(kind)
        phone.sync(cid, "0")
        assert len(items(phone.sync(cid, window=100))) == len(wanted), kind
    assert sum(render.skipped_items_total().values()) == skipped  # nothing in range was left out


def test_reject_policy_refuses_control_characters(live_server, store_url, world) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures import make_store

    strict = make_store(store_url, invalid_text_policy="reject")  # the same database, the other policy
    running = live_server(strict, setup=install_all, server=OX_SERVER)
    dav = Dav(running.port, world)
    cal = dav.calendar()
    refused = dav.put(cal + "vt.ics", event("vt", "a\x0bb"))
    assert refused.status == 403 and b"valid-calendar-data" in refused.body
    assert dav.put(cal + "ok.ics", event("ok", "fine")).status == 201
    assert set(calendar_datas(dav.report(cal, CALENDAR_QUERY))) == {"ok.ics"}
    strict.dispose()


def test_limit_settings_are_checked(backend: str) -> None:  # (no store: runs once per backend, harmlessly)
    from oxsync.config import ConfigError, load_settings

    for bad in ({"invalid_text_policy": "ignore"}, {"min_year": 0}, {"max_year": 9999}, {"min_year": 3000, "max_year": 2000},
                {"max_small_number": 2**63}):
        with pytest.raises(ConfigError):
            load_settings(overrides={"limits": bad})
    assert load_settings(overrides={"limits": {"invalid_text_policy": "reject"}}).limits.invalid_text_policy == "reject"


def test_object_size_limit_is_invalid_input_in_every_dialect(live_server, store_url, world) -> None:  # type: ignore[no-untyped-def]
    """An object one byte under `max_object_bytes` is stored; over it: OX [1100], DAV 403, EAS Status 6."""
    from tests.fixtures import make_store

    small = make_store(store_url, max_object_bytes=2000)
    running = live_server(small, setup=install_all, server=OX_SERVER)
    alice, dav = OxClient(running.port, "alice", "alice-pw"), Dav(running.port, world)
    folder = world.default_folder(world.alice, Module.CONTACT)
    [ok] = alice.proppatch("contacts", {"folder_id": folder, "last_name": "Fits", "note": "n" * 1500})
    assert ok.status == "200"
    [big] = alice.proppatch("contacts", {"folder_id": folder, "last_name": "Big", "note": "n" * 2500})
    assert (big.status, big.code) == ("409", 1100), big.description
    refused = dav.put(dav.calendar() + "big.ics", event("big", extra=f"DESCRIPTION:{'d' * 2500}\r\n"))
    assert refused.status == 403 and b"valid-calendar-data" in refused.body
    phone = client(running)
    phone.provision()
    cid = phone.folder_of_type(9)
    phone.sync(cid, "0")
    phone.sync(cid)
    reply = phone.sync(cid, commands=[E("AirSync:Add", E("AirSync:ClientId", "big"), E("AirSync:ApplicationData",
                                        E("Contacts:LastName", "Big"), E("AirSyncBase:Body", E("AirSyncBase:Type", "1"),
                                                                           E("AirSyncBase:Data", "b" * 2500))))])
    assert next(reply.body.iter("AirSync:Add")).findtext("AirSync:Status") == "6"
    assert [r.text("last_name") for r in alice.sync("contacts", folder)] == ["Fits"]
    small.dispose()


def test_strings_at_the_column_limits_via_caldav(env) -> None:  # type: ignore[no-untyped-def]
    _, _, _, dav = env
    cal = dav.calendar()
    at_limit, over = "u" * 255, "v" * 256
    assert dav.put(cal + "a.ics", event(at_limit)).status == 201
    refused = dav.put(cal + "b.ics", event(over))
    assert refused.status == 403 and b"valid-calendar-data" in refused.body
    long_name = "n" * 256
    assert dav.put(cal + long_name + ".ics", event("n")).status == 400  # resource names: 255 at most
    assert set(calendar_datas(dav.report(cal, CALENDAR_QUERY))) == {"a.ics"}


def test_corpus_through_activesync(env) -> None:  # type: ignore[no-untyped-def]
    running, _, _, _ = env
    phone = client(running)
    phone.provision()
    cal = phone.folder_of_type(8)
    phone.sync(cal, "0")
    phone.sync(cal)

    def add(cid: str, start: str, end: str, subject: str = f"Phone{CTL}subject") -> E:
        return E("AirSync:Add", E("AirSync:ClientId", cid), E("AirSync:ApplicationData",
                 E("Calendar:StartTime", start), E("Calendar:EndTime", end), E("Calendar:Subject", subject),
                 E("Calendar:Location", f"Loc{CTL}"), E("Calendar:UID", f"eas-{cid}"),
                 E("AirSyncBase:Body", E("AirSyncBase:Type", "1"), E("AirSyncBase:Data", f"Body{CTL}text"))))

    cases = {"ok": ("20260313T090000Z", "20260313T100000Z", "1"), "min": ("16010101T000000Z", "16010101T010000Z", "1"),
             "before": ("16001231T090000Z", "16001231T100000Z", "6"), "after": ("45020101T090000Z", "45020101T100000Z", "6"),
             "far": ("99991231T090000Z", "99991231T100000Z", "6")}
    reply = phone.sync(cal, commands=[add(cid, start, end) for cid, (start, end, _) in cases.items()])
    assert reply.status == 200
    responses = {a.findtext("AirSync:ClientId"): a.findtext("AirSync:Status")
                 for a in reply.body.iter("AirSync:Add") if a.find("AirSync:ClientId") is not None}
    assert responses == {cid: status for cid, (_, _, status) in cases.items()}
    fresh = client(running, device_id="freshdevice02")
    fresh.provision()
    fresh.sync(cal, "0")
    got = items(fresh.sync(cal))
    subjects = {e.findtext("Calendar:Subject") for e in got.values()}
    assert subjects == {"Phone\ufffd\ufffd\ufffd\ufffd\ufffdsubject"} and len(got) == 2


def test_corpus_through_the_importer_refuses_per_record(env, store_url, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from oxsync.cli import main

    _, world, _, _ = env
    for suffix, good in ((".ics", IN_RANGE_EVENTS), (".vcf", IN_RANGE_CARDS)):
        export = tmp_path / f"corpus{suffix}"
        export.write_bytes(_joined(suffix).encode())
        assert main(["--db", store_url, "import", str(export), "--user", "alice"]) == 0
        out = capsys.readouterr().out
        bad = len(_poison(suffix)) - len(good)
        assert f"imported {len(good)}, skipped {bad}" in out, out
    module = {"ics": Module.CALENDAR, "vcf": Module.CONTACT}
    for fmt, good in (("ics", IN_RANGE_EVENTS), ("vcf", IN_RANGE_CARDS)):
        with world.as_user(world.alice) as session:
            uids = {o.uid for o in session.list_objects(world.default_folder(world.alice, module[fmt]))}
            texts = [getattr(o, "note", "") + getattr(o, "title", "") for o in
                     session.list_objects(world.default_folder(world.alice, module[fmt]))]
        assert uids == good
        assert not any(c in t for t in texts for c in CTL)


# ------------------------------------------------------------------ the corpus: rows written straight into the store

BAD_TEXT = "A\x00B\x0bC\ud800D\ufffeE\x07"
"""What a version without the text check (or a mapper bug) could have stored: NUL, VT, a lone surrogate..."""


def _poison_rows(store, world, folder: int, kind: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Objects of `kind` in `folder` whose rows are then rewritten with hostile values; name -> id."""
    import json

    from sqlalchemy import text

    from oxsync.model import Contact, Task

    def make(title: str):  # type: ignore[no-untyped-def]
        if kind == "contact":
            return Contact(last_name=title, display_name=title)
        if kind == "task":
            return Task(title=title)
        return Appointment(title=title, start_date=GOOD_START, end_date=GOOD_START.replace(hour=10), ignore_conflicts=True)

    edits = {
        "ctl": lambda d: {k: (BAD_TEXT if isinstance(v, str) else v) for k, v in d.items()},
        "far": lambda d: {**d, "start_date": {"dt": "9999-12-31T23:00:00+00:00"}, "end_date": {"dt": "9999-12-31T23:59:00+00:00"},
                          "birthday": {"d": "9999-12-31"}, "anniversary": {"d": "0001-01-01"}},
        "early": lambda d: {**d, "start_date": {"dt": "0001-01-01T00:00:00+00:00"}, "end_date": {"dt": "0001-01-01T01:00:00+00:00"},
                            "birthday": {"d": "0001-01-01"}},
        "huge": lambda d: {**d, "alarm": 10**30, "color_label": 10**30, "percent_completed": 10**30,
                           "recurrence": {"type": 1, "interval": 10**20}, "number_of_employees": 10**30},
        "garbage": lambda d: {**d, "start_date": {"dt": "not a date"}, "birthday": {"d": "never"}, "shown_as": 99,
                              "status": 99, "priority": 99},
        "notjson": None,
    }
    ids = {}
    for name in edits:
        with world.as_user(world.alice, write=True) as session:
            ids[name] = int(session.create_object(folder, make(f"poison {name}")).object_id)
    with raw_write(store.engine) as conn:
        for name, edit in edits.items():
            row = conn.execute(text("SELECT data FROM objects WHERE id = :i"), {"i": ids[name]}).scalar_one()
            data = "{not json" if edit is None else json.dumps(edit(json.loads(row)), ensure_ascii=True)
            title = "T\x0bitle" if name == "ctl" else f"poison {name}"
            conn.execute(text("UPDATE objects SET data = :d, title = :t WHERE id = :i"),
                         {"d": data, "t": title, "i": ids[name]})
        if kind == "appointment":  # a participant row with hostile text too
            conn.execute(text("UPDATE participants SET message = :m, display_name = :n WHERE object_id = :i"),
                         {"m": "M\x0bsg\x07", "n": "N\x0bame", "i": ids["ctl"]})
    return ids


def _good(kind: str, i: int):  # type: ignore[no-untyped-def]
    from oxsync.model import Contact, Task

    if kind == "contact":
        return Contact(last_name=f"Good{i}", display_name=f"Good {i}", uid=f"good-c{i}")
    if kind == "task":
        return Task(title=f"Good task {i}", uid=f"good-t{i}")
    return Appointment(title=f"Good {i}", uid=f"good-a{i}", start_date=GOOD_START.replace(day=10 + i),
                       end_date=GOOD_START.replace(day=10 + i, hour=10), ignore_conflicts=True)


@pytest.fixture
def poisoned(env, store):  # type: ignore[no-untyped-def]
    running, world, alice, dav = env
    good: dict[str, set[int]] = {}
    poison: dict[str, dict[str, int]] = {}
    folders = {}
    for module, kind in ((Module.CONTACT, "contact"), (Module.CALENDAR, "appointment"), (Module.TASK, "task")):
        folder = world.default_folder(world.alice, module)
        folders[kind] = folder
        good[kind] = set()
        for i in range(2):
            good[kind].add(_create(world, world.alice, folder, _good(kind, i)))
        poison[kind] = _poison_rows(store, world, folder, kind)
    # a poisoned address book entry of another user (the GAL: EAS Search, OX groupuser, DAV principals)
    with raw_write(store.engine) as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE objects SET data = :d WHERE user_id = :u"), {"d": "{broken", "u": world.carol})
    return running, world, alice, dav, folders, good, poison


def test_every_read_path_serves_the_good_items_despite_poisoned_rows(poisoned, store_url, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from oxsync import render

    running, world, alice, dav, folders, good, poison = poisoned
    before = sum(render.skipped_items_total().values())
    servlet = {"contact": "contacts", "appointment": "calendar", "task": "tasks"}

    # OX: full list, delta, LIST mode, single reads
    for kind, folder in folders.items():
        listed = alice.sync(servlet[kind], folder)
        ids = {int(r.href) for r in listed if r.status == "200"}
        assert good[kind] | {poison[kind]["ctl"]} <= ids, kind  # old text is cleaned on the way out, not dropped
        assert all(r.code != 1500 for r in listed)
        assert alice.sync(servlet[kind], folder, lastsync=1) and all(r.code != 1500 for r in alice.sync(servlet[kind], folder, 1))
        for object_id in poison[kind].values():
            [one] = alice.propfind(servlet[kind], {"folder_id": folder, "object_id": object_id})
            assert one.code != 1500 and one.status != "500", (kind, object_id, one.description)
        [listing] = alice.sync(servlet[kind], folder, mode="LIST")
        assert listing.status == "200"
    assert all(r.code != 1500 for r in alice.propfind("groupuser", {"user": "*", "lastsync": 0}))

    # EAS: initial and delta Sync, Fetch, ItemOperations, GetItemEstimate, GAL Search
    phone = client(running)
    phone.provision()
    types = {"contact": 9, "appointment": 8, "task": 7}
    for kind, kind_type in types.items():
        cid = phone.folder_of_type(kind_type)
        assert phone.sync(cid, "0").status == 200
        first = phone.sync(cid, window=100)
        assert first.status == 200 and first.text("AirSync:Collections/AirSync:Collection/AirSync:Status") == "1"
        assert good[kind] | {poison[kind]["ctl"]} <= {int(i) for i in items(first)}, kind
        estimate = phone.post("GetItemEstimate", E("GetItemEstimate:GetItemEstimate", E("GetItemEstimate:Collections", E(
            "GetItemEstimate:Collection", E("AirSync:SyncKey", phone.keys[cid]), E("GetItemEstimate:CollectionId", cid)))))
        assert estimate.status == 200 and estimate.body.find("GetItemEstimate:Response").findtext("GetItemEstimate:Status") == "1"
        fetches = [E("ItemOperations:Fetch", E("ItemOperations:Store", "Mailbox"), E("AirSync:CollectionId", cid),
                     E("AirSync:ServerId", str(i))) for i in [*poison[kind].values(), *good[kind], 10**40]]
        ops = phone.post("ItemOperations", E("ItemOperations:ItemOperations", *fetches))
        assert ops.status == 200
        statuses = [f.findtext("ItemOperations:Status") for f in ops.body.iter("ItemOperations:Fetch")]
        assert statuses[len(poison[kind]):len(poison[kind]) + len(good[kind])] == ["1"] * len(good[kind])
        assert set(statuses) <= {"1", "6"}
        again = phone.sync(cid)
        assert again.status == 200 and items(again) == {}
    search = phone.post("Search", E("Search:Search", E("Search:Store", E("Search:Name", "GAL"), E("Search:Query", "a"),
                                                        E("Search:Options", E("Search:Range", "0-99")))))
    assert search.status == 200 and search.text("Search:Status") == "1"

    # DAV: PROPFIND, every report, GET
    collections = {"contact": dav.addressbook(), "appointment": dav.calendar(), "task": dav.tasks()}
    for kind, path in collections.items():
        listing = dav.propfind(path, "<D:getetag/><D:getcontenttype/><D:displayname/>", "1")
        assert listing.status == 207
        names = {h.rsplit("/", 1)[-1] for h in listing.hrefs() if h != path}
        assert {f"{i}.{'vcf' if kind == 'contact' else 'ics'}" for i in good[kind]} <= names, kind
        hrefs = [h for h in listing.hrefs() if h != path]
        card = kind == "contact"
        datas = calendar_datas(dav.report(path, multiget(hrefs, card=card)))
        assert {f"{i}.{'vcf' if card else 'ics'}" for i in good[kind] | {poison[kind]["ctl"]}} <= set(datas)
        assert "A\ufffdB\ufffdC\ufffdD\ufffdE" in datas[f"{poison[kind]['ctl']}.{'vcf' if card else 'ics'}"]
        query = ADDRESSBOOK_QUERY if card else CALENDAR_QUERY.replace('name="VEVENT"', f'name="{"VTODO" if kind == "task" else "VEVENT"}"')
        assert {f"{i}.{'vcf' if card else 'ics'}" for i in good[kind]} <= set(calendar_datas(dav.report(path, query)))
        sync = dav.report(path, '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
                                '<D:prop><D:getetag/></D:prop></D:sync-collection>')
        assert sync.status == 207
        for href in hrefs:
            assert dav.request("GET", href).status in (200, 404, 409), href
    fb = dav.report(collections["appointment"],
                    f'<C:free-busy-query xmlns:C="{NS["C"]}"><C:time-range start="20260301T000000Z" end="20260401T000000Z"/>'
                    "</C:free-busy-query>")
    assert fb.status == 200 and b"FREEBUSY" in fb.body

    # the free/busy servlet
    status, _, body = alice.request("GET", "/servlet/webdav.freebusy?username=alice&server=example.com"
                                           "&start=20260301&end=20260401", None)
    assert status == 200 and b"FREEBUSY" in body
    for hostile in ("start=99991231", "start=00010101&end=99991231", f"contextid={10**50}", f"period={10**50}"):
        status, _, _ = alice.request("GET", f"/servlet/webdav.freebusy?username=alice&server=example.com&{hostile}", None)
        assert status in (200, 400, 404), (hostile, status)

    # oxsync export
    from oxsync.cli import main

    for kind, folder in folders.items():
        target = tmp_path / f"{kind}.out"
        assert main(["--db", store_url, "export", "--user", "alice", "--folder", str(folder), "-o", str(target)]) == 0
        exported = target.read_text(encoding="utf-8")
        assert all(f"good-{kind[0]}{i}" in exported for i in range(2)), kind
        assert not any(c in exported for c in "\x00\x0b\x07")
    capsys.readouterr()
    assert sum(render.skipped_items_total().values()) > before  # the unrenderable ones were counted


# ------------------------------------------------------------------ helpers


def _create(world, user_id: int, folder: int, obj) -> int:  # type: ignore[no-untyped-def]
    with world.as_user(user_id, write=True) as session:
        return int(session.create_object(folder, obj).object_id)


def _set_dates(store, object_id: int, start: datetime, end: datetime) -> None:  # type: ignore[no-untyped-def]
    """Write dates into an object's row directly, as a version without the range check would have."""
    import json

    from sqlalchemy import text

    with raw_write(store.engine) as conn:
        data = json.loads(conn.execute(text("SELECT data FROM objects WHERE id = :i"), {"i": object_id}).scalar_one())
        data["start_date"], data["end_date"] = {"dt": start.isoformat()}, {"dt": end.isoformat()}
        conn.execute(text("UPDATE objects SET data = :d, start_ms = :s, end_ms = :e, range_end_ms = :e WHERE id = :i"),
                     {"d": json.dumps(data), "s": int(start.timestamp() * 1000), "e": int(end.timestamp() * 1000),
                      "i": object_id})


_ = (E, etree)


def test_an_undecodable_folder_row_is_left_out_of_every_folder_listing(env, store) -> None:  # type: ignore[no-untyped-def]
    """A folder row the model cannot read (an unknown type or module, e.g. written by a newer version or
    by hand) is skipped with a log line; the user's other folders are still listed in every dialect."""
    from sqlalchemy import text

    from oxsync import render

    running, world, alice, dav = env
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        broken = session.create_folder(contacts, "Broken", Module.CONTACT).folder.id
        kept = session.create_folder(contacts, "Kept", Module.CONTACT).folder.id
    with raw_write(store.engine) as conn:
        conn.execute(text("UPDATE folders SET type = 'bogus', module = 'nonsense' WHERE id = :i"), {"i": broken})
    before = sum(render.skipped_items_total().values())
    with world.as_user(world.alice) as session:
        listed = {access.folder.id for access in session.list_folders()}
    assert kept in listed and contacts in listed and broken not in listed
    ox = {r.href for r in alice.sync("folders", None)}
    assert str(kept) in ox and str(broken) not in ox
    phone = client(running)
    phone.provision()
    _, folders = phone.folder_sync()
    assert str(kept) in folders and str(broken) not in folders
    home = dav.propfind("/dav/addressbooks/alice/", "<D:displayname/>", "1")
    assert home.status == 207 and "Kept" in home.text
    assert sum(render.skipped_items_total().values()) > before
