"""The ActiveSync workloads of bench_eas_peers.py, the same WBXML client (tests/eas_client.py) on every server.

Each function takes a started server (`EasServer`: port, path prefix, process ids to measure) and returns
figures; nothing here knows which server it talks to.
"""

from __future__ import annotations

import base64
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil

from bench.peers_data import card, card_name
from bench.peers_servers import Client, Unavailable, basic
from oxsync.eas.wbxml import E, decode, encode
from tests.eas_client import EasClient, collection, items

WINDOW = 100


@dataclass
class EasServer:
    """What the workloads need to know about a running server."""

    port: int
    prefix: str
    """Before /Microsoft-Server-ActiveSync ("" for oxsync, "/SOGo" for SOGo)."""
    provision: bool
    """oxsync answers 449 until a device is provisioned; SOGo enforces no policy by default."""
    pids: Callable[[], list[int]]
    """Processes whose CPU counts (for SOGo: sogod and its PostgreSQL)."""
    rss_pids: Callable[[], list[int]]
    """Processes whose memory counts (the server processes only)."""
    book: Callable[[str], str]
    """CardDAV address book path of a user."""
    devices: dict[str, EasClient] = field(default_factory=dict)

    def device(self, user: str, password: str, device_id: str) -> EasClient:
        phone = EasClient(self.port, user, password, device_id=device_id, version="14.1", prefix=self.prefix)
        if self.provision:
            phone.provision()
        return phone


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def folder_ids(phone: EasClient) -> dict[int, str]:
    """FolderSync 0: the first folder of each type (8 calendar, 9 contacts)."""
    _, folders = phone.folder_sync("0")
    found: dict[int, str] = {}
    for server_id, info in folders.items():
        found.setdefault(int(info["type"]), server_id)
    return found


def initial_sync(server: EasServer, phone: EasClient, folder: str) -> tuple[int, float, float]:
    """Sync 0, then windows of 100 until MoreAvailable disappears: (items, seconds, server CPU seconds)."""
    phone.sync(folder, "0")
    pids = server.pids()
    cpu0, total = cpu_seconds(pids), 0
    started = time.perf_counter()
    while True:
        reply = phone.sync(folder, window=WINDOW)
        if reply.status != 200:
            raise Unavailable(f"Sync answered HTTP {reply.status}: {reply.raw[:200]!r}")
        total += len(items(reply))
        if collection(reply).find("AirSync:MoreAvailable") is None:
            break
    return total, time.perf_counter() - started, cpu_seconds(pids) - cpu0


def delta_sync(server: EasServer, phone: EasClient, folder: str, auth: str, book: str, run: int,
               cards: int) -> tuple[int, float, float]:
    """10 vCards changed over CardDAV, then one Sync: (Changes answered, seconds, server CPU seconds)."""
    client = Client(server.port, auth)
    for k in range(10):
        i = (k * 487 + run * 13) % cards
        status, text = client.request("PUT", book + card_name(i), card(i, f"Changed in run {run}").encode(),
                                      Content_Type="text/vcard; charset=utf-8")
        if status not in (200, 201, 204):
            raise Unavailable(f"PUT {book + card_name(i)}: HTTP {status} {text[:200]!r}")
    client.close()
    pids = server.pids()
    cpu0 = cpu_seconds(pids)
    started = time.perf_counter()
    reply = phone.sync(folder, window=WINDOW)
    seconds = time.perf_counter() - started
    changed = len(items(reply, "Change")) if reply.body is not None else 0  # an empty 200: nothing seen
    return changed, seconds, cpu_seconds(pids) - cpu0


# ------------------------------------------------------------------------------------------ Pings


