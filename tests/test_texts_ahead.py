"""Served texts rendered ahead of the first read (`oxsync/texts_ahead.py`, `dav/warm.py`): after a bulk
load (`session.create_objects`), `oxsync import`, an ActiveSync Add and an OX insert, the owner's first
CalDAV/CardDAV multiget and calendar-query render nothing (renders counted, in the server's process)
and serve exactly what a render gives; a text made stale by an ActiveSync change is never served; a
CalDAV PUT, which stores its own text, gives the background renderer nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete

from bench.peers_data import card, card_name, event, event_name
from bench.peers_objects import card_contacts, event_masters
from oxsync.config import Settings, StoreSettings
from oxsync.dav import install
from oxsync.dialects import install_all
from oxsync.eas.wbxml import E
from oxsync.model import Module
from oxsync.store import schema
from oxsync.store.api import Store
from oxsync.texts_ahead import rendering_after
from tests.davhelp import Dav
from tests.eas_client import client as eas_client
from tests.eas_client import collection
from tests.fixtures import counted_renders
from tests.live import wait_until
from tests.oxclient import OX_SERVER, OxClient

MG = ('<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
      "<C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>")
AMG = ('<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/>'
       "<CR:address-data/></D:prop>{hrefs}</CR:addressbook-multiget>")
QUERY = ('<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
         '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
         '<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>')
EVENTS, CARDS = 24, 12


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Object ids rendered to iCalendar/vCard text in this process (the server's and the warmer's)."""
    return counted_renders(monkeypatch)


def _multiget(dav: Dav, base: str, names: list[str], user: str = "alice") -> bytes:
    template = AMG if base.startswith("/dav/addressbooks") else MG
    reply = dav.report(base, template.format(hrefs="".join(f"<D:href>{base}{n}</D:href>" for n in names)), user=user)
    assert reply.status == 207 and len(reply.hrefs()) == len(names)
    return bytes(reply.body)


def _query(dav: Dav, base: str) -> bytes:
    reply = dav.report(base, QUERY.format(start="20270101T000000Z", end="20270301T000000Z"))
    assert reply.status == 207 and len(reply.hrefs()) > 3
    return bytes(reply.body)


def _forget_texts(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(schema.object_texts))


def _load(store: Store, world, *, ahead: bool) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    cal, book = world.default_folder(world.alice, Module.CALENDAR), world.default_folder(world.alice, Module.CONTACT)
    masters, contacts = event_masters(0, EVENTS, EVENTS), card_contacts(0, CARDS)

    def write() -> None:
        with world.as_user(world.alice, write=True) as s:
            s.create_objects(cal, masters)
        with world.as_user(world.alice, write=True) as s:
            s.create_objects(book, contacts)
    if ahead:
        with rendering_after(store):
            write()
    else:
        write()
    return cal, book


@pytest.mark.parametrize("ahead", [True, False])
def test_after_a_bulk_load_the_first_reads_render_nothing(store, world, live_server, renders, ahead) -> None:  # type: ignore[no-untyped-def]
    """`ahead=False` is the load without `rendering_after`: its first reads render every object."""
    cal, book = _load(store, world, ahead=ahead)
    assert len(renders) == (EVENTS + CARDS if ahead else 0)
    renders.clear()
    dav = Dav(live_server(store, setup=install).port, world)
    cal_base, book_base = f"/dav/calendars/alice/{cal}/", f"/dav/addressbooks/alice/{book}/"
    first = (_multiget(dav, cal_base, [event_name(i) for i in range(EVENTS)]), _query(dav, cal_base),
             _multiget(dav, book_base, [card_name(i) for i in range(CARDS)]))
    if not ahead:  # every object rendered (some twice when a read's best-effort text write met a busy database)
        assert len(set(renders)) == EVENTS + CARDS
        return
    assert renders == []
    _forget_texts(store)  # what a render gives now is what was served from the texts rendered ahead
    again = (_multiget(dav, cal_base, [event_name(i) for i in range(EVENTS)]), _query(dav, cal_base),
             _multiget(dav, book_base, [card_name(i) for i in range(CARDS)]))
    assert len(set(renders)) == EVENTS + CARDS
    assert again == first


