"""SOGo from Debian (packages sogo, sogo-activesync, memcached) as a peer of bench_peers.py.

SOGo needs PostgreSQL (a throwaway cluster as tests/pgcluster.py builds), memcached, /etc/sogo/sogo.conf
pointing at both (the file is replaced for the run and restored afterwards) and an SQL user source.
sogod runs as the `sogo` user; it ignores SIGTERM, SIGINT stops it. Data are loaded by PUT (8 clients)
once the user's calendar exists (one PROPFIND creates it).

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
    free_port,
    put_all,
    wait_port,
)

CONF = Path("/etc/sogo/sogo.conf")
SOGOD = "/usr/sbin/sogod"
WORKERS = 4


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
        self.saved_conf = CONF.read_bytes() if CONF.exists() else None
        self.imap_port, self.extra_conf, self.workers = imap_port, extra_conf or {}, WORKERS

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
        CONF.write_text("{\n" + "".join(f'  {k} = "{v}";\n' for k, v in {
            "SOGoProfileURL": f"{db}/sogo_user_profile", "OCSFolderInfoURL": f"{db}/sogo_folder_info",
            "OCSSessionsFolderURL": f"{db}/sogo_sessions_folder", "OCSEMailAlarmsFolderURL": f"{db}/sogo_alarms_folder",
            "OCSStoreURL": f"{db}/sogo_store", "OCSAclURL": f"{db}/sogo_acl", "OCSCacheFolderURL": f"{db}/sogo_cache_folder",
            "SOGoMemcachedHost": f"127.0.0.1:{mport}", "SOGoIMAPServer": f"imap://127.0.0.1:{self.imap_port}",
            "SOGoMailDomain": "example.com", "SOGoTimeZone": "Europe/Paris", "SOGoLanguage": "English",
            "SOGoMailingMechanism": "smtp", "SOGoSMTPServer": "smtp://127.0.0.1:1",
            "SOGoAppointmentSendEMailNotifications": "NO", "SOGoEnableEMailAlarms": "NO", **self.extra_conf,
        }.items()) + "  SOGoUserSources = ({ type = sql; id = users; viewURL = \"" + db + "/sogo_users\"; "
            "canAuthenticate = YES; isAddressBook = NO; userPasswordAlgorithm = plain; });\n}\n")
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
        items = [(self.cal + event_name(i), event(i, events), "text/calendar; charset=utf-8") for i in range(events)]
        items += [(self.card_path + card_name(i), card(i), "text/vcard; charset=utf-8") for i in range(cards)]
        put_all(self.port, self.auth, items)
        self.stop()

    def login_path(self, user: str) -> str:
        return f"/SOGo/dav/{user}/"

    def start(self) -> int:
        self.port = free_port()
        log = self.dir / "sogo.log"
        self.procs = [subprocess.Popen(
            [SOGOD, "-WOPort", f"127.0.0.1:{self.port}", "-WONoDetach", "YES", "-WOWorkersCount", str(self.workers),
             "-WOLogFile", str(log), "-WOPidFile", str(self.dir / "sogo.pid")],
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
        if self.saved_conf is not None:
            CONF.write_bytes(self.saved_conf)
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
