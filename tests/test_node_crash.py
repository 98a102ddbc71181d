"""kill -9 a real `oxsync serve` node during a burst of writes over real HTTP (issue 7).

SQLite: one node, killed mid-burst, then a new node is started on the same database file.
PostgreSQL: two nodes behind a round-robin "balancer"; one is killed mid-burst while the clients carry
on against the other, then a replacement node joins.

Clients: a CalDAV writer (events), a CardDAV writer (vCards), an ActiveSync device adding contacts
with ClientIds in the same Contacts folder the CardDAV writer fills (so it also receives server Adds),
and a DAV sync-collection client following both collections. A write counts only once it was
ACKNOWLEDGED (2xx, or EAS Status 1 with a ServerId). A write whose connection died is in doubt and
is re-sent as-is (same href / same SyncKey and ClientIds) on whatever node is up.

Deterministic crash window for EAS: right before the kill the device's Sync with two Adds is
committed on the doomed node but its reply is "lost"; after the kill the device re-sends the same
request with its old key (now the server's previous key) to a surviving or restarted node, and must
get the same ServerIds back, with nothing duplicated.

After the burst: every acknowledged write is in the store and reachable through CalDAV/CardDAV/EAS;
the device's stored sync state names only existing objects and matches what the device holds; the
device resumes from its key and ends up holding every item of the folder exactly once; a DAV
sync-collection from the token held at the moment of the kill, and from the last token, returns
consistent deltas (no duplicate hrefs, nothing missing).
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.sim.nodes import Cluster, start_nodes
from oxsync.eas import state as eas_state
from oxsync.eas.wbxml import E, Element
from oxsync.model import Module
from tests.davhelp import NS, Dav, event, sync_body, vcard
from tests.eas_client import EasClient, collection
from tests.world import World, build_world

ACKS_BEFORE_KILL = 100
"""Acknowledged writes (all clients together) before the SIGKILL."""
MIN_PER_WRITER = 10
ACKS_AFTER_RESTART = 40
PHASE_SECONDS = 30.0
"""Upper bound of every waiting loop (a deadline, never a sleep to wait for something)."""
DEVICE = "crashphone01"
NETWORK_ERRORS = (OSError, http.client.HTTPException)
T = TypeVar("T")


class Frontend:
    """What a TCP load balancer does for the clients: round-robin over the nodes it believes alive."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = list(ports)
        self._next = 0
        self._lock = threading.Lock()
        self.acked_on: Counter[int] = Counter()

    def pick(self) -> int | None:
        with self._lock:
            if not self._ports:
                return None
            self._next = (self._next + 1) % len(self._ports)
            return self._ports[self._next]

    def add(self, port: int) -> None:
        with self._lock:
            self._ports.append(port)

    def remove(self, port: int) -> None:
        with self._lock:
            self._ports.remove(port)

    def acked(self, port: int) -> None:
        with self._lock:
            self.acked_on[port] += 1


@dataclass
class Run:
    """Shared bookkeeping of one burst."""

    frontend: Frontend
    deadline: float
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: Counter[str] = field(default_factory=Counter)
    in_doubt: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def ack(self, writer: str, port: int, book: dict[str, str], key: str, value: str) -> None:
        """Record an acknowledged write (under the lock, so that a snapshot is never torn)."""
        with self.lock:
            book[key] = value
            self.acks[writer] += 1
        self.frontend.acked(port)

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def total(self) -> int:
        with self.lock:
            return sum(self.acks.values())

    def until_answered(self, who: str, attempt: Callable[[int], T]) -> tuple[int, T]:
        """Send one request until some node answers it; a dead connection means "in doubt, re-send"."""
        while time.monotonic() < self.deadline:
            port = self.frontend.pick()
            if port is None:  # no node up (SQLite between kill and restart)
                time.sleep(0.02)
                continue
            try:
                return port, attempt(port)
            except NETWORK_ERRORS:
                with self.lock:
                    self.in_doubt[who] += 1
                time.sleep(0.02)
        raise TimeoutError(f"{who}: no node answered before the deadline")


