"""Helpers for the CalDAV/CardDAV tests: a tiny client over real loopback HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from tests.live import http_request

NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav", "CR": "urn:ietf:params:xml:ns:carddav",
      "CS": "http://calendarserver.org/ns/", "A": "http://apple.com/ns/ical/"}
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def xml(self) -> Any:
        return etree.fromstring(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def hrefs(self) -> list[str]:
        return [h.text for h in self.xml.findall("D:response/D:href", NS)]

    def prop(self, href: str, path: str) -> Any:
        for resp in self.xml.findall("D:response", NS):
            if resp.find("D:href", NS).text == href:
                for stat in resp.findall("D:propstat", NS):
                    if " 200 " in stat.find("D:status", NS).text:
                        found = stat.find(f"D:prop/{path}", NS)
                        if found is not None:
                            return found
        return None


@dataclass
class Dav:
    port: int
    world: Any

    def request(self, method: str, path: str, body: str | bytes | None = None, user: str = "alice",
                **headers: str) -> Reply:
        auth = (user, PASSWORDS[user]) if user else None
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        status, got, data = http_request(self.port, method, path, auth=auth, body=body, headers=hdrs)
        return Reply(status, got, data)

    def propfind(self, path: str, props: str, depth: str = "0", user: str = "alice") -> Reply:
        body = f'<D:propfind xmlns:D="DAV:" xmlns:C="{NS["C"]}" xmlns:CR="{NS["CR"]}" xmlns:CS="{NS["CS"]}" ' \
               f'xmlns:A="{NS["A"]}"><D:prop>{props}</D:prop></D:propfind>'
        return self.request("PROPFIND", path, body, user=user, Depth=depth)

    def report(self, path: str, body: str, user: str = "alice", depth: str = "1") -> Reply:
        return self.request("REPORT", path, body, user=user, Depth=depth)

    def put(self, path: str, body: str, user: str = "alice", **headers: str) -> Reply:
        ctype = "text/vcard" if path.endswith(".vcf") else "text/calendar"
        return self.request("PUT", path, body, user=user, Content_Type=ctype, **headers)

    def calendar(self, user: str = "alice") -> str:
        return self._default(user, "calendars", "VEVENT")

    def tasks(self, user: str = "alice") -> str:
        return self._default(user, "calendars", "VTODO")

    def addressbook(self, user: str = "alice") -> str:
        home = f"/dav/addressbooks/{user}/"
        reply = self.propfind(home, "<D:resourcetype/><D:displayname/>", "1", user)
        for resp in reply.xml.findall("D:response", NS):
            title = resp.find(".//D:displayname", NS)
            if resp.find(".//CR:addressbook", NS) is not None and title is not None and title.text == "Contacts":
                return resp.find("D:href", NS).text
        raise AssertionError("no address book")

    def _default(self, user: str, kind: str, comp: str) -> str:
        reply = self.propfind(f"/dav/{kind}/{user}/", "<D:displayname/><C:supported-calendar-component-set/>", "1", user)
        for resp in reply.xml.findall("D:response", NS):
            names = [c.get("name") for c in resp.findall(".//C:comp", NS)]
            title = resp.find(".//D:displayname", NS)
            if names == [comp] and title is not None and title.text in ("Calendar", "Tasks"):
                return resp.find("D:href", NS).text
        raise AssertionError(f"no {comp} collection for {user}")


def event(uid: str, summary: str = "Meeting", start: str = "20260310T090000Z", end: str = "20260310T100000Z",
          extra: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
            f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")


def todo(uid: str, summary: str = "Task", extra: str = "") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\n{extra}END:VTODO\r\nEND:VCALENDAR\r\n")


def vcard(uid: str, name: str = "Jane Doe", extra: str = "", version: str = "3.0") -> str:
    first, _, last = name.partition(" ")
    return (f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{name}\r\nN:{last};{first};;;\r\n"
            f"EMAIL;TYPE=INTERNET:{first.lower()}@example.org\r\n{extra}END:VCARD\r\n")


def sync_body(token: str = "", props: str = "<D:getetag/>", limit: int | None = None) -> str:
    lim = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit else ""
    return (f'<D:sync-collection xmlns:D="DAV:" xmlns:C="{NS["C"]}" xmlns:CR="{NS["CR"]}">'
            f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>{lim}<D:prop>{props}</D:prop>"
            "</D:sync-collection>")
