"""`oxsync serve` start-up, as an operator runs it: all listeners or nothing, one clear line on failure,
the truth on the screen (public name, TLS, UDP where HTTP listens), /health per listener, sd_notify,
config file errors on one line."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import struct
import urllib.request
from pathlib import Path

import pytest

from oxsync.cli import main
from tests.live import http_request, wait_until
from tests.serveproc import Serve, free_port, oxsync, self_signed


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    assert main(["--db", url, "init", "--domain", "example.com"]) == 0
    return url


def refused(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    """Non-zero exit, no traceback, and exactly one human line on stderr (JSON log records aside)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    human = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(human) == 1, result.stderr
    assert human[0].startswith("oxsync: cannot start: ") or human[0].startswith("oxsync: configuration: ")
    for needle in needles:
        assert needle in human[0], human[0]
    assert "listening on" not in result.stdout  # no instructions printed for a server that is not there


def test_bare_port_is_refused_with_a_hint(db: str) -> None:
    refused(oxsync("--db", db, "serve", "--listen", "8080", timeout=60), "'8080' is not an endpoint", "tcp:8080")


def test_endpoint_option_typo(db: str) -> None:
    refused(oxsync("--db", db, "serve", "--listen", "tcp:0:interface=127.0.0.1:bogus=1", timeout=60),
            "http listener", "unknown option", "bogus")


def test_missing_tls_files(db: str, tmp_path: Path) -> None:
    endpoint = f"ssl:0:interface=127.0.0.1:privateKey={tmp_path}/key.pem:certKey={tmp_path}/cert.pem"
    refused(oxsync("--db", db, "serve", "--listen", endpoint, timeout=60), "http listener", "invalid endpoint")


def test_udp_port_taken(db: str) -> None:
    taken = free_port(socket.SOCK_DGRAM)
    try:
        port = taken.getsockname()[1]
        refused(oxsync("--db", db, "serve", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", str(port),
                       timeout=60), "udp-push listener", str(port))
    finally:
        taken.close()


def test_http_and_admin_ports_taken(db: str) -> None:
    taken = free_port(socket.SOCK_STREAM)
    try:
        port = taken.getsockname()[1]
        refused(oxsync("--db", db, "serve", "--listen", f"tcp:{port}:interface=127.0.0.1", "--udp-port", "0",
                       timeout=60), "http listener", str(port))
        refused(oxsync("--db", db, "serve", "--listen", "tcp:0:interface=127.0.0.1", "--udp-port", "0",
                       "--admin-listen", f"tcp:{port}:interface=127.0.0.1", timeout=60), "admin listener", str(port))
    finally:
        taken.close()


def test_toml_syntax_error_is_one_line_with_file_line_column(db: str, tmp_path: Path) -> None:
    config = tmp_path / "oxsync.toml"
    config.write_text('[server]\nhttp_endpoint = "tcp:8080"\nudp_port = = 3\n')
    result = oxsync("--config", str(config), "--db", db, "serve", timeout=60)
    refused(result, f"{config}:3:12", "TOML syntax error")
    config.write_text("[eas]\nauth_cache_seconds = 5\n")
    refused(oxsync("--config", str(config), "user", "list", timeout=60), str(config), "unknown setting [eas] auth_cache_seconds")


def test_config_from_environment(db: str, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'[store]\nurl = "{db}"\n')
    result = oxsync("tenant", "list", timeout=60, extra_env={"OXSYNC_CONFIG": str(config)})
    assert result.returncode == 0 and "example.com" in result.stdout, result.stderr


def test_serves_everything_and_prints_the_truth(db: str, tmp_path: Path) -> None:
    """All interfaces + a public name: instructions name it; UDP follows HTTP onto every interface;
    /health lists each listener; systemd hears READY=1 then STOPPING=1, from the first process only
    (the unit's NotifyAccess=main: the copies of `processes` = one per core do not notify)."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # each datagram says which process sent it
    notify.settimeout(60)
    senders: list[int] = []

    def heard() -> str:
        data, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(12))
        senders.extend(struct.unpack("3i", bytes(cmsg_data)[:12])[0] for level, kind, cmsg_data in ancillary
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
        return data.decode()
    cores = min(len(os.sched_getaffinity(0)), 8)  # what "auto" runs without an admin listener
    config = tmp_path / "oxsync.toml"  # written: "auto" beside an admin listener runs one (its /metrics)
    config.write_text(f"[server]\nprocesses = {cores}\n")
    server = Serve("--config", str(config), "--db", db, "serve", "--listen", "tcp:0", "--udp-port", "0", "--public-host",
                   "sync.example.org:8443", "--public-scheme", "https",
                   "--admin-listen", "tcp:0:interface=127.0.0.1",
                   extra_env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        printed = server.wait_for("CalDAV/CardDAV discovery")
        ready = heard()
        assert "READY=1" in ready
        assert "server sync.example.org:8443, SSL on" in printed
        assert "https://sync.example.org:8443/servlet/webdav.freebusy" in printed
        assert "https://sync.example.org:8443/.well-known/caldav" in printed
        assert "UDP push on 0.0.0.0:" in printed
        port = int(ready.rsplit("port ", 1)[1].split()[0])
        status, _, body = http_request(port, "GET", "/health")
        health = json.loads(body)
        assert status == 200 and health["listeners"] == {"http": "up", "admin": "up", "udp-push": "up"}
        answered: set[int] = set()  # every serving process runs (one per usable core) before the stop
        assert wait_until(lambda: answered.add(json.loads(http_request(port, "GET", "/health")[2])["process"])
                          or len(answered) == cores, 60), answered
        assert server.stop() == 0
        assert "STOPPING=1" in heard()
        notify.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                heard()
        assert senders and set(senders) == {server.proc.pid}, senders
    finally:
        server.stop()
        notify.close()


def test_tls_endpoint_prints_https_and_ssl_on(db: str, tmp_path: Path) -> None:
    key, cert = self_signed(tmp_path)
    server = Serve("--db", db, "serve", "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                   "--udp-port", "0")
    try:
        printed = server.wait_for("CalDAV/CardDAV discovery")
        line = next(x for x in printed.splitlines() if x.startswith("Exchange ActiveSync"))
        assert ", SSL on," in line
        host = line.split("server ", 1)[1].split(",")[0]
        assert host.startswith("127.0.0.1:") and f"https://{host}/.well-known/carddav" in printed
        assert "UDP push on 127.0.0.1:" in printed  # where HTTP listens
        assert "serving processes: 1 (auto: one, as the http_endpoint is ssl: (several processes share a tcp: " \
               "socket only; put TLS in front of a tcp: endpoint for more))" in printed
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with urllib.request.urlopen(f"https://{host}/health", context=context, timeout=30) as response:
            assert json.loads(response.read())["listeners"]["http"] == "up"
        assert server.stop() == 0
        logged = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
        chosen = [record for record in logged if record.get("event") == "server.processes"]
        assert len(chosen) == 1 and chosen[0]["processes"] == 1 and "ssl:" in chosen[0]["reason"], chosen
    finally:
        server.stop()


def test_version() -> None:
    result = oxsync("--version", timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("oxsync ") and result.stdout.split()[1][0].isdigit()