def _guard(run: Run, name: str, body: Callable[[], None]) -> Callable[[], None]:
    def wrapped() -> None:
        try:
            body()
        except Exception as exc:  # reported by the test, never swallowed
            run.problem(f"{name} crashed: {exc!r}")
    return wrapped


# --------------------------------------------------------------------------- DAV writers


@dataclass
class DavWriter:
    run: Run
    name: str
    collection: str
    kind: str  # "ics" or "vcf"
    acked: dict[str, str] = field(default_factory=dict)
    """href -> UID of every acknowledged PUT."""

    def loop(self) -> None:
        n = 0
        while not self.run.stop.is_set():
            n += 1
            uid = f"{self.name}-{n}"
            href = f"{self.collection}{uid}.{self.kind}"
            body = event(uid, f"Burst {n}") if self.kind == "ics" else vcard(uid, f"Burst Card{n}")
            # an in-doubt PUT is simply repeated: it creates the resource or updates the one that got in
            port, reply = self.run.until_answered(self.name, lambda p: Dav(p, None).put(href, body))  # noqa: B023
            if reply.status in (201, 204):
                self.run.ack(self.name, port, self.acked, href, uid)
            else:
                self.run.problem(f"{self.name}: PUT {href} answered {reply.status} {reply.body[:200]!r}")


# --------------------------------------------------------------------------- EAS device


def contact_add(client_id: str) -> Element:
    return E("AirSync:Add", E("AirSync:ClientId", client_id), E("AirSync:ApplicationData",
                                                                 E("Contacts:FirstName", "Eas"),
                                                                 E("Contacts:LastName", client_id)))


@dataclass
class Device:
    """An ActiveSync device that keeps what it holds, like a phone's local database."""

    run: Run
    phone: EasClient
    folder: str
    held: dict[str, int] = field(default_factory=dict)
    """ServerId -> how many times the server handed it over (Adds received + own Adds acknowledged)."""
    acked: dict[str, str] = field(default_factory=dict)
    """ClientId -> ServerId of every acknowledged Add."""
    victim_port: int = 0
    """The node the next Sync goes to when `lose_next` is set: its reply will be lost, the node killed."""
    lose_next: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    lost_reply: dict[str, str] = field(default_factory=dict)
    """ClientId -> ServerId of the committed Sync whose reply never reached the device."""
    counter: int = 0

    def sync(self, commands: list[Element] | None = None) -> tuple[int, Element]:
        key = self.phone.keys[self.folder]

        def attempt(port: int) -> Any:
            self.phone.port = port
            self.phone.keys[self.folder] = key  # a re-send always carries the key the device holds
            return self.phone.sync(self.folder, key, window=25, commands=commands)

        port, reply = self.run.until_answered("eas", attempt)
        if reply.status != 200 or reply.body is None:
            raise AssertionError(f"EAS Sync answered HTTP {reply.status}: {reply.raw[:200]!r}")
        coll = collection(reply)
        if coll.findtext("AirSync:Status") != "1":
            raise AssertionError(f"EAS Sync with key {key} answered Status {coll.findtext('AirSync:Status')}")
        return port, coll

    def apply(self, coll: Element, port: int) -> bool:
        """Apply a Sync reply to the device's data; True when the server had nothing more to say."""
        responses = coll.find("AirSync:Responses")
        for add in responses.findall("AirSync:Add") if responses is not None else []:
            cid, sid = add.findtext("AirSync:ClientId", ""), add.findtext("AirSync:ServerId", "")
            if add.findtext("AirSync:Status") != "1" or not sid:
                self.run.problem(f"eas: Add {cid} answered Status {add.findtext('AirSync:Status')}")
                continue
            if cid in self.acked and self.acked[cid] != sid:
                self.run.problem(f"eas: ClientId {cid} got ServerId {sid}, earlier {self.acked[cid]}")
            if cid not in self.acked:
                self.held[sid] = self.held.get(sid, 0) + 1
                self.run.ack("eas", port, self.acked, cid, sid)
        commands = coll.find("AirSync:Commands")
        for cmd in commands.children if commands is not None else []:
            sid = cmd.findtext("AirSync:ServerId", "")
            if cmd.tag == "AirSync:Add":
                self.held[sid] = self.held.get(sid, 0) + 1  # > 1 = a duplicate on the device
            elif cmd.tag == "AirSync:Change":
                if sid not in self.held:
                    self.run.problem(f"eas: Change for {sid}, which the device does not hold")
            elif cmd.tag in ("AirSync:Delete", "AirSync:SoftDelete"):
                self.held.pop(sid, None)
        return commands is None and responses is None and coll.find("AirSync:MoreAvailable") is None

    def loop(self) -> None:
        while not self.run.stop.is_set():
            cids = [f"cid-{self.counter + 1}", f"cid-{self.counter + 2}"]
            self.counter += 2
            if self.lose_next.is_set() and not self.lost.is_set():
                # committed on the node that is about to die, but the reply never reaches the device
                key = self.phone.keys[self.folder]
                self.phone.port = self.victim_port
                reply = self.phone.sync(self.folder, key, window=25, commands=[contact_add(c) for c in cids])
                self.lost_reply = {c: _response_sid(collection(reply), c) or "" for c in cids}
                if not all(self.lost_reply.values()):
                    raise AssertionError(f"the Sync to be lost was not acknowledged: {reply.raw[:200]!r}")
                self.phone.keys[self.folder] = key
                self.lost.set()
                if not self.killed.wait(PHASE_SECONDS):
                    raise TimeoutError("the node was never killed")
                port, coll = self.sync([contact_add(c) for c in cids])  # same key, same ClientIds
                for cid in cids:
                    got = _response_sid(coll, cid)
                    if got != self.lost_reply.get(cid):
                        self.run.problem(f"eas: re-sent Add {cid} got ServerId {got}, "
                                         f"the lost reply had {self.lost_reply.get(cid)}")
            else:
                port, coll = self.sync([contact_add(c) for c in cids])
            self.apply(coll, port)

    def drain(self) -> None:
        """Resume: sync (no commands) until the server has nothing more."""
        for _ in range(100):
            port, coll = self.sync()
            if self.apply(coll, port):
                return
        raise AssertionError("the device never caught up")