def test_oxsync_import_leaves_the_served_texts(world, live_server, renders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`oxsync import` of a calendar and an address book (a series with a change exception included,
    which goes in on its own, not through `create_objects`)."""
    from oxsync.cli import main

    url = f"sqlite:///{tmp_path}/cli.db"
    assert main(["--db", url, "init", "--domain", "example.com"]) == 0
    assert main(["--db", url, "user", "add", "alice", "--password", "alice-pw"]) == 0
    override = ("BEGIN:VEVENT\r\nUID:bench-0@example.com\r\nDTSTAMP:20261201T000000Z\r\n"
                "RECURRENCE-ID;TZID=Europe/Paris:20270111T080000\r\nDTSTART;TZID=Europe/Paris:20270111T100000\r\n"
                "DTEND;TZID=Europe/Paris:20270111T110000\r\nSUMMARY:Moved\r\nEND:VEVENT\r\n")
    bodies = [event(i, EVENTS) for i in range(EVENTS)]
    calendar = bodies[0].split("END:VCALENDAR")[0] + override + "".join(
        b.split("END:VTIMEZONE\r\n", 1)[1].split("END:VCALENDAR")[0] for b in bodies[1:]) + "END:VCALENDAR\r\n"
    (tmp_path / "in.ics").write_text(calendar, encoding="utf-8", newline="")
    (tmp_path / "in.vcf").write_text("".join(card(i) for i in range(CARDS)), encoding="utf-8", newline="")
    assert main(["--db", url, "import", str(tmp_path / "in.ics"), "--user", "alice"]) == 0
    assert main(["--db", url, "import", str(tmp_path / "in.vcf"), "--user", "alice"]) == 0
    assert len(renders) == EVENTS + CARDS  # the series and its exception are one resource
    renders.clear()
    store = Store(Settings(store=StoreSettings(url=url)))
    try:
        dav = Dav(live_server(store, setup=install).port, world)
        cal, book = dav.calendar(), dav.addressbook()
        listed = dav.propfind(cal, "<D:getetag/>", depth="1").hrefs()
        names = sorted(h.rsplit("/", 1)[1] for h in listed if h != cal)
        assert len(names) == EVENTS
        first = _multiget(dav, cal, names)
        assert b"SUMMARY:Moved" in first
        cards = sorted(h.rsplit("/", 1)[1] for h in dav.propfind(book, "<D:getetag/>", depth="1").hrefs() if h != book)
        _multiget(dav, book, cards)
        assert renders == []
        _forget_texts(store)
        assert _multiget(dav, cal, names) == first and len(renders) == EVENTS
    finally:
        store.dispose()


@pytest.fixture
def server(store, live_server):  # type: ignore[no-untyped-def]
    return live_server(store, setup=install_all, server=OX_SERVER, auth={"account_poll_seconds": 0},
                       dav={"texts_ahead_delay_seconds": 0.05})


def _ahead_done(server) -> None:  # type: ignore[no-untyped-def]
    assert wait_until(lambda: server.service.texts_ahead.idle), "texts ahead never finished"


def _phone_on_contacts(server):  # type: ignore[no-untyped-def]
    """A provisioned phone whose Contacts folder is synced (empty so far), and that folder's id."""
    phone = eas_client(server)
    phone.provision()
    contacts = phone.folder_of_type(9)
    phone.sync(contacts, "0")
    phone.sync(contacts)
    return phone, contacts


def _contact_add(phone, folder: str, cid: str, last: str) -> str:  # type: ignore[no-untyped-def]
    add = E("AirSync:Add", E("AirSync:ClientId", cid), E("AirSync:ApplicationData",
                                                         E("Contacts:FirstName", "Grace"), E("Contacts:LastName", last)))
    reply = phone.sync(folder, commands=[add], get_changes=False)
    server_id = collection(reply).find("AirSync:Responses").find("AirSync:Add").findtext("AirSync:ServerId")
    assert server_id, reply.raw
    return str(server_id)


def test_eas_and_ox_writes_get_their_texts_after_commit(store, world, server, renders) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(server.port, world)
    phone, contacts = _phone_on_contacts(server)
    added = [_contact_add(phone, contacts, f"c{i}", f"Hopper{i}") for i in range(3)]
    ox = OxClient(server.port, "alice", "alice-pw")
    cal = world.default_folder(world.alice, Module.CALENDAR)
    start = 1_800_000_000_000
    for n in range(3):
        [r] = ox.proppatch("calendar", {"folder_id": cal, "title": f"OX {n}", "start_date": start + n * 3_600_000,
                                        "end_date": start + n * 3_600_000 + 1_800_000})
        assert r.status == "200", r.description
    _ahead_done(server)
    assert len(renders) == 6 and server.service.texts_ahead.rendered == 6
    renders.clear()
    book_base, cal_base = f"/dav/addressbooks/alice/{contacts}/", f"/dav/calendars/alice/{cal}/"
    cards = sorted(h.rsplit("/", 1)[1] for h in dav.propfind(book_base, "<D:getetag/>", depth="1").hrefs()
                   if h != book_base)
    events = sorted(h.rsplit("/", 1)[1] for h in dav.propfind(cal_base, "<D:getetag/>", depth="1").hrefs()
                    if h != cal_base)
    assert len(cards) == 3 and len(events) == 3 and sorted(c.removesuffix(".vcf") for c in cards) == sorted(added)
    first = (_multiget(dav, book_base, cards), _multiget(dav, cal_base, events))
    query = dav.report(cal_base, QUERY.format(start="20270115T000000Z", end="20270116T000000Z"))
    assert query.status == 207 and len(query.hrefs()) == 3
    assert renders == []
    _forget_texts(store)
    assert (_multiget(dav, book_base, cards), _multiget(dav, cal_base, events)) == first and len(renders) == 6


def test_a_text_made_stale_by_an_eas_change_is_not_served(store, world, server, renders) -> None:  # type: ignore[no-untyped-def]
    """With texts rendered ahead, then the renderer stopped: a phone's change is served changed
    (rendered by the read, the old text's version no longer matches); with it running, the change's
    text is rendered ahead and the read renders nothing."""
    dav = Dav(server.port, world)
    phone, contacts = _phone_on_contacts(server)
    server_id = _contact_add(phone, contacts, "c1", "Hopper")
    _ahead_done(server)
    base = f"/dav/addressbooks/alice/{contacts}/"
    assert b"Hopper" in _multiget(dav, base, [f"{server_id}.vcf"])
    renders.clear()

    def change(last: str) -> None:
        data = E("AirSync:ApplicationData", E("Contacts:FirstName", "Grace"), E("Contacts:LastName", last))
        assert phone.sync(contacts, commands=[E("AirSync:Change", E("AirSync:ServerId", server_id), data)],
                          get_changes=False).status == 200

    server.service.texts_ahead.stopService()
    change("Murray")
    served = _multiget(dav, base, [f"{server_id}.vcf"])
    assert b"Murray" in served and renders == [int(server_id)], served
    renders.clear()
    server.service.texts_ahead.startService()
    change("Kelly")
    _ahead_done(server)
    assert renders == [int(server_id)]
    served = _multiget(dav, base, [f"{server_id}.vcf"])
    assert b"Kelly" in served and renders == [int(server_id)]


def test_a_caldav_put_leaves_nothing_to_render(store, world, server, renders) -> None:  # type: ignore[no-untyped-def]
    dav = Dav(server.port, world)
    cal = dav.calendar()
    for i in range(3):
        assert dav.put(f"{cal}{event_name(i)}", event(i, 10)).status == 201
    # each PUT's own ETag check knows its text as written (not rendered again: tests/test_dav_put_work.py)
    # and stores it
    assert renders == []
    _ahead_done(server)
    assert server.service.texts_ahead.units == 0 and renders == []  # not even woken
    assert "SUMMARY:" in dav.request("GET", f"{cal}{event_name(1)}").text and renders == []  # stored


def test_an_ox_meeting_gets_its_text_in_the_attendees_calendar_too(store, world, server, renders) -> None:  # type: ignore[no-untyped-def]
    """The copy placed in an internal attendee's calendar is that calendar owner's to read: rendered
    ahead for him too."""
    dav = Dav(server.port, world)
    ox = OxClient(server.port, "alice", "alice-pw")
    cal = world.default_folder(world.alice, Module.CALENDAR)
    start = 1_800_000_000_000
    [r] = ox.proppatch("calendar", {"folder_id": cal, "title": "Meeting", "start_date": start,
                                    "end_date": start + 1_800_000,
                                    "participants": f"<ox:user>{world.alice}</ox:user><ox:user>{world.bob}</ox:user>"})
    assert r.status == "200", r.description
    _ahead_done(server)
    assert len(renders) == 2 and len(set(renders)) == 1  # one object, two viewers
    renders.clear()
    bob_cal = world.default_folder(world.bob, Module.CALENDAR)
    base = f"/dav/calendars/bob/{bob_cal}/"
    names = [h.rsplit("/", 1)[1] for h in dav.propfind(base, "<D:getetag/>", depth="1", user="bob").hrefs() if h != base]
    assert len(names) == 1
    first = _multiget(dav, base, names, user="bob")
    assert b"SUMMARY:Meeting" in first and renders == []
    _forget_texts(store)
    assert _multiget(dav, base, names, user="bob") == first and len(renders) == 1
