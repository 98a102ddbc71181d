"""A throwaway Dovecot (IMAP + LMTP + ManageSieve) in a temporary directory, authenticating against a store.

Dovecot refuses to run as root, so under root it runs as the `dovecot` system user (as tests/pgcluster.py
runs PostgreSQL as `postgres`), and the SQLite store it reads is handed to that user (root keeps access).
Free ports per instance; `stop()` waits for the master to exit before anything reuses its ports.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from oxsync.mail.dovecot import Listeners, dovecot_conf, sql_conf

INSTALL_HINT = ("install Dovecot (Debian: apt-get install dovecot-imapd dovecot-lmtpd dovecot-sieve "
                "dovecot-managesieved dovecot-sqlite dovecot-pgsql, or `make sysdeps`)")
MASTER_USER = "oxsync-master"
MASTER_PASSWORD = "master-secret"


class DovecotUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise DovecotUnavailable(f"{name} not found: {INSTALL_HINT}")


def hand_to(path: Path, user: str) -> None:
    """Give a directory tree to `user` (root keeps full access; SQLite gives later -wal/-shm files the db's owner)."""
    info = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, info.pw_uid, info.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), info.pw_uid, info.pw_gid)


class Dovecot:
    source_counter = 0

    def __init__(self, store_url: str) -> None:
        self.dovecot = find_binary("dovecot")
        self.doveconf = find_binary("doveconf")
        for module in ("lib90_sieve_plugin.so",):
            if not Path("/usr/lib/dovecot/modules", module).exists():
                raise DovecotUnavailable(f"Dovecot module {module} missing: {INSTALL_HINT}")
        self.dir = Path(tempfile.mkdtemp(prefix="oxsync-dovecot-"))
        self.as_root = os.geteuid() == 0
        self.user = "dovecot" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        info = pwd.getpwnam(self.user)
        self.uid, self.gid = info.pw_uid, info.pw_gid
        self.listeners = Listeners(_free_port(), _free_port(), _free_port())
        self.store_url = store_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.cleanup: list[Path] = [self.dir]

    @property
    def conf(self) -> Path:
        return self.dir / "dovecot.conf"

    def start(self) -> None:
        mail_root = self.dir / "mail"
        mail_root.mkdir()
        master = self.dir / "master-users"
        master.write_text(f"{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n")
        sql = self.dir / "dovecot-sql.conf.ext"
        sql.write_text(sql_conf(self.store_url, str(mail_root)))
        for secret in (master, sql):
            secret.chmod(0o600)
        self.conf.write_text(dovecot_conf(
            self.dir, self.listeners, user=self.user, group=grp.getgrgid(self.gid).gr_name, uid=self.uid,
            gid=self.gid, mail_root=str(mail_root), master_file=master, sql_file=sql,
            extra="auth_failure_delay = 0\nlogin_trusted_networks = 127.0.0.0/8\n"))
        if self.as_root:
            hand_to(self.dir, self.user)
        check = self._run([self.doveconf, "-c", str(self.conf), "-n"])
        if check.returncode != 0:
            raise DovecotUnavailable(f"doveconf refused the config: {check.stderr.strip()}")
        cmd = [self.dovecot, "-F", "-c", str(self.conf)]
        if self.as_root:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DovecotUnavailable(f"dovecot exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                                         f" {self.log()}")
            if all(self._listening(p) for p in (self.listeners.imap, self.listeners.lmtp, self.listeners.sieve)):
                return
            time.sleep(0.05)
        self.stop()
        raise DovecotUnavailable(f"dovecot did not listen within 15 s: {self.log()}")

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        if self.as_root:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def log(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to our own master only, then wait for it to exit (its ports are free after that)."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            for path in self.cleanup:
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------ helpers for tests

    def deliver(self, recipient: str, raw: bytes | str, sender: str = "sender@example.net") -> None:
        """Deliver one message through LMTP (as a real MTA would)."""
        data = raw.encode() if isinstance(raw, str) else raw
        with smtplib.LMTP("127.0.0.1", self.listeners.lmtp, timeout=30) as lmtp:
            lmtp.sendmail(sender, [recipient], data)

    def imap(self, login: str, password: str):  # type: ignore[no-untyped-def]
        """A logged-in IMAPClient (the 'other client' changing the mailbox behind the phone's back)."""
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.listeners.imap, ssl=False, timeout=30)
        client.login(login, password)
        return client

    def login_refused(self, login: str, password: str) -> bool:
        """One LOGIN from a fresh loopback source address: Dovecot delays failures per client IP (growing
        up to 15 s), so each expected refusal comes from its own 127.x address and never slows the others."""
        Dovecot.source_counter += 1
        n = Dovecot.source_counter
        with socket.create_connection(("127.0.0.1", self.listeners.imap), timeout=30,
                                      source_address=(f"127.1.{n // 250 % 250}.{n % 250 + 2}", 0)) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            quoted = [f'"{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for v in (login, password)]
            sock.sendall(f"a1 LOGIN {quoted[0]} {quoted[1]}\r\n".encode())
            while True:
                line = reader.readline()
                if not line:
                    return True
                if line.startswith(b"a1 "):
                    return not line.startswith(b"a1 OK")

    def mail_settings(self) -> dict[str, object]:
        """The `[mail]` section pointing a live server at this Dovecot."""
        return {"imap_host": "127.0.0.1", "imap_port": self.listeners.imap, "master_user": MASTER_USER,
                "master_password": MASTER_PASSWORD}


def make_message(subject: str, body: str = "Hello", *, to: str = "alice@example.com",
                 sender: str = "Bob <bob@example.net>", date: str | None = None, html: str | None = None,
                 attachment: tuple[str, bytes] | None = None, extra: dict[str, str] | None = None) -> bytes:
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = date or formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="example.net")
    for key, value in (extra or {}).items():
        msg[key] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment[1], maintype="application", subtype="octet-stream", filename=attachment[0])
    return msg.as_bytes()