def _response_sid(coll: Element, client_id: str) -> str | None:
    responses = coll.find("AirSync:Responses")
    for add in responses.findall("AirSync:Add") if responses is not None else []:
        if add.findtext("AirSync:ClientId") == client_id:
            return add.findtext("AirSync:ServerId")
    return None


# --------------------------------------------------------------------------- DAV sync client


@dataclass
class DavSyncer:
    """A CalDAV/CardDAV client that follows collections with sync-collection and keeps href -> etag."""

    run: Run
    collections: list[str]
    tokens: dict[str, str] = field(default_factory=dict)
    known: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, tuple[str, dict[str, str]]]:
        with self.lock:
            return {c: (self.tokens.get(c, ""), dict(self.known.get(c, {}))) for c in self.collections}

    def delta(self, coll: str, token: str) -> tuple[str, dict[str, str | None]]:
        """One complete sync-collection from `token` (following 507 pages): href -> etag (None = gone)."""
        changes: dict[str, str | None] = {}
        for _ in range(50):
            _, reply = self.run.until_answered("davsync", lambda p: Dav(p, None).report(coll, sync_body(token), depth="0"))  # noqa: B023
            if reply.status != 207:
                raise AssertionError(f"sync-collection on {coll} from {token!r}: {reply.status} {reply.body[:300]!r}")
            hrefs = [r.find("D:href", NS).text for r in reply.xml.findall("D:response", NS)]
            dups = [h for h, n in Counter(hrefs).items() if n > 1]
            if dups:
                self.run.problem(f"sync-collection on {coll} from {token!r} repeats hrefs {dups}")
            truncated = False
            for resp in reply.xml.findall("D:response", NS):
                href = resp.find("D:href", NS).text
                status = resp.find("D:status", NS)
                if href == coll and status is not None and " 507 " in status.text:
                    truncated = True
                elif status is not None and " 404 " in status.text:
                    changes[href] = None
                else:
                    etag = resp.find(".//D:getetag", NS)
                    changes[href] = etag.text if etag is not None else ""
            token = reply.xml.find("D:sync-token", NS).text
            if not truncated:
                return token, changes
        raise AssertionError("sync-collection never finished paging")

    def sync(self, coll: str) -> None:
        token, changes = self.delta(coll, self.tokens.get(coll, ""))
        with self.lock:
            known = self.known.setdefault(coll, {})
            for href, etag in changes.items():
                if etag is None:
                    known.pop(href, None)
                else:
                    known[href] = etag
            self.tokens[coll] = token

    def loop(self) -> None:
        while not self.run.stop.is_set():
            for coll in self.collections:
                self.sync(coll)


