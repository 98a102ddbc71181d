"""Simulated Outlook with the OXtender: OX WebDAV/XML polling plus UDP push.

Every `ox_poll_every` seconds: folder delta PROPFIND, then an object delta PROPFIND per default folder.
A real UDP socket is registered with one node (`1337\\x01LEN\\x011\\x01<uid>\\x01<context>`); each
`<folder>\\x01` packet is recorded as "ox.push.wake" (commit -> packet, from the shared CommitLog) and
triggers a delta of that folder. Edits are PROPPATCH saves (meetings invite team members, so phones'
Pings and other Outlooks' UDP sockets are woken); free/busy GETs look at team members.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

from bench.sim.base import Context, RequestFailed, SimClient, expect
from bench.sim.seed import SimUser
from tests.oxclient import parse_multistatus, propfind_body, proppatch_body

SERVLETS = {"contacts": "contacts", "calendar": "calendar", "tasks": "tasks"}


class Outlook(SimClient):
    kind = "outlook"

    def __init__(self, ctx: Context, user: SimUser, index: int) -> None:
        super().__init__(ctx, user, index)
        self.cookie: str | None = None
        self.folder_lastsync = 0
        self.lastsync: dict[int, int] = {}
        self.notified_at: dict[int, float] = {}  # folder -> last packet (a packet covers the commits since)
        self.registered_at = 0.0
        self.servlet = {user.contacts: "contacts", user.calendar: "calendar", user.tasks: "tasks"}
        self.udp: socket.socket | None = None
        self.udp_endpoint = ctx.endpoints[index % len(ctx.endpoints)]
        now = time.perf_counter()
        self.due = {"poll": now, "edit": now + self.jitter(ctx.options.ox_edit_every),
                    "freebusy": now + self.jitter(ctx.options.ox_freebusy_every), "register": now + 600}

    # ------------------------------------------------------------------ wire

    def dav(self, method: str, servlet: str, body: str) -> list:  # type: ignore[type-arg]
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        if self.cookie:
            headers["Cookie"] = f"sessionid={self.cookie}"
        status, got, data = self.http(method, f"/servlet/webdav.{servlet}", body, headers, basic=self.cookie is None)
        if status == 401:
            self.cookie = None
        expect(status == 207, f"{method} {servlet}: HTTP {status} {data[:200]!r}")
        cookie = got.get("set-cookie", "")
        if cookie.startswith("sessionid="):
            self.cookie = cookie.split(";", 1)[0].split("=", 1)[1] or None
        return parse_multistatus(data)

    # ------------------------------------------------------------------ flows

    def setup(self) -> None:
        self.folders_delta()
        for folder in self.servlet:
            self.objects_delta(folder)
        self.register()

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()

    def abort(self) -> None:
        super().abort()
        self.close()

    def register(self) -> None:
        """REGISTER with the node chosen for this client (UDP needs a recent HTTP login there: we just polled)."""
        if self.udp is None:
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
        payload = f"1\x01{self.user.user_id}\x01{self.ctx.tenant_id}".encode()
        started = time.perf_counter()
        self.udp.sendto(b"1337\x01%d\x01" % len(payload) + payload, (self.udp_endpoint.host, self.udp_endpoint.udp_port))
        deadline = started + 5
        while time.perf_counter() < deadline:
            self.udp.settimeout(max(0.05, deadline - time.perf_counter()))
            try:
                packet = self.udp.recv(2048)
            except (TimeoutError, OSError):
                break
            if packet == b"OK\x01":
                self.registered_at = self.registered_at or started
                self.ctx.recorder.record("ox.push.register", started, time.perf_counter() - started, True)
                return
            self.on_packet(packet)
        self.ctx.recorder.record("ox.push.register", started, time.perf_counter() - started, False)
        raise RequestFailed("UDP REGISTER: no OK")

    def folders_delta(self) -> None:
        def run() -> None:
            responses = self.dav("PROPFIND", "folders", propfind_body({"lastsync": self.folder_lastsync}))
            stamps = [int(r.text("last_modified") or 0) for r in responses if r.text("last_modified")]
            self.folder_lastsync = max([self.folder_lastsync, *stamps])
        self.timed("ox.folders.delta", run)

    def objects_delta(self, folder: int) -> None:
        def run() -> None:
            last = self.lastsync.get(folder, 0)
            responses = self.dav("PROPFIND", self.servlet[folder], propfind_body(
                {"folder_id": folder, "lastsync": last, "objectmode": "NEW_AND_MODIFIED,DELETED"}))
            stamps = [int(r.text("last_modified") or 0) for r in responses if r.text("last_modified")]
            self.lastsync[folder] = max([last, *stamps])
        self.timed("ox.objects.delta", run)

    def on_packet(self, packet: bytes) -> None:
        received = time.perf_counter()
        try:
            folder = int(packet.split(b"\x01", 1)[0])
        except ValueError:
            return
        first = self.ctx.commits.first_since(folder, self.notified_at.get(folder, self.registered_at))
        self.notified_at[folder] = received
        if first is not None:
            self.ctx.recorder.record("ox.push.wake", first, max(0.0, received - first), True)
        if folder in self.servlet:
            self.objects_delta(folder)

    def step(self) -> None:
        name, due = min(self.due.items(), key=lambda kv: kv[1])
        self.wait_udp(due)
        self.sleep_until(due)
        opts = self.ctx.options
        if name == "poll":
            self.folders_delta()
            for folder in self.servlet:
                self.objects_delta(folder)
            self.due["poll"] = time.perf_counter() + opts.ox_poll_every
        elif name == "edit":
            self.due["edit"] = time.perf_counter() + self.jitter(opts.ox_edit_every)
            self.edit()
        elif name == "freebusy":
            self.due["freebusy"] = time.perf_counter() + self.jitter(opts.ox_freebusy_every)
            self.freebusy()
        else:
            self.due["register"] = time.perf_counter() + 600
            self.register()

    def wait_udp(self, due: float) -> None:
        """Until `due`, listen on the UDP socket (checking the stop event every second)."""
        while (left := due - time.perf_counter()) > 0 and not self.ctx.stop.is_set():
            if self.udp is None:
                self.ctx.stop.wait(left)
                return
            self.udp.settimeout(min(left, 1.0))
            try:
                packet = self.udp.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.on_packet(packet)

    # ------------------------------------------------------------------ edits and free/busy

    def edit(self) -> None:
        n = self.rng.randrange(1000000)
        if self.rng.random() < 0.6:
            folder = self.user.calendar
            team = [u for u in self.ctx.team_of(self.user) if u is not self.user]
            invited = self.rng.sample(team, k=min(len(team), self.rng.randint(1, 2)))
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=self.rng.randint(1, 30),
                                                                                             hours=self.rng.randint(0, 8))
            ms = int(start.timestamp() * 1000)
            parts = f"<ox:user>{self.user.user_id}</ox:user>" + "".join(f"<ox:user>{u.user_id}</ox:user>" for u in invited)
            fields: dict[str, object] = {"folder_id": folder, "title": f"Outlook meeting {n}", "location": "Room",
                                         "start_date": ms, "end_date": ms + 3_600_000, "participants": parts,
                                         "ignore_conflicts": True}
            touched = [folder, *[u.calendar for u in invited]]
        else:
            folder = self.user.contacts
            fields = {"folder_id": folder, "first_name": "Outlook", "last_name": f"Contact {n}",
                      "email1": f"o{n}@outlook.example", "company": "Sim Ltd"}
            touched = [folder]

        def run() -> None:
            [saved] = self.dav("PROPPATCH", self.servlet[folder], proppatch_body([fields]))
            expect(saved.status == "200", f"PROPPATCH: {saved.description}")
            self.ctx.commits.committed(touched, time.perf_counter())
        self.timed("ox.objects.save", run)

    def freebusy(self) -> None:
        team = [u for u in self.ctx.team_of(self.user) if u is not self.user] or [self.user]
        other = self.rng.choice(team)
        day = datetime.now(UTC).date()
        query = (f"username={other.login}&server={self.ctx.options.domain}&start={day:%Y%m%d}"
                 f"&end={day + timedelta(days=14):%Y%m%d}")

        def run() -> None:
            status, _, data = self.http("GET", f"/servlet/webdav.freebusy?{query}", basic=False)
            expect(status == 200 and b"BEGIN:VFREEBUSY" in data, f"freebusy: HTTP {status}")
        self.timed("ox.freebusy", run)