class MailWorld:
    """One fresh tenant (alice, bob) on a session-wide store + Dovecot pair of one backend."""

    counter = 0

    def __init__(self, store, dovecot: Dovecot) -> None:  # type: ignore[no-untyped-def]
        from oxsync.store import accounts

        MailWorld.counter += 1
        self.store, self.dovecot = store, dovecot
        self.domain = f"m{MailWorld.counter}.example"
        tenant = store.create_tenant(self.domain)
        self.tenant_id = tenant.id
        n = MailWorld.counter  # logins are unique across tenants
        with store.transaction(tenant.id, write=True) as tx:
            alice = accounts.create_user(tx, f"alice.m{n}", "alice-pw", first_name="Alice", last_name="Martin")
            bob = accounts.create_user(tx, f"bob.m{n}", "bob-pw", first_name="Bob", last_name="Durand")
        self.alice, self.bob = alice.id, bob.id
        self.alice_address = alice.email.lower()
        self.bob_address = bob.email.lower()

    def deliver(self, raw: bytes, to: str | None = None) -> None:
        self.dovecot.deliver(to or self.alice_address, raw)

    def imap(self, who: str = "alice"):  # type: ignore[no-untyped-def]
        return self.dovecot.imap(self.alice_address if who == "alice" else self.bob_address, f"{who}-pw")


def start_mail_backend(backend: str, pg_url: str | None):  # type: ignore[no-untyped-def]
    """(store, dovecot) for one backend; the SQLite file is handed to the Dovecot user under root (its
    directory must be reachable by that user, hence a fresh temporary directory, removed by `stop`)."""
    from tests.fixtures import make_store

    base = Path(tempfile.mkdtemp(prefix="oxsync-mailstore-"))
    url = pg_url if backend == "postgresql" else f"sqlite:///{base}/db/oxsync.db"
    store = make_store(url)  # type: ignore[arg-type]
    if backend == "sqlite" and os.geteuid() == 0:
        os.chmod(base, 0o755)
        hand_to(base / "db", "dovecot")
    dovecot = Dovecot(url)  # type: ignore[arg-type]
    dovecot.cleanup.append(base)
    try:
        dovecot.start()
    except Exception:
        store.dispose()
        raise
    return store, dovecot