# --------------------------------------------------------------------------- the test


def _state_ids(saved: dict[str, Any]) -> dict[str, set[int] | set[str]]:
    """The object ids an EAS collection state refers to (format: oxsync/eas/state.py, collection.py)."""
    pending = saved.get("pending") or {}
    return {"known": eas_state.IdSet.parse(saved.get("known")).ids,
            "cids": set((saved.get("cids") or {}).values()),
            "pending": set().union(*(eas_state.IdSet.parse(pending.get(n)).ids
                                     for n in ("add", "change")))}


def _wait(what: str, condition: Callable[[], bool], run: Run) -> None:
    deadline = time.monotonic() + PHASE_SECONDS
    while not condition():
        assert not run.problems, run.problems
        assert time.monotonic() < deadline, f"timed out waiting for {what} (acks {dict(run.acks)})"
        time.sleep(0.01)


def _check_store(world: World, calendar: int, contacts: int, folder: str, acked: dict[str, dict[str, str]],
                 extra: dict[str, str]) -> None:
    """Every acknowledged write is stored once; the device's sync state names only stored objects."""
    with world.as_user(world.alice) as session:
        events = Counter(o.uid for o in session.list_objects(calendar))
        cards = session.list_objects(contacts)
        saved = session.get_state(DEVICE, eas_state.collection_key(folder))
    vcards = Counter(o.uid for o in cards if o.first_name != "Eas")
    eas_names = Counter(o.last_name for o in cards if o.first_name == "Eas")
    ids = {str(o.object_id) for o in cards}
    for href, uid in acked["caldav"].items():
        assert events[uid] == 1, f"acknowledged CalDAV PUT {href} is stored {events[uid]} times"
    for href, uid in acked["carddav"].items():
        assert vcards[uid] == 1, f"acknowledged CardDAV PUT {href} is stored {vcards[uid]} times"
    for cid, sid in {**acked["eas"], **extra}.items():
        assert sid in ids, f"acknowledged EAS Add {cid} (ServerId {sid}) is missing"
        assert eas_names[cid] == 1, f"EAS Add {cid} is stored {eas_names[cid]} times"
    assert all(n == 1 for n in events.values()) and all(n == 1 for n in eas_names.values()), "duplicates stored"
    assert saved is not None
    refs = _state_ids(saved)
    assert {str(i) for i in refs["known"]} <= ids, "EAS sync state knows objects that do not exist"
    assert set(refs["cids"]) <= ids, "EAS ClientId map points at objects that do not exist"
    assert {str(i) for i in refs["pending"]} <= ids, "EAS pending window names missing objects"


def _listing(dav: Dav, coll: str) -> set[str]:
    reply = dav.propfind(coll, "<D:getetag/>", depth="1")
    assert reply.status == 207, reply.body[:300]
    return {h for h in reply.hrefs() if h != coll}


