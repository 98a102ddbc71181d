"""ActiveSync mail against a real Dovecot: initial sync of a 10,000-message Inbox, deltas at 10k and 100k,
delivery (LMTP) -> Ping latency with many parked Pings.

Usage: python bench/bench_eas_mail.py [messages [big [pings]]]   (default 10000 100000 200)

The server runs in this process (reactor thread) so that the IMAP commands it issues can be counted
(`ImapPool.commands`); RSS is this whole process (server + the scripted client). Mailboxes are filled by
writing Maildir files (realistic sizes, 1 in 5 with an attachment) before Dovecot first opens them; new
mail during the runs is delivered by LMTP.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from oxsync.config import LimitSettings, Settings, StoreSettings, apply_overrides  # noqa: E402
from oxsync.eas import install, state  # noqa: E402
from oxsync.eas.wbxml import E, encode  # noqa: E402
from oxsync.mail.dovecot import Listeners  # noqa: E402
from oxsync.mail.runner import DovecotProcess, free_port, hand_to  # noqa: E402
from oxsync.store import accounts  # noqa: E402
from oxsync.store.api import Store  # noqa: E402
from tests.eas_client import EasClient, collection  # noqa: E402

WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore"]


def message(i: int, rng: random.Random, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"Sender {i % 97} <s{i % 97}@example.net>", to
    msg["Subject"] = f"Message {i}: " + " ".join(rng.choices(WORDS, k=5))
    msg["Date"], msg["Message-ID"] = formatdate(time.time() - i * 60), make_msgid(domain="bench.example")
    msg.set_content("\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(rng.randint(5, 60))))
    if i % 5 == 0:
        msg.add_attachment(rng.randbytes(rng.randint(10_000, 80_000)), maintype="application", subtype="pdf",
                           filename=f"doc{i}.pdf")
    return msg.as_bytes()


def fill_maildir(home: Path, count: int, to: str, seed: int = 1) -> None:
    """`count` messages straight into Maildir/cur, arrival spread over the last `count` minutes."""
    cur = home / "Maildir" / "cur"
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    templates = [message(t, rng, to) for t in range(100)]  # 100 distinct bodies, subjects made unique below
    now = time.time()
    for i in range(count):
        path = cur / f"{int(now) - i * 60}.M{i}P{os.getpid()}.bench:2,{'S' if i % 3 else ''}"
        t = i % 100
        path.write_bytes(templates[t].replace(f"Subject: Message {t}:".encode(), f"Subject: Message {i}:".encode(), 1))
        os.utime(path, (now - i * 60, now - i * 60))


def start_reactor():  # type: ignore[no-untyped-def]
    from twisted.internet import reactor

    threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True).start()
    while not reactor.running:
        time.sleep(0.01)
    return reactor


def prime(store: Store, tenant: int, user: int, devices: list[str], collection_id: str, uidvalidity: int,
          uidnext: int, modseq: int, known: str) -> None:
    """Device states as if each device had synced the whole folder (bench_eas_ping's approach)."""
    with store.session(tenant, user, write=True) as session:
        for device in devices:
            session.put_state(device, "", {"type": "iPhone", "policy_key": "4242", "policy_state": "provisioned",
                                           "last_seen": int(time.time()), "ua": "bench", "version": "14.1"})
            session.put_state(device, state.collection_key(collection_id), {
                "key": "{bench}1", "prev_key": "{bench}0", "answer": None, "uidvalidity": uidvalidity,
                "modseq": modseq, "uidnext": uidnext, "known": known, "pending": "", "filter": 0, "echo": {},
                "skipped": {}})
            session.put_state(device, state.LAST_PING, {"heartbeat": 900, "folders": [collection_id]})


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    big = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    pings = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    work = Path(tempfile.mkdtemp(prefix="oxsync-mailbench-"))
    work.chmod(0o755)
    url = f"sqlite:///{work}/db/bench.db"
    # every simulated phone connects from 127.0.0.1: lift the per-address connection cap above the Pings
    settings = Settings(store=StoreSettings(url=url, thread_pool_size=8),
                        limits=LimitSettings(max_connections_per_address=pings + 64))
    store = Store(settings)
    store.create_schema()
    tenant = store.create_tenant("bench.example")
    with store.transaction(tenant.id, write=True) as tx:
        small_user = accounts.create_user(tx, "bench", "bench-pw")
        big_user = accounts.create_user(tx, "bigbench", "bench-pw")
    if os.geteuid() == 0:
        hand_to(work / "db", "dovecot")
    dovecot = DovecotProcess(work / "dovecot", url, Listeners(free_port(), free_port(), free_port()), "bench-master",
                             extra="mail_max_userip_connections = 500\n")
    started = time.perf_counter()
    for user, count, seed in ((small_user, messages, 1), (big_user, big, 2)):
        fill_maildir(dovecot.mail_root / str(tenant.id) / str(user.id), count, user.email, seed)
    print(f"mailboxes written: {messages} + {big} messages in {time.perf_counter() - started:.0f} s")
    dovecot.start()
    if os.geteuid() == 0:
        hand_to(dovecot.mail_root, "dovecot")
    reactor = start_reactor()
    from twisted.internet.threads import blockingCallFromThread

    from oxsync.server import make_service

    live = apply_overrides(settings, {"server": {"http_endpoint": "tcp:0:interface=127.0.0.1"},
                                      "mail": dovecot.mail_settings(),
                                      "eas": {"require_provisioning": False, "min_heartbeat_seconds": 1}})
    service = make_service(live, store, reactor)
    install(service)

    def go():  # type: ignore[no-untyped-def]
        service.startService()
        return service.when_listening()

    port = blockingCallFromThread(reactor, go)
    pool = service.eas.mail.pool
    process = psutil.Process()
    try:
        # ---------------------------------------------------------------- initial sync, 10k
        phone = EasClient(port, small_user.email, "bench-pw", device_id="benchphone")
        inbox = phone.folder_of_type(2)
        warm = EasClient(port, small_user.email, "bench-pw", device_id="warmup")
        warm.sync(inbox, "0")
        warm.sync(inbox, window=1)  # Dovecot indexes the new Maildir here (not part of the figure)
        rss_before = process.memory_info().rss
        phone.sync(inbox, "0")
        t0, sent, commands0 = time.perf_counter(), 0, pool.commands
        while True:
            reply = phone.sync(inbox, window=100, options=[E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "2"),
                                                              E("AirSyncBase:TruncationSize", "20000"))])
            coll = collection(reply)
            commands = coll.find("AirSync:Commands")
            sent += len(commands.children) if commands is not None else 0
            if coll.find("AirSync:MoreAvailable") is None:
                break
        took = time.perf_counter() - t0
        print(f"initial sync of a {messages}-message Inbox (window 100, HTML body <= 20 kB): {sent} items in "
              f"{took:.1f} s = {sent / took:.0f} items/s; {pool.commands - commands0} IMAP commands; "
              f"process RSS {rss_before / 2**20:.0f} -> {process.memory_info().rss / 2**20:.0f} MiB")
        # ---------------------------------------------------------------- deltas at 10k and 100k
        big_phone = EasClient(port, big_user.email, "bench-pw", device_id="bigphone")
        big_inbox = big_phone.folder_of_type(2)
        from oxsync.mail import gateway

        info = pool.call(big_user.email, lambda c: gateway.examine(c, "INBOX"))
        prime(store, tenant.id, big_user.id, ["bigphone"], big_inbox, info.uidvalidity, info.uidnext, info.modseq,
              f"1-{info.uidnext - 1}")
        big_phone.keys[big_inbox] = "{bench}1"
        for label, client, address in ((f"{messages}", phone, small_user.email), (f"{big}", big_phone, big_user.email)):
            folder = client.folder_of_type(2)
            other = dovecot_imap(dovecot, address)
            other.select_folder("INBOX")
            uids = other.search(["ALL"])
            other.add_flags(random.Random(3).sample(uids, 10), [b"\\Flagged"])
            other.logout()
            with smtplib.LMTP("127.0.0.1", dovecot.listeners.lmtp) as lmtp:
                for i in range(10):
                    lmtp.sendmail("x@example.net", [address], message(900_000 + i, random.Random(i), address))
            before, t0 = pool.commands, time.perf_counter()
            reply = client.sync(folder, window=100)
            took = time.perf_counter() - t0
            coll = collection(reply)
            cmds = coll.find("AirSync:Commands")
            kinds = [c.tag.split(":")[1] for c in cmds.children] if cmds is not None else []
            print(f"delta in a {label}-message Inbox after 10 flag changes + 10 new mails: {took * 1000:.0f} ms, "
                  f"{pool.commands - before} IMAP commands ({kinds.count('Change')} Change, {kinds.count('Add')} Add)")
            before, t0 = pool.commands, time.perf_counter()
            client.sync(folder)
            print(f"  nothing changed since: {(time.perf_counter() - t0) * 1000:.0f} ms, "
                  f"{pool.commands - before} IMAP command(s)")
        # ---------------------------------------------------------------- Ping latency
        info = pool.call(small_user.email, lambda c: gateway.examine(c, "INBOX"))
        devices = [f"pinger{i}" for i in range(pings)]
        prime(store, tenant.id, small_user.id, devices, inbox, info.uidvalidity, info.uidnext, info.modseq, "")
        asyncio.run(ping_scenario(port, small_user.email, inbox, devices, dovecot, pool, process, service))
    finally:
        blockingCallFromThread(reactor, service.stopService)
        dovecot.stop()
        store.dispose()


