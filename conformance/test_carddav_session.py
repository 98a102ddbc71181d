"""A CardDAV client session (no maintained external CardDAV tester exists): the python `caldav`
library's DAVClient drives discovery, address book listing, PUT/GET, sync-collection, multiget,
photos and distribution lists against a live server, as DAVx5/Apple Contacts would."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from oxsync.dav import install
from tests.davhelp import NS, vcard

try:
    import caldav
except ImportError as exc:  # a conformance client missing is a failure, not a skip: `make test` installs it
    raise ImportError("caldav is not installed: run `make test` or pip install -e '.[conformance]'") from exc


@pytest.fixture
def client(live_server, store, world) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install)
    dav = caldav.DAVClient(url=f"{running.base_url}/dav/", username="alice", password="alice-pw")
    yield dav
    dav.close()


def _xml(response: Any) -> Any:
    return etree.fromstring(response.raw.encode() if isinstance(response.raw, str) else response.raw)


def _propfind(client: Any, url: str, props: str, depth: int = 0) -> Any:
    body = (f'<D:propfind xmlns:D="DAV:" xmlns:CR="{NS["CR"]}" xmlns:CS="{NS["CS"]}"><D:prop>{props}</D:prop>'
            "</D:propfind>")
    response = client.propfind(url, body, depth)
    assert response.status == 207
    return _xml(response)


def discover(client: Any) -> tuple[str, str]:
    """well-known -> current-user-principal -> addressbook-home-set -> the default address book."""
    base = str(client.url).split("/dav/")[0]
    well_known = client.request(base + "/.well-known/carddav", "PROPFIND", "", {"Depth": "0"})
    assert well_known.status in (207, 301)
    root = _propfind(client, base + "/dav/", "<D:current-user-principal/>")
    principal = root.find(".//D:current-user-principal/D:href", NS).text
    home = _propfind(client, base + principal, "<CR:addressbook-home-set/>").find(
        ".//CR:addressbook-home-set/D:href", NS).text
    listing = _propfind(client, base + home, "<D:resourcetype/><D:displayname/><CS:getctag/><D:sync-token/>"
                        "<CR:supported-address-data/><D:current-user-privilege-set/>", 1)
    books = {}
    for resp in listing.findall("D:response", NS):
        if resp.find(".//CR:addressbook", NS) is not None:
            books[resp.find(".//D:displayname", NS).text] = resp.find("D:href", NS).text
    assert "Contacts" in books and len(books) >= 2  # own contacts + the global address book
    return base, books["Contacts"]


def _sync(client: Any, url: str, token: str = "") -> tuple[dict[str, str], str]:
    body = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1'
            "</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")
    root = _xml(client.report(url, body, 0))
    out = {}
    for resp in root.findall("D:response", NS):
        status = resp.find("D:status", NS)
        out[resp.find("D:href", NS).text.rsplit("/", 1)[-1]] = "gone" if status is not None else \
            resp.find(".//D:getetag", NS).text
    return out, root.find("D:sync-token", NS).text


def test_discovery_sync_and_multiget(client: Any) -> None:
    base, book = discover(client)
    url = base + book
    changes, token = _sync(client, url)
    assert changes == {}
    for i, name in enumerate(("Ann Lee", "Bo Chan", "Cy Young")):
        put = client.put(f"{url}c{i}.vcf", vcard(f"session-{i}", name), {"Content-Type": "text/vcard"})
        assert put.status == 201
    changes, token2 = _sync(client, url, token)
    assert set(changes) == {"c0.vcf", "c1.vcf", "c2.vcf"}
    assert client.delete(f"{url}c1.vcf").status == 204
    client.put(f"{url}c2.vcf", vcard("session-2", "Cy Younger"), {"Content-Type": "text/vcard"})
    changes, _ = _sync(client, url, token2)
    assert changes["c1.vcf"] == "gone" and changes["c2.vcf"] != "gone" and "c0.vcf" not in changes
    body = (f'<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="{NS["CR"]}"><D:prop><D:getetag/><CR:address-data/>'
            f"</D:prop><D:href>{book}c0.vcf</D:href><D:href>{book}c2.vcf</D:href><D:href>{book}c1.vcf</D:href>"
            "</CR:addressbook-multiget>")
    root = _xml(client.report(url, body, 1))
    data = {r.find("D:href", NS).text.rsplit("/", 1)[-1]: r.find(".//CR:address-data", NS) for r in
            root.findall("D:response", NS)}
    assert "FN:Cy Younger" in data["c2.vcf"].text and data["c1.vcf"] is None


def test_photo_round_trip(client: Any) -> None:
    base, book = discover(client)
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 80 + b"\xff\xd9"
    encoded = base64.b64encode(jpeg).decode()
    card = vcard("photo-1", "Pic Ture", extra=f"PHOTO;ENCODING=b;TYPE=JPEG:{encoded}\r\n")
    assert client.put(f"{base}{book}pic.vcf", card, {"Content-Type": "text/vcard"}).status == 201
    v3 = client.request(f"{base}{book}pic.vcf").raw
    unfolded = re.sub(r"\r?\n[ \t]", "", v3 if isinstance(v3, str) else v3.decode())
    assert encoded in unfolded
    v4 = client.request(f"{base}{book}pic.vcf", "GET", "", {"Accept": "text/vcard; version=4.0"}).raw
    unfolded4 = re.sub(r"\r?\n[ \t]", "", v4 if isinstance(v4, str) else v4.decode())
    assert "VERSION:4.0" in unfolded4 and encoded in unfolded4


def test_distribution_list(client: Any) -> None:
    base, book = discover(client)
    assert client.put(f"{base}{book}jane.vcf", vcard("member-jane", "Jane Roe"),
                      {"Content-Type": "text/vcard"}).status == 201
    group = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:list-1\r\nKIND:group\r\nFN:Friends\r\n"
             "MEMBER:urn:uuid:member-jane\r\nMEMBER:mailto:outside@example.net\r\nEND:VCARD\r\n")
    assert client.put(f"{base}{book}friends.vcf", group, {"Content-Type": "text/vcard"}).status == 201
    v4 = client.request(f"{base}{book}friends.vcf", "GET", "", {"Accept": "text/vcard; version=4.0"}).raw
    assert "KIND:group" in v4 and "MEMBER:urn:uuid:member-jane" in v4 and "outside@example.net" in v4
    v3 = client.request(f"{base}{book}friends.vcf").raw
    assert "X-ADDRESSBOOKSERVER-KIND:group" in v3 and "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:member-jane" in v3


def test_global_address_book_is_read_only(client: Any) -> None:
    base, _ = discover(client)
    home = _propfind(client, base + "/dav/addressbooks/alice/", "<D:displayname/><D:current-user-privilege-set/>", 1)
    gab = [r for r in home.findall("D:response", NS)
           if r.find(".//D:displayname", NS) is not None and r.find("D:href", NS).text.endswith("/6/")]
    assert gab, "the global address book is listed"
    href = gab[0].find("D:href", NS).text
    privileges = {p[0].tag for p in gab[0].findall(".//D:privilege", NS)}
    assert f"{{{NS['D']}}}read" in privileges and f"{{{NS['D']}}}bind" not in privileges
    members = _propfind(client, base + href, "<D:getetag/>", 1).findall("D:response", NS)
    assert len(members) >= 4  # the collection and alice, bob, carol
    with pytest.raises(caldav.lib.error.AuthorizationError) as refused:
        client.put(f"{base}{href}x.vcf", vcard("gab-x", "No Way"), {"Content-Type": "text/vcard"})
    assert "Forbidden" in str(refused.value)
