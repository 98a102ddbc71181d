"""SOGo from Debian (packages sogo, sogo-activesync, memcached) as a peer of bench_peers.py.

SOGo needs PostgreSQL (a throwaway cluster as tests/pgcluster.py builds), memcached and an SQL user
source. Its settings are passed as sogod arguments (GNUstep's argument domain outranks
/etc/sogo/sogo.conf), so the bench never writes sogo.conf and several benches can run SOGo at once.
sogod runs as the `sogo` user; it ignores SIGTERM, SIGINT stops it. The user's folders are made by one
PROPFIND each; a sample of the items (`sample`) is PUT through SOGo, and the rest is written straight
into SOGo's tables by `peers_sogo_load` (PUT runs at 3-20 items/s here) once `verify_bulk` found the
sample's rows identical, column by column, to what the bulk load computes; otherwise everything is PUT.

ActiveSync (bench_eas_peers.py) additionally needs `SOGoIMAPServer` to answer logins (SOGo logs in to
IMAP with the user's password): `imap_port` points it at a throwaway Dovecot (bench/peers_dovecot.py);
`extra_conf` adds settings (Ping intervals) and `workers` sets WOWorkersCount per start (each parked
Ping holds one worker process).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.peers_data import card, card_name, event, event_name
from bench.peers_servers import (
    ACCOUNTS,
    PASSWORD,
    USER,
    Client,
    Peer,
    Unavailable,
    basic,
    database_pids,
    free_port,
    put_all,
    wait_port,
)
from bench.peers_sogo_load import (
    APPOINTMENT_COLUMNS,
    CONTACT_COLUMNS,
    appointment_row,
    card_text,
    contact_row,
    event_text,
    load,
)

SOGOD = "/usr/sbin/sogod"
WORKERS = 4


SETTLED = ["SET synchronous_commit = on", "ANALYZE", "VACUUM"]
"""The end of SOGo's load, as of oxsync's (oxsync.store.settle: analyzed, then vacuumed once the load's
commits are flushed): autovacuum's pass over the freshly loaded tables does not come while a server is
measured (the first one measured after SOGo's load, in the first run), and SOGo is measured settled too."""


class Sogo(Peer):
    name = "sogo"

    def __init__(self, workdir: Path, imap_port: int = 1, extra_conf: dict[str, str] | None = None) -> None:
        for needed in (SOGOD, shutil.which("memcached") or "/usr/bin/memcached"):
            if not Path(needed).exists():
                raise Unavailable(f"{needed} missing: apt-get install sogo sogo-activesync memcached")
        try:
            pwd.getpwnam("sogo")
        except KeyError as exc:
            raise Unavailable("no `sogo` system user (the Debian package creates it)") from exc
        if os.geteuid() != 0:
            raise Unavailable("starting sogod as the sogo user needs root")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-sogo-"))  # workdir is 0700 root: sogod could not enter it
        shutil.chown(self.dir, "sogo", "sogo")
        self.auth = basic(USER, PASSWORD)
        self.cluster = None
        self.memcached: subprocess.Popen | None = None  # type: ignore[type-arg]
        self.imap_port, self.extra_conf, self.workers = imap_port, extra_conf or {}, WORKERS
        self.settings: dict[str, str] = {}
        self.max_workers = WORKERS
        """The most workers any start will ask for (PostgreSQL's max_connections follows)."""

    def _sql(self, statements: list[str]) -> None:
        import psycopg

        assert self.cluster is not None
        with psycopg.connect(f"host=127.0.0.1 port={self.cluster.port} user=postgres dbname=sogo",
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def setup(self, events: int, cards: int) -> None:
        from tests.pgcluster import PgCluster

        self.cluster = PgCluster()
        self.cluster.max_connections = max(200, 5 * self.max_workers + 100)  # each sogod worker has its own
        self.cluster.start()
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.cluster.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE sogo")
        users = ACCOUNTS
        self._sql(["CREATE TABLE sogo_users (c_uid varchar(64) PRIMARY KEY, c_name varchar(64), "
                   "c_password varchar(128), c_cn varchar(128), mail varchar(128))"] +
                  [f"INSERT INTO sogo_users VALUES ('{u}', '{u}', '{p}', '{u} Bench', '{u}@example.com')"
                   for u, p in users])
        mport = free_port()
        self.memcached = subprocess.Popen(["memcached", "-u", "memcache" if _has_user("memcache") else "nobody",
                                           "-l", "127.0.0.1", "-p", str(mport), "-U", "0", "-m", "64"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db = f"postgresql://postgres:postgres@127.0.0.1:{self.cluster.port}/sogo"
        self.settings = {
            "SOGoProfileURL": f"{db}/sogo_user_profile", "OCSFolderInfoURL": f"{db}/sogo_folder_info",
            "OCSSessionsFolderURL": f"{db}/sogo_sessions_folder", "OCSEMailAlarmsFolderURL": f"{db}/sogo_alarms_folder",
            "OCSStoreURL": f"{db}/sogo_store", "OCSAclURL": f"{db}/sogo_acl", "OCSCacheFolderURL": f"{db}/sogo_cache_folder",
            "SOGoMemcachedHost": f"127.0.0.1:{mport}", "SOGoIMAPServer": f"imap://127.0.0.1:{self.imap_port}",
            "SOGoMailDomain": "example.com", "SOGoTimeZone": "Europe/Paris", "SOGoLanguage": "English",
            "SOGoMailingMechanism": "smtp", "SOGoSMTPServer": "smtp://127.0.0.1:1",
            "SOGoAppointmentSendEMailNotifications": "NO", "SOGoEnableEMailAlarms": "NO", **self.extra_conf,
            "SOGoUserSources": '({ type = sql; id = users; viewURL = "' + db + '/sogo_users"; '
                               "canAuthenticate = YES; isAddressBook = NO; userPasswordAlgorithm = plain; })",
        }
        self.start()
        client = Client(self.port, self.auth)
        home = f"/SOGo/dav/{USER}/"
        for path in (home, home + "Calendar/personal/", home + "Contacts/personal/"):
            status, body = client.request("PROPFIND", path, b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:">'
                                          b"<D:prop><D:resourcetype/></D:prop></D:propfind>", Depth="0",
                                          Content_Type="application/xml")
            if status != 207:
                raise Unavailable(f"PROPFIND {path}: HTTP {status} {body[:200]!r} (see {self.dir}/sogo.log)")
        status, body = client.request("MKCALENDAR", home + "Calendar/puts/")
        if status not in (201, 405):
            raise Unavailable(f"MKCALENDAR: HTTP {status} {body[:200]!r}")
        client.close()
        self.cal, self.card_path = home + "Calendar/personal/", home + "Contacts/personal/"
        self.puts, self.principal = home + "Calendar/puts/", home
        cal_sample, card_sample = sample(events), sample(cards)
        items = [(self.cal + event_name(i), event(i, events), "text/calendar; charset=utf-8") for i in cal_sample]
        items += [(self.card_path + card_name(i), card(i), "text/vcard; charset=utf-8") for i in card_sample]
        put_all(self.port, self.auth, items)
        self.stop()
        rest = {"cal": [(event_name(i), event(i, events)) for i in range(events) if i not in cal_sample],
                "card": [(card_name(i), card(i)) for i in range(cards) if i not in card_sample]}
        mismatches = self.verify_bulk({"cal": [(event_name(i), event(i, events)) for i in cal_sample],
                                       "card": [(card_name(i), card(i)) for i in card_sample]})
        if mismatches:
            print(f"sogo: bulk rows differ from PUT rows ({len(mismatches)}), loading by PUT instead: "
                  + "; ".join(mismatches[:5]), flush=True)
            self.start()
            put_all(self.port, self.auth, [(self.cal + n, t, "text/calendar; charset=utf-8") for n, t in rest["cal"]] +
                    [(self.card_path + n, t, "text/vcard; charset=utf-8") for n, t in rest["card"]])
            self.stop()
            self._sql(SETTLED)
            return
        with self._connect() as conn:
            for kind, folder in (("cal", "/Users/alice/Calendar/personal"), ("card", "/Users/alice/Contacts/personal")):
                load(conn, self._folder_id(conn, folder), kind, rest[kind])
        self._sql(SETTLED)
        print(f"sogo: {len(cal_sample) + len(card_sample)} items PUT, their rows identical to the bulk rows in every "
              f"column; {len(rest['cal']) + len(rest['card'])} items bulk-loaded", flush=True)

    def _connect(self):  # type: ignore[no-untyped-def]
        import psycopg

        assert self.cluster is not None
        return psycopg.connect(f"host=127.0.0.1 port={self.cluster.port} user=postgres dbname=sogo")

    @staticmethod
    def _folder_id(conn, path: str) -> int:  # type: ignore[no-untyped-def]
        return int(conn.execute("SELECT c_folder_id FROM sogo_folder_info WHERE c_path = %s", (path,)).fetchone()[0])

    def verify_bulk(self, sample: dict[str, list[tuple[str, str]]]) -> list[str]:
        """Compare the rows SOGo wrote for the sample's PUTs with what `peers_sogo_load` computes for the
        same items, column by column (creation and modification times aside): the differences."""
        found: list[str] = []
        with self._connect() as conn:
            for kind, folder, quick, columns in (
                    ("cal", "/Users/alice/Calendar/personal", "sogo_quick_appointment", APPOINTMENT_COLUMNS),
                    ("card", "/Users/alice/Contacts/personal", "sogo_quick_contact", CONTACT_COLUMNS)):
                folder_id = self._folder_id(conn, folder)
                for name, text in sample[kind]:
                    stored = conn.execute("SELECT c_content, c_version, c_deleted, c_creationdate FROM sogo_store "
                                          "WHERE c_folder_id = %s AND c_name = %s", (folder_id, name)).fetchone()
                    cur = conn.execute(f"SELECT {', '.join(columns)} FROM {quick} "
                                       "WHERE c_folder_id = %s AND c_name = %s", (folder_id, name))
                    row = cur.fetchone()
                    if stored is None or row is None:
                        found.append(f"{name}: no row after PUT")
                        continue
                    body = event_text(text) if kind == "cal" else card_text(text)
                    if (stored[0], stored[1], stored[2]) != (body, 0, None):
                        found.append(f"{name}: c_content/c_version/c_deleted {stored[:3]!r} != {(body, 0, None)!r}")
                    mine = (appointment_row(folder_id, name, text, stored[3]) if kind == "cal" else
                            contact_row(folder_id, name, text))
                    found += [f"{name}.{c}: SOGo {v!r}, bulk {mine[c]!r}" for c, v in zip(columns, row, strict=True)
                              if mine[c] != v]
        self.verified = sum(len(v) for v in sample.values())
        return found

    def login_path(self, user: str) -> str:
        return f"/SOGo/dav/{user}/"

    def start(self) -> int:
        self.port = free_port()
        log = self.dir / "sogo.log"
        self.procs = [subprocess.Popen(
            [SOGOD, "-WOPort", f"127.0.0.1:{self.port}", "-WONoDetach", "YES", "-WOWorkersCount", str(self.workers),
             "-WOLogFile", str(log), "-WOPidFile", str(self.dir / "sogo.pid"),
             *(part for key, value in self.settings.items() for part in (f"-{key}", value))],
            user="sogo", group="sogo", cwd=self.dir, env={"HOME": "/var/lib/sogo", "PATH": os.environ["PATH"]},
            stdout=subprocess.DEVNULL, stderr=(self.dir / "sogod.err").open("ab"))]
        try:
            wait_port(self.port, self.procs, timeout=60)
        except Unavailable as exc:
            tail = (self.dir / "sogod.err").read_text(errors="replace")[-600:]
            raise Unavailable(f"sogod: {exc}: {tail}") from exc
        time.sleep(1)  # the workers fork after the listener is up
        return self.port

    def pids(self) -> list[int]:
        import psutil

        found: list[int] = []
        for proc in self.procs:
            try:
                parent = psutil.Process(proc.pid)
                found += [parent.pid, *(c.pid for c in parent.children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return found

    def db_pids(self) -> list[int]:
        """SOGo's PostgreSQL cluster (postmaster and the workers' backends) and its memcached."""
        cache = [self.memcached.pid] if self.memcached is not None and self.memcached.poll() is None else []
        return database_pids(self.cluster.data if self.cluster is not None else None) + cache

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        super().stop()

    def close(self) -> None:
        if self.memcached is not None and self.memcached.poll() is None:
            self.memcached.terminate()
            self.memcached.wait(10)
        if self.cluster is not None:
            self.cluster.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def sample(total: int) -> set[int]:
    """The items PUT through SOGo to check the bulk rows: the first 21 (both kinds of series), about 50
    spread over the year, and a series every ~1/20 of the year (some cross a DST change)."""
    series = max(20, total // 20 // 20 * 20)
    return set(range(min(total, 21))) | set(range(0, total, total // 50 + 1)) | set(range(0, total, series))


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
