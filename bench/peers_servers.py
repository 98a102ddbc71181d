"""The servers of bench_peers.py: oxsync (SQLite or PostgreSQL), Radicale, Xandikos and SOGo (Debian).

Each `Peer` loads the same data through its own bulk path once (`setup`), then `start`/`stop` per run;
`pids()` names the processes whose peak RSS counts. A peer that cannot be set up raises `Unavailable`
with the reason, and the bench reports the others.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.peers_data import card, card_name, event, event_name
from tests.procstat import proc_stat

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "alice", "alice-pw"
LOGIN_USERS = [(f"u{n:02d}", f"pw-u{n:02d}") for n in range(1, 21)]
SOLO_USER = ("solo", "pw-solo")
"""One more account for the single-user login line (20 clients, same credentials): never logged in before it."""
ACCOUNTS = [(USER, PASSWORD), *LOGIN_USERS, SOLO_USER]
HASH_COST = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}
"""The argon2id cost every peer that can hash with argon2id uses: oxsync's default (OWASP's recommendation)."""


class Unavailable(RuntimeError):
    """This peer cannot run here (the message says why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, procs: list[subprocess.Popen], timeout: float = 90) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise Unavailable(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Unavailable("server did not start listening")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


RETRIES = 5
"""Attempts per request when the connection is closed before an answer: a kept-alive connection the
server closed, or SOGo's watchdog closing a new one while all its workers are busy ("No child available
to handle incoming request", 20 clients logging in against 4 workers); a client retries, and the time
spent retrying counts."""


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int, auth: str | None, timeout: float = 900) -> None:
        self.port, self.auth, self.timeout = port, auth, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if self.auth:
            sent["Authorization"] = self.auth
        for attempt in range(1, RETRIES + 1):
            try:
                self.conn.request(method, path, body=body, headers=sent)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt == RETRIES:
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def put_all(port: int, auth: str | None, items: list[tuple[str, str, str]], workers: int = 8) -> None:
    """PUT (path, body, content type) items over `workers` connections (bulk load of peers without a
    file-level path)."""
    def run(share: list[tuple[str, str, str]]) -> None:
        client = Client(port, auth)
        for path, body, ctype in share:
            status, text = client.request("PUT", path, body.encode(), Content_Type=ctype)
            if status not in (200, 201, 204):
                raise Unavailable(f"bulk PUT {path}: {status} {text[:200]!r}")
        client.close()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, [items[k::workers] for k in range(workers)]))


def settle(holders: list[object]) -> None:
    """Before each server's measured phases: every PostgreSQL cluster of the run (the `cluster` of each
    holder: a peer, or the run's arguments) checkpoints and the kernel writes every dirty page back, so that
    data another server loaded or wrote is not written back while this one is measured. Run before every
    server alike, the first one included."""
    for cluster in {id(c): c for h in holders if (c := getattr(h, "cluster", None)) is not None}.values():
        cluster.checkpoint()
    os.sync()


def database_pids(data: Path | None) -> list[int]:
    """The postmaster of the PostgreSQL cluster in `data` and its children (backends, WAL writer, autovacuum):
    the postmaster's CPU counts its exited children's too, so the sum is the cluster's whole CPU."""
    if data is None:
        return []
    try:
        master = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    children = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and proc_stat(entry).ppid == master:
                children.append(int(entry))
        except OSError:
            continue
    return [master, *children]


class Peer:
    name = ""
    cal = card_path = puts = principal = ""
    auth: str | None = None
    procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
    port = 0
    db_data: Path | None = None
    """The data directory of the PostgreSQL cluster this server alone uses while measured (oxsync-pg's, SOGo's)."""

    def login_auth(self, user: str, password: str) -> str | None:
        return basic(user, password)

    def login_path(self, user: str) -> str:
        raise NotImplementedError

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def db_pids(self) -> list[int]:
        """The processes of the server's database (PostgreSQL's postmaster and backends): its CPU per request
        is counted beside the server's own (bench_peers' PUT lines)."""
        return database_pids(self.db_data)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs = []

    def close(self) -> None:
        """Release what setup made (databases, clusters)."""


# ------------------------------------------------------------------------------------------ oxsync


