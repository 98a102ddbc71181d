"""The regression corpus (tests/data/regressions/): every real-world file that once broke something,
through every dialect it belongs to, on a server running all of them.

A `.ics` is PUT over CalDAV, a `.vcf` over CardDAV; then GET, the multiget and the query REPORT of the
collection, an ActiveSync Sync of the folder and an OX PROPFIND of it must all answer, every kept file
back in each (as many items as MANIFEST.toml says), every refused file refused with the 403 and DAV
precondition MANIFEST.toml records, stored nowhere. One test for the whole corpus: a failure names the
file and the dialect.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from oxsync import render
from oxsync.dialects import install_all
from oxsync.model import Module
from tests.davhelp import NS, Dav
from tests.eas_client import client, items
from tests.oxclient import OX_SERVER, OxClient

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

DATA = Path(__file__).parent / "data" / "regressions"


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    kept: bool
    items: int
    precondition: str | None
    poison: bool

    @property
    def card(self) -> bool:
        return self.name.endswith(".vcf")


def cases() -> list[Case]:
    """Every file of the corpus with its manifest entry (a file without one, or an entry without a file,
    is an error: the manifest is the corpus' index)."""
    manifest = tomllib.loads((DATA / "MANIFEST.toml").read_text(encoding="utf-8"))
    files = {p.name for p in DATA.iterdir() if p.suffix in (".ics", ".vcf")}
    assert files == set(manifest), f"files without an entry: {files - set(manifest)}, " \
                                   f"entries without a file: {set(manifest) - files}"
    out = []
    for name, entry in sorted(manifest.items()):
        assert entry["answer"] in ("kept", "refused") and entry.get("broke"), name
        with open(DATA / name, encoding="utf-8", newline="") as handle:  # keep CRLF and the raw controls
            text = handle.read()
        out.append(Case(name, text, entry["answer"] == "kept", entry.get("items", 1), entry.get("precondition"),
                        entry.get("poison", False)))
    return out


def _report(card: bool, hrefs: list[str] | None) -> str:
    """The query REPORT of the collection (hrefs None) or a multiget of `hrefs`."""
    ns, prefix, data = (("CR", "addressbook", "address-data") if card else ("C", "calendar", "calendar-data"))
    head = f'<{ns}:{prefix}-{"query" if hrefs is None else "multiget"} xmlns:D="DAV:" xmlns:{ns}="{NS[ns]}">'
    prop = f"<D:prop><D:getetag/><{ns}:{data}/></D:prop>"
    if hrefs is None:
        body = "" if card else ('<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/>'
                                "</C:comp-filter></C:filter>")
    else:
        body = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return f'{head}{prop}{body}</{ns}:{prefix}-{"query" if hrefs is None else "multiget"}>'


def _served(reply) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    """resource name -> whether its data came back, from a 207 multistatus."""
    assert reply.status == 207, reply.body[:300]
    out = {}
    for resp in reply.xml.findall("D:response", NS):
        name = resp.find("D:href", NS).text.rsplit("/", 1)[-1]
        data = resp.find(".//C:calendar-data", NS)
        if data is None:
            data = resp.find(".//CR:address-data", NS)
        out[name] = data is not None and bool(data.text)
    return out


def test_every_regression_file_through_every_dialect(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=OX_SERVER)
    dav, alice = Dav(running.port, world), OxClient(running.port, "alice", "alice-pw")
    collections = {False: dav.calendar(), True: dav.addressbook()}
    corpus = cases()
    skipped = sum(render.skipped_items_total().values())
    wrong: list[str] = []
    for case in corpus:  # CalDAV / CardDAV: PUT, then GET
        href = collections[case.card] + case.name
        put = dav.put(href, case.text)
        if case.kept and put.status not in (201, 204):
            wrong.append(f"{case.name}: PUT {put.status} {put.body[:200]!r}, expected it stored")
        elif not case.kept and (put.status != 403 or f":{case.precondition}".encode() not in put.body):
            wrong.append(f"{case.name}: PUT {put.status} {put.body[:200]!r}, expected 403 {case.precondition}")
        got = dav.request("GET", href)
        if (got.status == 200) != case.kept:
            wrong.append(f"{case.name}: GET {got.status}")
    for card, href in collections.items():  # the collection stays readable: query and multiget
        own = [c for c in corpus if c.card == card]
        kept = {c.name for c in own if c.kept}
        queried = _served(dav.report(href, _report(card, None)))
        if set(queried) != kept or not all(queried.values()):
            wrong.append(f"{'CardDAV' if card else 'CalDAV'} query served {sorted(queried)}, expected {sorted(kept)}")
        fetched = _served(dav.report(href, _report(card, [href + c.name for c in own])))
        if {n for n, served in fetched.items() if served} != kept:
            wrong.append(f"{'CardDAV' if card else 'CalDAV'} multiget served {sorted(fetched)}, expected {sorted(kept)}")
    phone = client(running)
    phone.provision()
    for card, servlet, module, kind in ((False, "calendar", Module.CALENDAR, 8), (True, "contacts", Module.CONTACT, 9)):
        wanted = sum(c.items for c in corpus if c.card == card and c.kept)
        rows = alice.sync(servlet, world.default_folder(world.alice, module))  # OX PROPFIND (asserts its 207)
        if len([r for r in rows if r.status == "200"]) != wanted:
            wrong.append(f"OX {servlet}: {[(r.status, r.text('title')) for r in rows]}, expected {wanted} items")
        cid = phone.folder_of_type(kind)
        phone.sync(cid, "0")
        synced = phone.sync(cid, window=100)
        if synced.status != 200 or len(items(synced)) != wanted:
            wrong.append(f"ActiveSync {servlet}: {synced.status}, {len(items(synced))} items, expected {wanted}")
    if sum(render.skipped_items_total().values()) != skipped:
        wrong.append(f"objects left out of a response: {render.skipped_items_total()}")
    assert not wrong, "\n".join(wrong)