def dovecot_imap(dovecot: DovecotProcess, address: str):  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=dovecot.listeners.imap, ssl=False, timeout=60)
    client.login(f"{address}*oxsync-master", dovecot.master_password)
    return client


async def one_ping(port: int, login: str, device: str, body: bytes) -> float | None:
    auth = "Basic " + base64.b64encode(f"{login}:bench-pw".encode()).decode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"POST /Microsoft-Server-ActiveSync?Cmd=Ping&User={login}&DeviceId={device}&DeviceType=iPhone "
                      f"HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nMS-ASProtocolVersion: 14.1\r\n"
                      f"Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                     + body)
        await writer.drain()
        await reader.readline()
        answered = time.perf_counter()
        writer.close()
        return answered
    except OSError:
        return None


async def ping_scenario(port: int, login: str, inbox: str, devices: list[str], dovecot: DovecotProcess, pool,  # type: ignore[no-untyped-def]
                        process: psutil.Process, service) -> None:  # type: ignore[no-untyped-def]
    body = encode(E("Ping:Ping", E("Ping:HeartbeatInterval", "900"),
                    E("Ping:Folders", E("Ping:Folder", E("Ping:Id", inbox), E("Ping:Class", "Email")))))
    rss = process.memory_info().rss
    tasks = [asyncio.create_task(one_ping(port, login, d, body)) for d in devices]
    for _ in range(600):
        await asyncio.sleep(0.1)
        if len(service.eas.parked) >= len(devices):
            break
    await asyncio.sleep(2)
    parked, watcher = len(service.eas.parked), service.eas.mail_watcher
    busy = pool.open_connections() - sum(len(c) for c in pool.idle.values())
    print(f"{parked} Pings parked on the Inbox: process RSS +{(process.memory_info().rss - rss) / max(parked, 1) / 1024:.1f} "
          f"KiB per Ping; IMAP connections open {pool.open_connections()} (held by Pings: {busy}); "
          f"watcher: {len(watcher.watched)} folder(s) polled per round")
    rounds, statuses = watcher.rounds, watcher.status_commands
    t0 = time.perf_counter()
    await asyncio.to_thread(lambda: smtplib.LMTP("127.0.0.1", dovecot.listeners.lmtp).sendmail(
        "x@example.net", [login], b"Subject: ping me\r\n\r\nhello\r\n"))
    answered = [t for t in await asyncio.gather(*tasks) if t is not None]
    latencies = sorted((t - t0) * 1000 for t in answered)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"delivery (LMTP) -> Ping answer, {len(latencies)} Pings: p50 {statistics.median(latencies):.0f} ms, "
          f"p99 {p99:.0f} ms (watcher polls every 1 s; {watcher.rounds - rounds} rounds, "
          f"{watcher.status_commands - statuses} STATUS commands meanwhile)")


if __name__ == "__main__":
    main()