class Oxsync(Peer):
    def __init__(self, workdir: Path, url: str | None = None, label: str = "oxsync", db_data: Path | None = None) -> None:
        self.name, self.db_data = label, db_data
        self.dir = workdir / label
        self.dir.mkdir()
        self.url = url or f"sqlite:///{self.dir}/oxsync.db"
        self.auth = basic(USER, PASSWORD)

    def _store(self):  # type: ignore[no-untyped-def]
        from oxsync.config import Settings, StoreSettings
        from oxsync.store.api import Store

        return Store(Settings(store=StoreSettings(url=self.url)))

    def setup(self, events: int, cards: int) -> None:
        from bench.peers_objects import card_contacts, event_masters
        from oxsync.model import Module
        from oxsync.store import accounts
        from oxsync.store.settle import settled_after
        from oxsync.texts_ahead import rendering_after

        store = self._store()
        store.create_schema()
        tenant = store.create_tenant("example.com")
        with store.transaction(tenant.id, write=True) as tx:
            accounts.create_user(tx, USER, PASSWORD, first_name="Alice", last_name="Bench")
            for login, password in [*LOGIN_USERS, SOLO_USER]:
                accounts.create_user(tx, login, password, first_name=login, last_name="Bench")
        with store.session(tenant.id, 1) as s:
            folders = {f.folder.module: f.folder.id for f in s.list_folders()
                       if f.folder.default_folder and f.folder.owner == 1}
        cal_id, card_id = folders[Module.CALENDAR], folders[Module.CONTACT]
        batch = 1000  # one transaction and one multi-row INSERT per table per batch (session.create_objects)
        # then the served texts, as a CalDAV PUT leaves its own (oxsync.texts_ahead); then on PostgreSQL VACUUM
        # (ANALYZE) of it all, not autovacuum's during the first measured run (oxsync.store.settle)
        with settled_after(store), rendering_after(store):
            for low in range(0, events, batch):
                with store.session(tenant.id, 1, write=True) as s:
                    s.create_objects(cal_id, event_masters(low, min(low + batch, events), events))
            for low in range(0, cards, batch):
                with store.session(tenant.id, 1, write=True) as s:
                    s.create_objects(card_id, card_contacts(low, min(low + batch, cards)))
        store.dispose()
        self.cal = f"/dav/calendars/{USER}/{cal_id}/"
        self.card_path = f"/dav/addressbooks/{USER}/{card_id}/"
        self.principal = f"/dav/principals/users/{USER}/"
        self.start()
        status, _ = Client(self.port, self.auth).request("MKCALENDAR", f"/dav/calendars/{USER}/puts/")
        self.stop()
        if status != 201:
            raise Unavailable(f"MKCALENDAR answered {status}")
        self.puts = f"/dav/calendars/{USER}/puts/"

    def login_path(self, user: str) -> str:
        return f"/dav/principals/users/{user}/"

    def pids(self) -> list[int]:
        """The server process and the serving processes it started (`[server] processes`)."""
        own = super().pids()
        started: list[int] = []
        for pid in own:
            try:
                started += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                continue
        return own + started

    def start(self) -> int:
        self.port = free_port()
        self.procs = [subprocess.Popen([sys.executable, "-m", "bench.bench_peers", "--serve-oxsync", self.url,
                                        str(self.port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)]
        wait_port(self.port, self.procs)
        self._wait_every_process()
        return self.port

    def _wait_every_process(self, timeout: float = 90) -> None:
        """With `[server] processes` = N, until all N answer and have settled: the first process binds the
        port and then starts its copies, whose start-up (imports, the store, about 1 s of CPU) would
        otherwise be counted as the server CPU of the first reports (bench/README y-sqlite2cost)."""
        wanted = int(os.environ.get(PROCESSES_ENV, "1"))
        if wanted <= 1:
            return
        deadline = time.monotonic() + timeout
        held: list[Client] = []  # kept open: a new connection goes to the process with fewer open ones
        seen: set[str] = set()
        try:
            while len(seen) < wanted and time.monotonic() < deadline:
                client = Client(self.port, None, timeout=30)
                status, body = client.request("GET", "/health")
                held.append(client)
                if status == 200:
                    seen.add(str(json.loads(body).get("process")))
                if len(held) > 4 * wanted:
                    held.pop(0).close()
                    time.sleep(0.1)
        finally:
            for client in held:
                client.close()
        if len(seen) < wanted:
            raise Unavailable(f"only {len(seen)} of {wanted} serving processes answered")
        from bench.bench_peers import cpu_seconds

        last = cpu_seconds(self.pids())
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = cpu_seconds(self.pids())
            if now - last < 0.02:
                return
            last = now


PROCESSES_ENV = "BENCH_OXSYNC_PROCESSES"
"""`bench_peers.py --processes N`: oxsync (SQLite or PostgreSQL) serves with `[server] processes = N`."""


def serve_oxsync(url: str, port: str) -> None:
    from oxsync.config import Settings, StoreSettings, apply_overrides
    from oxsync.dav import install
    from oxsync.server import run_server
    from oxsync.store.api import Store

    store = Store(Settings(store=StoreSettings(url=url)))
    # the bench measures time: the per-request work limit (a guard against hostile requests, which
    # the peers do not have) must not cut a slow run on a loaded machine
    processes = int(os.environ.get(PROCESSES_ENV, "1"))
    settings = apply_overrides(store.settings, {"server": {"http_endpoint": f"tcp:{port}:interface=127.0.0.1",
                                                           "processes": processes},
                                                "limits": {"max_request_work_seconds": 900.0}})
    run_server(settings, store, configure_logs=False, setup=install)


# ------------------------------------------------------------------------------------------ Radicale


class Radicale(Peer):
    name = "radicale"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "radicale"
        self.auth = basic(USER, PASSWORD)
        self.exe = shutil.which("radicale") or str(Path(sys.executable).parent / "radicale")
        if not Path(self.exe).exists():
            raise Unavailable("radicale is not installed (pip install radicale)")

    def setup(self, events: int, cards: int) -> None:
        from argon2 import PasswordHasher

        hasher = PasswordHasher(**HASH_COST)
        (self.dir / "storage").mkdir(parents=True)
        (self.dir / "users").write_text("".join(f"{u}:{hasher.hash(p)}\n" for u, p in ACCOUNTS))
        home = self.dir / "storage" / "collection-root" / USER
        for name, tag in (("cal", "VCALENDAR"), ("card", "VADDRESSBOOK"), ("puts", "VCALENDAR")):
            (home / name).mkdir(parents=True)
            (home / name / ".Radicale.props").write_text(f'{{"tag": "{tag}"}}')
        for i in range(events):
            (home / "cal" / event_name(i)).write_text(event(i, events), newline="")
        for i in range(cards):
            (home / "card" / card_name(i)).write_text(card(i), newline="")
        self.cal, self.card_path, self.puts = f"/{USER}/cal/", f"/{USER}/card/", f"/{USER}/puts/"
        self.principal = f"/{USER}/"

    def login_path(self, user: str) -> str:
        return f"/{user}/"

    def start(self) -> int:
        self.port = free_port()
        (self.dir / "config").write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {self.dir}/users\n"
            # the same argon2id cost as oxsync, and successful logins remembered as long (900 s)
            "htpasswd_encryption = argon2\ncache_logins = true\ncache_successful_logins_expiry = 900\n"
            f"[storage]\nfilesystem_folder = {self.dir}/storage\n"
            "[rights]\ntype = owner_only\n[logging]\nlevel = warning\n")
        self.procs = [subprocess.Popen([self.exe, "--config", str(self.dir / "config")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        wait_port(self.port, self.procs)
        return self.port


# ------------------------------------------------------------------------------------------ Xandikos


class Xandikos(Peer):
    """Xandikos keeps each collection in a git repository; it has no authentication of its own
    (deployments put it behind a proxy), so the login line is not measured for it."""

    name = "xandikos"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "xandikos"
        self.exe = shutil.which("xandikos") or str(Path(sys.executable).parent / "xandikos")
        if not Path(self.exe).exists():
            raise Unavailable("xandikos is not installed (pip install xandikos)")
        if shutil.which("git") is None:
            raise Unavailable("git is needed to bulk-load Xandikos collections")

    def setup(self, events: int, cards: int) -> None:
        self.dir.mkdir()
        self.start(defaults=True)
        client = Client(self.port, None)
        status, _ = client.request("MKCALENDAR", "/user/calendars/puts/")
        self.stop()
        if status != 201:
            raise Unavailable(f"MKCALENDAR answered {status}")
        for rel, items in (("user/calendars/calendar", [(event_name(i), event(i, events)) for i in range(events)]),
                           ("user/contacts/addressbook", [(card_name(i), card(i)) for i in range(cards)])):
            repo = self.dir / rel
            for name, text in items:
                (repo / name).write_text(text, newline="")
            env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                   "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
            subprocess.run(["git", "add", "-A", "."], cwd=repo, check=True, env=env, capture_output=True)
            subprocess.run(["git", "commit", "-q", "-m", "bulk"], cwd=repo, check=True, env=env, capture_output=True)
        self.cal, self.card_path, self.puts = "/user/calendars/calendar/", "/user/contacts/addressbook/", \
            "/user/calendars/puts/"
        self.principal = "/user/"

    def login_auth(self, user: str, password: str) -> str | None:
        return None

    def login_path(self, user: str) -> str:
        return ""  # not measured: no authentication

    def start(self, defaults: bool = False) -> int:
        self.port = free_port()
        args = [self.exe, "serve", "-d", str(self.dir), "-l", "127.0.0.1", "-p", str(self.port),
                "--state-dir", str(self.dir / ".state"), "--no-detect-systemd"]
        if defaults:
            args.append("--defaults")
        self.procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        wait_port(self.port, self.procs)
        return self.port
