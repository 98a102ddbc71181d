"""`[server] processes = 2` on PostgreSQL, as an operator runs it (a real `oxsync serve`): two processes
answer on one port; an ActiveSync Ping parked in one is woken by a CalDAV PUT answered by the other
(the change crosses as between nodes); when one process is killed the other keeps answering and the
first restarts it; the node checks each distinct credential once (one Argon2 check, whichever process
the connections land on: the first process checks for the others, oxsync/web/password_broker.py) and
a password change or a suspension refuses the old credential in both processes. On SQLite the setting
is refused with one line.

Which process answers is chosen by the kernel per connection; a kept-alive connection stays with its
process, and `/health` names it (`process`), so each request below is sent on a connection whose
process is known."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from oxsync.eas.wbxml import E
from oxsync.model import Module
from oxsync.store import accounts
from oxsync.store.notify import install_notifier
from tests import eas_client
from tests.davhelp import Dav, event
from tests.fixtures import make_store
from tests.live import wait_until
from tests.serveproc import Serve, oxsync

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _auth(user: str = "alice", password: str = "alice-pw") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _health(conn: http.client.HTTPConnection) -> dict[str, Any]:
    conn.request("GET", "/health")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return dict(json.loads(body))


def _connections(port: int) -> dict[int, http.client.HTTPConnection]:
    """One kept-alive connection per serving process (process id -> connection); the second process
    starts after the first is ready, so new connections are tried for a while."""
    found: dict[int, http.client.HTTPConnection] = {}

    def both() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        pid = int(_health(conn)["process"])
        if pid in found:
            conn.close()
        else:
            found[pid] = conn
        return len(found) == 2
    wait_until(both, 60)
    return found


def _serve(store_url: str, tmp_path: Path) -> tuple[Serve, int]:
    config = tmp_path / "oxsync.toml"  # no access log: nobody reads serve's stderr until it ends (a full pipe blocks)
    config.write_text("[server]\nprocesses = 2\n[log]\naccess_log = false\n")
    server = Serve("--config", str(config), "--db", store_url, "serve", "--listen", "tcp:0:interface=127.0.0.1",
                   "--udp-port", "0")
    printed = server.wait_for("CalDAV/CardDAV discovery")
    port = int(printed.split("CalDAV/CardDAV discovery: http://127.0.0.1:", 1)[1].split("/", 1)[0])
    return server, port


@ON_POSTGRESQL
def test_a_put_answered_by_one_process_wakes_a_ping_parked_in_the_other(store_url, world, tmp_path,
                                                                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    server, port = _serve(store_url, tmp_path)
    try:
        by_process = _connections(port)
        assert len(by_process) == 2 and server.proc.pid in by_process, by_process.keys()
        (ping_pid, ping_conn), (put_pid, put_conn) = sorted(by_process.items())
        phone = eas_client.EasClient(port, "alice", "alice-pw")
        phone.provision()
        phone.folder_sync()
        calendar = str(world.default_folder(world.alice, Module.CALENDAR))
        phone.sync(calendar, "0")
        phone.sync(calendar)

        def on_ping_process(port_: int, method: str, path: str, *, auth: Any = None, body: Any = None,
                            headers: Any = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
            ping_conn.request(method, path, body=body, headers={**(headers or {}), "Authorization": _auth()})
            response = ping_conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        monkeypatch.setattr(eas_client, "http_request", on_ping_process)  # this Ping parks in `ping_pid`
        ping = E("Ping:Ping", E("Ping:HeartbeatInterval", "600"),
                 E("Ping:Folders", E("Ping:Folder", E("Ping:Id", calendar), E("Ping:Class", "Calendar"))))
        result: dict[str, Any] = {}
        waiting = threading.Thread(target=lambda: result.setdefault("reply", phone.post("Ping", ping, timeout=60)))
        waiting.start()
        waiting.join(2)  # parked: a Ping with nothing to report does not answer before its heartbeat
        assert waiting.is_alive() and "reply" not in result
        body = event("two-processes-1", "Across processes", "20270401T090000Z", "20270401T100000Z")
        put_conn.request("PUT", f"{Dav(port, world).calendar()}x.ics", body=body.encode(),
                         headers={"Authorization": _auth(), "Content-Type": "text/calendar"})
        put = put_conn.getresponse()
        put.read()
        assert put.status == 201 and _health(put_conn)["process"] == put_pid != ping_pid
        waiting.join(30)
        reply = result["reply"]
        assert reply.text("Ping:Status") == "2"
        assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [calendar]
        assert _health(ping_conn)["process"] == ping_pid  # the Ping was answered by the process it parked in
    finally:
        assert server.stop() == 0
    assert all(_gone(pid) for pid in by_process)  # stopping the first process stopped the other


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


@ON_POSTGRESQL
def test_the_other_process_keeps_serving_when_one_is_killed(store_url, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, port = _serve(store_url, tmp_path)
    try:
        by_process = _connections(port)
        assert len(by_process) == 2, by_process.keys()
        [killed] = [pid for pid in by_process if pid != server.proc.pid]
        for conn in by_process.values():
            conn.close()
        os.kill(killed, signal.SIGKILL)
        assert wait_until(lambda: _gone(killed))
        calendar = Dav(port, world).calendar()
        answered = []
        for _ in range(20):  # fresh connections: whichever process accepts must answer
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("PROPFIND", calendar, headers={"Authorization": _auth(), "Depth": "0"})
            response = conn.getresponse()
            response.read()
            answered.append(response.status)
            conn.close()
        assert answered == [207] * 20
        restarted: set[int] = set()

        def another_process_answers() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                pid = int(_health(conn)["process"])
            finally:
                conn.close()
            if pid not in (server.proc.pid, killed):
                restarted.add(pid)
            return bool(restarted)
        assert wait_until(another_process_answers, 30)  # the first process started a new one
    finally:
        assert server.stop() == 0


def test_refused_on_sqlite(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/db.sqlite"
    assert oxsync("--db", db, "init", "--domain", "example.com").returncode == 0
    config = tmp_path / "oxsync.toml"
    config.write_text("[server]\nprocesses = 2\n")
    result = oxsync("--config", str(config), "--db", db, "serve", "--listen", "tcp:0:interface=127.0.0.1",
                    "--udp-port", "0", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    human = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert human == ["oxsync: cannot start: [server] processes = 2 needs PostgreSQL: an SQLite database has one "
                     "writer at a time and its processes cannot push each other's changes; use processes = 1"]



def _status(conn: http.client.HTTPConnection, user: str, password: str) -> int:
    conn.request("OPTIONS", "/Microsoft-Server-ActiveSync", headers={"Authorization": _auth(user, password)})
    response = conn.getresponse()
    response.read()
    return response.status


def _hashes(by_process: dict[int, http.client.HTTPConnection]) -> int:
    """Argon2 checks run on the node so far (each process counts its own in /health)."""
    return sum(int(_health(conn)["password_hashes"]) for conn in by_process.values())


def _spread(port: int, count: int) -> list[tuple[int, http.client.HTTPConnection]]:
    """`count` fresh kept-alive connections, landing on both processes (process id, connection)."""
    landed: list[tuple[int, http.client.HTTPConnection]] = []
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        landed.append((int(_health(conn)["process"]), conn))
        if len(landed) >= count and len({pid for pid, _ in landed}) == 2:
            return landed[-count:] if len({pid for pid, _ in landed[-count:]}) == 2 else landed
    raise AssertionError("the kernel never gave a connection to the second process")


def _together(landed: list[tuple[int, http.client.HTTPConnection]], user: str, password: str) -> list[int]:
    """One request with these credentials on every connection at once."""
    statuses: dict[int, int] = {}
    go = threading.Barrier(len(landed))

    def one(index: int, conn: http.client.HTTPConnection) -> None:
        go.wait(30)
        statuses[index] = _status(conn, user, password)
    threads = [threading.Thread(target=one, args=(i, conn)) for i, (_, conn) in enumerate(landed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return [statuses.get(i, 0) for i in range(len(landed))]


@ON_POSTGRESQL
def test_the_node_checks_each_distinct_credential_once(store_url, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, port = _serve(store_url, tmp_path)
    try:
        by_process = _connections(port)
        assert _hashes(by_process) == 0
        carol = _spread(port, 8)
        assert _together(carol, "carol", "carol-pw") == [200] * len(carol)
        assert _hashes(by_process) == 1  # one new credential, connections on both processes: one check
        dav = [conn for _, conn in carol]
        for conn in dav[:2] + dav[-2:]:  # another protocol in either process: the node's memory answers
            conn.request("PROPFIND", "/dav/", headers={"Authorization": _auth("carol", "carol-pw"), "Depth": "0"})
            response = conn.getresponse()
            response.read()
            assert response.status == 207
        assert _hashes(by_process) == 1
        for user in ("alice", "bob"):  # distinct credentials: one check each
            assert _together(_spread(port, 4), user, f"{user}-pw") == [200] * 4
        assert _hashes(by_process) == 3
        wrong = [_status(conn, "alice", "not-alice-pw") for conn in by_process.values() for _ in range(2)]
        assert wrong == [401] * 4 and _hashes(by_process) == 7  # refused each time, never remembered
        assert [_status(conn, "alice", "alice-pw") for conn in by_process.values()] == [200, 200]
        assert _hashes(by_process) == 7
    finally:
        assert server.stop() == 0


@ON_POSTGRESQL
def test_a_password_change_or_suspension_refuses_the_old_credential_in_both_processes(store_url, world,  # type: ignore[no-untyped-def]
                                                                                      tmp_path) -> None:
    server, port = _serve(store_url, tmp_path)
    writer = make_store(store_url)
    install_notifier(writer)  # as the CLI does: its account changes reach every process through NOTIFY

    def change(**fields: Any) -> None:
        with writer.transaction(world.tenant_id, write=True) as tx:
            accounts.update_user(tx, world.alice, **fields)

    def statuses(password: str) -> list[int]:
        return [_status(conn, "alice", password) for _, conn in sorted(by_process.items())]
    try:
        by_process = _connections(port)
        assert statuses("alice-pw") == [200, 200]  # remembered in both processes now
        change(active=False)
        assert wait_until(lambda: statuses("alice-pw") == [403, 403], 60)  # well before the memory's 900 s
        change(active=True)
        assert wait_until(lambda: statuses("alice-pw") == [200, 200], 60)
        change(password="alice-new-pw")
        assert wait_until(lambda: statuses("alice-pw") == [401, 401], 60)
        assert statuses("alice-new-pw") == [200, 200] and statuses("alice-pw") == [401, 401]
    finally:
        writer.dispose()
        assert server.stop() == 0
