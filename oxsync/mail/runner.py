"""Run a self-contained Dovecot (IMAP + LMTP + ManageSieve) from a directory: the demo's and the tests'.

Dovecot refuses to run as root, so under root it runs as the `dovecot` system user (as PostgreSQL runs
as `postgres` in tests/pgcluster.py) and its directory is handed to that user. `dovecot -F` stays in
the foreground: we own the process, stop it with SIGTERM to that pid only, and wait for it to exit
before its ports can be reused. Missing binaries fail with the install hint.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from oxsync.mail.dovecot import Listeners, dovecot_conf, sql_conf

INSTALL_HINT = ("install Dovecot (Debian: apt-get install dovecot-imapd dovecot-lmtpd dovecot-sieve "
                "dovecot-managesieved dovecot-sqlite dovecot-pgsql, or `make sysdeps`)")
MASTER_USER = "oxsync-master"


START_ATTEMPTS = 5
"""`DovecotProcess.start(attempts=)` of the tests and the demo: their ports are chosen before Dovecot binds
them, and another process (a client's ephemeral source port, another throwaway server) may take one
meanwhile; Dovecot then refuses to start and fresh ports are chosen, at most this many times in all."""


class DovecotUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def distinct_ports(count: int) -> list[int]:
    """`count` free loopback ports, all different: each is held bound until all are chosen (three
    `free_port()` calls in a row may return one port twice, which doveconf refuses: "duplicate listener")."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            held.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


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


class DovecotProcess:
    def __init__(self, base: Path, store_url: str, listeners: Listeners, master_password: str,
                 extra: str = "") -> None:
        self.dovecot = find_binary("dovecot")
        self.doveconf = find_binary("doveconf")
        if not Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so").exists():
            raise DovecotUnavailable(f"Dovecot's sieve plugin is missing: {INSTALL_HINT}")
        self.dir = base
        self.as_root = os.geteuid() == 0
        self.user = "dovecot" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        info = pwd.getpwnam(self.user)
        self.uid, self.gid = info.pw_uid, info.pw_gid
        self.listeners = listeners
        self.store_url = store_url
        self.master_password = master_password
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "dovecot.conf"

    @property
    def mail_root(self) -> Path:
        return self.dir / "mail"

    def start(self, timeout: float = 15.0, attempts: int = 1) -> None:
        """Write the configuration, check it with doveconf, start Dovecot and wait until every
        configured listener (port not 0) accepts connections. `attempts` > 1: when a port was taken
        (Dovecot's "Address already in use"), again on fresh free ports (`distinct_ports`), at most that
        many times in all."""
        for attempt in range(attempts):
            if attempt:
                (self.dir / "dovecot.log").unlink(missing_ok=True)  # what is read below is this attempt's only
            self.write_config()
            try:
                self.launch(timeout)
                return
            except DovecotUnavailable as exc:
                if attempt == attempts - 1 or "Address already in use" not in str(exc):
                    raise
                imap, lmtp, sieve = distinct_ports(3)
                self.listeners = replace(self.listeners, imap=imap, lmtp=lmtp,
                                         sieve=sieve if self.listeners.sieve else 0)

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mail_root.mkdir(exist_ok=True)
        master = self.dir / "master-users"
        master.write_text(f"{MASTER_USER}:{{PLAIN}}{self.master_password}\n")
        sql = self.dir / "dovecot-sql.conf.ext"
        sql.write_text(sql_conf(self.store_url, str(self.mail_root)))
        for secret in (master, sql):
            secret.chmod(0o600)
        self.conf.write_text(dovecot_conf(
            self.dir, self.listeners, user=self.user, group=grp.getgrgid(self.gid).gr_name, uid=self.uid,
            gid=self.gid, mail_root=str(self.mail_root), master_file=master, sql_file=sql, extra=self.extra))

    def launch(self, timeout: float = 15.0) -> None:
        if self.as_root:
            hand_to(self.dir, self.user)
        check = self._run([self.doveconf, "-c", str(self.conf), "-n"])
        if check.returncode != 0:
            raise DovecotUnavailable(f"doveconf refused the config: {check.stderr.strip()}")
        cmd = [self.dovecot, "-F", "-c", str(self.conf)]
        if self.as_root:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.listeners.imap, self.listeners.lmtp, self.listeners.sieve) if p]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise DovecotUnavailable(f"dovecot exited: {err} {self.log()}")
            if all(self._listening(p) for p in ports):
                return
            time.sleep(0.05)
        self.stop()
        raise DovecotUnavailable(f"dovecot did not listen within {timeout:.0f} s: {self.log()}")

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        if self.as_root:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def _listening(self, port: int) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((self.listeners.address, port)) == 0

    def log(self) -> str:
        try:
            return (self.dir / "dovecot.log").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to our own master only, then wait for it to exit (its ports are free after that)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def mail_settings(self) -> dict[str, object]:
        """The `[mail]` section pointing oxsync at this Dovecot."""
        return {"imap_host": self.listeners.address, "imap_port": self.listeners.imap, "master_user": MASTER_USER,
                "master_password": self.master_password}