def test_kill_9_a_node_during_a_burst_of_writes(backend: str, store, store_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    world: World = build_world(store)
    calendar = world.default_folder(world.alice, Module.CALENDAR)
    contacts = world.default_folder(world.alice, Module.CONTACT)
    first = tmp_path / "first"
    first.mkdir()
    clusters: list[Cluster] = [start_nodes(store_url, 2 if backend == "postgresql" else 1, first)]
    try:
        nodes = clusters[0].nodes
        frontend = Frontend([n.http_port for n in nodes])
        run = Run(frontend, time.monotonic() + 3 * PHASE_SECONDS)
        dav = Dav(nodes[0].http_port, world)
        cal_href, book_href = dav.calendar(), dav.addressbook()
        assert cal_href.rstrip("/").endswith(str(calendar)) and book_href.rstrip("/").endswith(str(contacts))

        phone = EasClient(nodes[0].http_port, "alice", "alice-pw", device_id=DEVICE)
        phone.provision()
        folder = phone.folder_of_type(9)
        assert folder == str(contacts)
        phone.sync(folder, "0")
        device = Device(run, phone, folder)
        device.drain()

        writers = [DavWriter(run, "caldav", cal_href, "ics"), DavWriter(run, "carddav", book_href, "vcf")]
        syncer = DavSyncer(run, [cal_href, book_href])
        for coll in syncer.collections:
            syncer.sync(coll)
        threads = [threading.Thread(target=_guard(run, w.name, w.loop), daemon=True) for w in writers]
        threads += [threading.Thread(target=_guard(run, "eas", device.loop), daemon=True),
                    threading.Thread(target=_guard(run, "davsync", syncer.loop), daemon=True)]
        for thread in threads:
            thread.start()

        # ---- the burst, then SIGKILL while the DAV writers are still sending
        _wait(f"{ACKS_BEFORE_KILL} acknowledged writes", lambda: run.total() >= ACKS_BEFORE_KILL
              and all(run.acks[w] >= MIN_PER_WRITER for w in ("caldav", "carddav", "eas")), run)
        victim = nodes[0]
        device.victim_port = victim.http_port
        device.lose_next.set()
        _wait("the device's Sync whose reply gets lost", device.lost.is_set, run)
        tokens_at_kill = syncer.snapshot()
        os.kill(victim.process.pid, signal.SIGKILL)
        with run.lock:  # acknowledged before the node died (the next ones come from another node)
            acked_at_kill = {w.name: dict(w.acked) for w in writers} | {"eas": dict(device.acked)}
            acks_at_kill = sum(run.acks.values())
        victim.process.wait(10)
        frontend.remove(victim.http_port)
        # what the crash left (on SQLite no node runs now): acknowledged writes and the device's state
        _check_store(world, calendar, contacts, folder, acked_at_kill, extra=device.lost_reply)
        device.killed.set()

        # ---- PostgreSQL: the clients carry on against the surviving node meanwhile
        if backend == "postgresql":
            survivor = nodes[1].http_port
            before = frontend.acked_on[survivor]
            _wait("writes acknowledged by the surviving node", lambda: frontend.acked_on[survivor] >= before + 20, run)

        # ---- a new node on the same store
        second = tmp_path / "restart"
        second.mkdir()
        clusters.append(start_nodes(store_url, 1, second))
        fresh = clusters[-1].nodes[0].http_port
        frontend.add(fresh)
        _wait("writes acknowledged after the restart", lambda: run.total() >= acks_at_kill + ACKS_AFTER_RESTART
              and frontend.acked_on[fresh] >= 5, run)
        run.stop.set()
        for thread in threads:
            thread.join(PHASE_SECONDS)
            assert not thread.is_alive(), "a client did not stop"
        assert not run.problems, run.problems
        print(f"\n[{backend}] acks {dict(run.acks)} by port {dict(frontend.acked_on)}; "
              f"in doubt (re-sent) {dict(run.in_doubt)}; lost EAS reply {device.lost_reply}")

        # ---- 1. every acknowledged write is in the store, exactly once; the device's state is sound
        _check_store(world, calendar, contacts, folder, {w.name: w.acked for w in writers} | {"eas": device.acked},
                     extra={})
        assert device.lost_reply == {c: device.acked[c] for c in device.lost_reply} and len(device.lost_reply) == 2
        with world.as_user(world.alice) as session:
            contact_ids = {str(o.object_id) for o in session.list_objects(contacts)}
            saved = session.get_state(DEVICE, eas_state.collection_key(folder))
        assert saved is not None and saved["key"] == phone.keys[folder], "the device's key is not the server's"

        # ---- 2. ... and through the protocols, on the node that survived the crash or replaced it
        dav = Dav(fresh, world)
        cal_listing, book_listing = _listing(dav, cal_href), _listing(dav, book_href)
        assert set(writers[0].acked) <= cal_listing and set(writers[1].acked) <= book_listing
        for writer in writers:
            for href, uid in writer.acked.items():
                got = dav.request("GET", href)
                assert got.status == 200 and f"UID:{uid}\r\n" in got.text, (href, got.status)

        # ---- 3. the device resumes from its key: every item of the folder exactly once, nothing else
        device.drain()
        duplicates = {sid: n for sid, n in device.held.items() if n > 1}
        assert not duplicates, f"the device received these items more than once: {duplicates}"
        assert set(device.held) == contact_ids, (
            f"device misses {sorted(contact_ids - set(device.held))}, has extra {sorted(set(device.held) - contact_ids)}")
        with world.as_user(world.alice) as session:
            final = session.get_state(DEVICE, eas_state.collection_key(folder))
        assert {str(i) for i in _state_ids(final)["known"]} == contact_ids, "stored state and device disagree"

        # ---- 4. DAV sync-collection from the token held at the kill, and from the last token
        for coll, listing in ((cal_href, cal_listing), (book_href, book_listing)):
            for label, (token, before) in (("kill", tokens_at_kill[coll]), ("last", syncer.snapshot()[coll])):
                _, changes = syncer.delta(coll, token)
                gone = {h for h, etag in changes.items() if etag is None}
                assert not gone, f"{label} token: members reported gone that were never deleted: {gone}"
                assert set(changes) <= listing, f"{label} token: delta names unknown hrefs {set(changes) - listing}"
                assert set(before) | set(changes) == listing, (
                    f"{label} token on {coll}: missing {sorted(listing - set(before) - set(changes))}")
            assert not run.problems, run.problems
    finally:
        for cluster in clusters:
            cluster.stop()


def test_dav_delete_acknowledged_before_kill_is_reported_by_the_next_node(store, store_url: str,  # type: ignore[no-untyped-def]
                                                                          tmp_path: Path) -> None:
    """A DAV client synced, then one of its members was DELETEd (204) on a node that is then killed: the
    client's next sync-collection with its token, on the replacement node, must report that href as 404
    (a consistent delta), not refuse the token and force a full resync of the collection."""
    world = build_world(store)
    (tmp_path / "first").mkdir()
    (tmp_path / "restart").mkdir()
    clusters = [start_nodes(store_url, 1, tmp_path / "first")]
    try:
        dav = Dav(clusters[0].nodes[0].http_port, world)
        cal = dav.calendar()
        for name in ("keep", "drop"):
            assert dav.put(f"{cal}{name}.ics", event(f"del-{name}")).status == 201
        token = dav.report(cal, sync_body(), depth="0").xml.find("D:sync-token", NS).text
        assert dav.request("DELETE", f"{cal}drop.ics").status == 204
        victim = clusters[0].nodes[0].process
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        clusters.append(start_nodes(store_url, 1, tmp_path / "restart"))
        reply = Dav(clusters[-1].nodes[0].http_port, world).report(cal, sync_body(token), depth="0")
        assert reply.status == 207, f"sync-collection after the kill answered {reply.status}: {reply.body[:300]!r}"
        statuses = {r.find("D:href", NS).text: r.find("D:status", NS) for r in reply.xml.findall("D:response", NS)}
        assert set(statuses) == {f"{cal}drop.ics"} and " 404 " in statuses[f"{cal}drop.ics"].text
    finally:
        for cluster in clusters:
            cluster.stop()