def ping_request(server: EasServer, phone: EasClient, folder: str, heartbeat: int) -> bytes:
    body = encode(E("Ping:Ping", E("Ping:HeartbeatInterval", str(heartbeat)),
                    E("Ping:Folders", E("Ping:Folder", E("Ping:Id", folder), E("Ping:Class", "Contacts")))))
    auth = base64.b64encode(f"{phone.user}:{phone.password}".encode()).decode()
    policy = f"X-MS-PolicyKey: {phone.policy_key}\r\n" if phone.policy_key else ""
    return (f"POST {server.prefix}/Microsoft-Server-ActiveSync?Cmd=Ping&User={phone.user}&DeviceId={phone.device_id}"
            f"&DeviceType=iPhone HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
            f"MS-ASProtocolVersion: 14.1\r\n{policy}Content-Type: application/vnd.ms-sync.wbxml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def settle(pids: list[int], seconds: float = 90) -> None:
    """Until the server processes stop using CPU (every Ping parked), at most `seconds`."""
    deadline = time.monotonic() + seconds
    last = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(pids)
        if now - last < 0.05:
            return
        last = now


def put_latency(server: EasServer, auth: str, book: str, index: int) -> float:
    """Seconds for one CardDAV PUT of a new vCard (on a connection opened beforehand)."""
    client = Client(server.port, auth)
    client.request("OPTIONS", book)
    started = time.perf_counter()
    status, text = client.request("PUT", book + card_name(index), card(index).encode(),
                                  Content_Type="text/vcard; charset=utf-8")
    seconds = time.perf_counter() - started
    client.close()
    if status not in (200, 201, 204):
        raise Unavailable(f"PUT {book + card_name(index)}: HTTP {status} {text[:200]!r}")
    return seconds


def parked_put(server: EasServer, user: str, password: str, count: int, run: int,
               heartbeat: int = 600) -> dict[str, float]:
    """`count` devices of `user` park a Ping on the user's contacts; one CardDAV PUT into that address
    book wakes them: the PUT's latency, the Ping answers (how many said "changed", p50/max after the PUT
    was sent), server RSS before/with the Pings parked. Devices are kept across runs (one Sync each per
    run brings them up to date before they Ping again)."""
    book = server.book(user)
    auth = basic(user, password)
    serial = 100_000 + 1000 * run + count % 1000
    put_latency(server, auth, book, serial + 1)  # warm: the first write after a start loads code and caches
    out: dict[str, float] = {"put_idle_s": statistics.median(
        put_latency(server, auth, book, serial + k) for k in range(2, 5))}

    def ready(n: int) -> tuple[EasClient, str]:
        key = f"{user}-{n}"
        phone = server.devices.get(key)
        if phone is None:
            phone = server.device(user, password, f"ping{count}dev{n:05d}")  # sets of N must not share devices
            folders = folder_ids(phone)
            if 9 not in folders:  # seen once from SOGo with 200 new devices: the phase is not measured
                raise Unavailable(f"FolderSync of device ping{count}dev{n:05d} listed no contacts folder")
            contacts = folders[9]
            phone.sync(contacts, "0")
            server.devices[key] = phone
        phone.port = server.port  # kept from an earlier run: the server restarted on another port
        contacts = next(k for k in phone.keys if k != "hierarchy")
        while True:
            reply = phone.sync(contacts, window=WINDOW)
            if reply.status != 200 or reply.body is None or \
                    collection(reply).find("AirSync:MoreAvailable") is None:
                return phone, contacts
    with ThreadPoolExecutor(8) as pool:
        phones = list(pool.map(ready, range(count)))
    rss0 = rss_bytes(server.rss_pids())
    socks: list[socket.socket] = []
    for n, (phone, contacts) in enumerate(phones):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(ping_request(server, phone, contacts, heartbeat))
        socks.append(sock)
        if n % 50 == 49:
            time.sleep(0.05)
    settle(server.pids())
    time.sleep(3)
    out["rss_parked_mb"] = rss_bytes(server.rss_pids()) / 2**20
    out["rss_per_ping_kb"] = (out["rss_parked_mb"] * 2**20 - rss0) / max(1, count) / 1024
    early = _answered_already(socks)
    sent = time.perf_counter()
    out["put_parked_s"] = put_latency(server, auth, book, serial + 500_000)
    latencies, changed = _collect(socks, sent, timeout=120)
    out["pings_changed"] = changed
    out["pings_answered_early"] = early
    out["wake_p50_s"] = statistics.median(latencies) if latencies else float("nan")
    out["wake_max_s"] = max(latencies) if latencies else float("nan")
    return out


def _answered_already(socks: list[socket.socket]) -> int:
    """Pings that answered before the PUT (not parked: the server would not hold them)."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sel.register(sock, selectors.EVENT_READ)
    ready = len(sel.select(timeout=0))
    sel.close()
    return ready


def _collect(socks: list[socket.socket], sent: float, timeout: float) -> tuple[list[float], int]:
    """Read every Ping answer: seconds from the PUT sent to the answer's first bytes, and how many
    answered Status 2 (changes)."""
    sel = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    first: dict[socket.socket, float] = {}
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
    deadline = time.monotonic() + timeout
    open_count = len(socks)
    while open_count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ConnectionError):
                data = b""
            first.setdefault(sock, time.perf_counter())
            buffers[sock] += data
            if not data or _complete(buffers[sock]):
                sel.unregister(sock)
                sock.close()
                open_count -= 1
    for sock in socks:
        if sock.fileno() >= 0:
            sel.unregister(sock)
            sock.close()
    sel.close()
    changed = sum(1 for raw in buffers.values() if _ping_status(raw) == "2")
    return [t - sent for t in first.values()], changed


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _ping_status(raw: bytes) -> str | None:
    _, _, body = raw.partition(b"\r\n\r\n")
    try:
        return decode(body).findtext("Ping:Status") if body else None
    except Exception:
        return None


# ------------------------------------------------------------------------------------------ logins


def arrivals_rss_growth(pids: list[int], first: Callable[[int], int], count: int) -> tuple[list[int], float]:
    """Run `first(0)` .. `first(count - 1)` at once (each on a thread of its own; a barrier inside `first`
    is the caller's) while sampling the summed RSS of `pids` every 5 ms: (their statuses, the peak
    growth in MiB over the RSS before they started)."""
    base = rss_bytes(pids)
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes(pids))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(count) as pool:
            statuses = list(pool.map(first, range(count)))
        time.sleep(0.3)
    finally:
        stop.set()
        sampler.join()
    return statuses, (peak[0] - base) / 2**20


def login_rss(server: EasServer, logins: list[tuple[str, str]], tag: str) -> float:
    """Peak growth of the server's RSS (MiB) while 8 devices send their first request at once (a
    Provision: the server checks the credentials it has not seen since it started)."""
    barrier = threading.Barrier(len(logins))

    def first_request(n: int) -> int:
        user, password = logins[n]
        phone = EasClient(server.port, user, password, device_id=f"login{tag}{n}", prefix=server.prefix)
        barrier.wait(30)
        return phone.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
            "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"))))).status

    statuses, growth = arrivals_rss_growth(server.rss_pids(), first_request, len(logins))
    if any(s != 200 for s in statuses):
        raise Unavailable(f"login Provision answered {statuses}")
    return growth
