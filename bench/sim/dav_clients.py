"""A simulated CalDAV/CardDAV client (Apple Calendar/Contacts style): poll `CS:getctag` on the default
calendar and address book, run `sync-collection` (etags only, then a multiget of what changed) when
the ctag moved, and now and then PUT a new event or vCard.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from lxml import etree

from bench.sim.base import Context, SimClient, expect
from bench.sim.seed import SimUser

NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav", "CR": "urn:ietf:params:xml:ns:carddav",
      "CS": "http://calendarserver.org/ns/"}
XMLNS = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())


class DavClient(SimClient):
    kind = "dav"

    def __init__(self, ctx: Context, user: SimUser, index: int) -> None:
        super().__init__(ctx, user, index)
        self.collections = {f"/dav/calendars/{user.login}/{user.calendar}/": user.calendar,
                            f"/dav/addressbooks/{user.login}/{user.contacts}/": user.contacts}
        self.ctag: dict[str, str] = {}
        self.token: dict[str, str] = {}
        now = time.perf_counter()
        self.due = {"poll": now, "put": now + self.jitter(ctx.options.dav_put_every)}

    def setup(self) -> None:
        for path in self.collections:
            self.ctag[path] = self.get_ctag(path)
            self.sync_collection(path)

    def step(self) -> None:
        name, due = min(self.due.items(), key=lambda kv: kv[1])
        self.sleep_until(due)
        if name == "poll":
            for path in self.collections:
                ctag = self.get_ctag(path)
                if ctag != self.ctag.get(path):
                    self.sync_collection(path)
                    self.ctag[path] = ctag
            self.due["poll"] = time.perf_counter() + self.ctx.options.dav_poll_every
        else:
            self.due["put"] = time.perf_counter() + self.jitter(self.ctx.options.dav_put_every)
            self.put()

    # ------------------------------------------------------------------ requests

    def get_ctag(self, path: str) -> str:
        body = f'<D:propfind {XMLNS}><D:prop><CS:getctag/><D:sync-token/></D:prop></D:propfind>'

        def run() -> str:
            status, _, data = self.http("PROPFIND", path, body, {"Depth": "0", "Content-Type": "application/xml"})
            expect(status == 207, f"PROPFIND ctag: HTTP {status}")
            found = etree.fromstring(data).find(".//CS:getctag", NS)
            expect(found is not None and found.text, "no getctag")
            return found.text  # type: ignore[union-attr,return-value]
        return self.timed("dav.ctag", run)

    def sync_collection(self, path: str) -> None:
        """sync-collection from the last token (pages until done), then multiget what changed."""
        changed: list[str] = []
        while True:
            body = (f'<D:sync-collection {XMLNS}><D:sync-token>{self.token.get(path, "")}</D:sync-token>'
                    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")

            def run(body: str = body) -> bool:
                status, _, data = self.http("REPORT", path, body, {"Depth": "1", "Content-Type": "application/xml"})
                if status == 403 and b"valid-sync-token" in data:
                    self.token.pop(path, None)
                    return True
                expect(status == 207, f"sync-collection: HTTP {status} {data[:200]!r}")
                root = etree.fromstring(data)
                more = False
                for resp in root.findall("D:response", NS):
                    href = resp.findtext("D:href", "", NS)
                    if href.rstrip("/") == path.rstrip("/"):
                        more = more or "507" in (resp.findtext("D:status", "", NS) or "")
                    elif resp.find(".//D:getetag", NS) is not None:
                        changed.append(href)
                self.token[path] = root.findtext("D:sync-token", "", NS)
                return more
            if not self.timed("dav.sync-collection", run):
                break
        for start in range(0, len(changed), 50):
            self.multiget(path, changed[start:start + 50])

    def multiget(self, path: str, hrefs: list[str]) -> None:
        card = "addressbooks" in path
        report, data_prop = ("CR:addressbook-multiget", "<CR:address-data/>") if card else \
            ("C:calendar-multiget", "<C:calendar-data/>")
        body = (f"<{report} {XMLNS}><D:prop><D:getetag/>{data_prop}</D:prop>"
                + "".join(f"<D:href>{h}</D:href>" for h in hrefs) + f"</{report}>")

        def run() -> None:
            status, _, data = self.http("REPORT", path, body, {"Depth": "1", "Content-Type": "application/xml"})
            expect(status == 207, f"multiget: HTTP {status}")
        self.timed("dav.multiget", run)

    def put(self) -> None:
        uid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        if self.rng.random() < 0.5:
            path = next(p for p in self.collections if "addressbooks" in p)
            body = (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Dav Contact {uid[:8]}\r\nN:Contact;Dav;;;\r\n"
                    f"EMAIL;TYPE=INTERNET:{uid[:8]}@dav.example\r\nEND:VCARD\r\n")
            ctype, name = "text/vcard", f"{uid}.vcf"
        else:
            path = next(p for p in self.collections if "calendars" in p)
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=self.rng.randint(1, 30))
            body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench.sim//EN\r\nBEGIN:VEVENT\r\n"
                    f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
                    f"DTEND:{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}\r\nSUMMARY:DAV event\r\n"
                    "END:VEVENT\r\nEND:VCALENDAR\r\n")
            ctype, name = "text/calendar; charset=utf-8", f"{uid}.ics"

        def run() -> None:
            status, _, data = self.http("PUT", path + name, body, {"Content-Type": ctype, "If-None-Match": "*"})
            expect(status in (201, 204), f"PUT: HTTP {status} {data[:200]!r}")
            self.ctx.commits.committed([self.collections[path]], time.perf_counter())
        self.timed("dav.put", run)
