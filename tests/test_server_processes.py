"""`[server] processes = 2` on PostgreSQL, as an operator runs it (a real `oxsync serve`): two processes
answer on one port; an ActiveSync Ping parked in one is woken by a CalDAV PUT answered by the other
(the change crosses as between nodes); when one process is killed the other keeps answering and the
first restarts it; the node checks each distinct credential once (one Argon2 check, whichever process
the connections land on: the first process checks for the others, oxsync/web/password_broker.py) and
a password change or a suspension refuses the old credential in both processes. On SQLite the same
holds (the processes relay their changes over their channel, oxsync/push/procbus.py), and the writers
of both processes take turns on the writer's file lock.

Which process answers is chosen by the kernel per connection; a kept-alive connection stays with its
process, and `/health` names it (`process`), so each request below is sent on a connection whose
process is known."""

from __future__ import annotations

import base64
import ctypes
import fcntl
import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from oxsync.eas.wbxml import E
from oxsync.model import Module
from oxsync.store import accounts, admin
from oxsync.store.engine import WRITER_LOCK_SUFFIX, sqlite_file
from oxsync.store.notify import install_notifier
from tests import eas_client
from tests.davhelp import Dav, event
from tests.fixtures import make_store
from tests.live import wait_until
from tests.serveproc import Serve, logged_ports

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
ON_BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


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


def _serve(store_url: str, tmp_path: Path, extra: str = "", server: str = "", log: str = "") -> tuple[Serve, int]:
    """`extra`: further sections of the configuration; `server`: further lines of its `[server]`; `log`:
    further lines of its `[log]`."""
    config = tmp_path / "oxsync.toml"  # no access log: nobody reads serve's stderr until it ends (a full pipe blocks)
    config.write_text("[server]\nprocesses = 2\n" + server + "[log]\naccess_log = false\n" + log + extra)
    server = Serve("--config", str(config), "--db", store_url, "serve", "--listen", "tcp:0:interface=127.0.0.1",
                   "--udp-port", "0")
    printed = server.wait_for("CalDAV/CardDAV discovery")
    port = int(printed.split("CalDAV/CardDAV discovery: http://127.0.0.1:", 1)[1].split("/", 1)[0])
    return server, port


@ON_BOTH
def test_a_put_answered_by_one_process_wakes_a_ping_parked_in_the_other(store_url, world, tmp_path,
                                                                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Both ways: the first process's write wakes a Ping parked in the copy and the copy's write one
    parked in the first process (PostgreSQL: NOTIFY; SQLite: the relay over the processes' channel)."""
    server, port = _serve(store_url, tmp_path)
    try:
        by_process = _connections(port)
        assert len(by_process) == 2 and server.proc.pid in by_process, by_process.keys()
        phone = eas_client.EasClient(port, "alice", "alice-pw")
        phone.provision()
        phone.folder_sync()
        calendar = str(world.default_folder(world.alice, Module.CALENDAR))
        phone.sync(calendar, "0")
        phone.sync(calendar)
        first, copy = server.proc.pid, next(pid for pid in by_process if pid != server.proc.pid)
        ping = E("Ping:Ping", E("Ping:HeartbeatInterval", "600"),
                 E("Ping:Folders", E("Ping:Folder", E("Ping:Id", calendar), E("Ping:Class", "Calendar"))))
        for turn, (ping_pid, put_pid) in enumerate(((first, copy), (copy, first))):
            ping_conn, put_conn = by_process[ping_pid], by_process[put_pid]

            def on_ping_process(port_: int, method: str, path: str, *, auth: Any = None, body: Any = None,
                                headers: Any = None, timeout: float = 30,
                                conn: http.client.HTTPConnection = ping_conn) -> tuple[int, dict[str, str], bytes]:
                conn.request(method, path, body=body, headers={**(headers or {}), "Authorization": _auth()})
                response = conn.getresponse()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            monkeypatch.setattr(eas_client, "http_request", on_ping_process)  # this Ping parks in `ping_pid`
            if turn:
                phone.sync(calendar)  # takes the first turn's change: nothing left to report
            result: dict[str, Any] = {}
            waiting = threading.Thread(target=lambda r=result: r.setdefault("reply", phone.post("Ping", ping,
                                                                                               timeout=60)))
            waiting.start()
            waiting.join(2)  # parked: a Ping with nothing to report does not answer before its heartbeat
            assert waiting.is_alive() and "reply" not in result
            body = event(f"two-processes-{turn}", "Across processes", "20270401T090000Z", "20270401T100000Z")
            put_conn.request("PUT", f"{Dav(port, world).calendar()}x{turn}.ics", body=body.encode(),
                             headers={"Authorization": _auth(), "Content-Type": "text/calendar"})
            put = put_conn.getresponse()
            put.read()
            assert put.status == 201 and _health(put_conn)["process"] == put_pid != ping_pid
            waiting.join(30)
            reply = result["reply"]
            assert reply.text("Ping:Status") == "2"
            assert [f.value_text() for f in reply.body.find("Ping:Folders")] == [calendar]
            assert _health(ping_conn)["process"] == ping_pid  # answered by the process it parked in
    finally:
        assert server.stop() == 0
    assert all(_gone(pid) for pid in by_process)  # stopping the first process stopped the other


def _eventually(predicate: Any, seconds: float = 60) -> bool:
    """`wait_until` at a few tries a second: each try is a login, and a wrong one is counted by the
    login throttle (SQLite's account poll takes up to `account_poll_seconds` to notice a CLI change)."""
    for _ in range(int(seconds * 4)):
        if predicate():
            return True
        time.sleep(0.25)
    return bool(predicate())


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


@ON_BOTH
def test_a_password_change_or_suspension_refuses_the_old_credential_in_both_processes(store_url, world,  # type: ignore[no-untyped-def]
                                                                                      tmp_path) -> None:
    server, port = _serve(store_url, tmp_path)
    writer = make_store(store_url)
    install_notifier(writer)  # as the CLI does: its account changes reach every process through NOTIFY
    # (on SQLite each process notices them by its own `[auth] account_poll_seconds`)

    def change(**fields: Any) -> None:
        with writer.transaction(world.tenant_id, write=True) as tx:
            accounts.update_user(tx, world.alice, **fields)

    def statuses(password: str) -> list[int]:
        return [_status(conn, "alice", password) for _, conn in sorted(by_process.items())]
    try:
        by_process = _connections(port)
        assert statuses("alice-pw") == [200, 200]  # remembered in both processes now
        change(active=False)
        assert _eventually(lambda: statuses("alice-pw") == [403, 403], 60)  # well before the memory's 900 s
        change(active=True)
        assert _eventually(lambda: statuses("alice-pw") == [200, 200], 60)
        change(password="alice-new-pw")
        assert _eventually(lambda: statuses("alice-pw") == [401, 401], 60)
        assert statuses("alice-new-pw") == [200, 200] and statuses("alice-pw") == [401, 401]
    finally:
        writer.dispose()
        code = server.stop()
        assert code == 0, server.stderr()[-6000:]


@ON_SQLITE
def test_sqlite_writers_of_both_processes_take_turns(store_url, world, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """40 CalDAV PUTs from 8 clients spread over both processes all land, and both processes' writers
    queue on the writer's file lock (`<database>-writer.lock`) rather than meeting at SQLite's database
    lock: while this test holds that file lock, no PUT lands and each process counts a writer waiting
    for it (`writer_turns.file_waits`); once it lets go, every PUT lands and no write went around its
    turn (`not_granted`). Holding the lock here makes the contention certain instead of a matter of
    timing."""
    # a generous busy timeout: the processes' other writers wait for their process's turn that long
    server, port = _serve(store_url, tmp_path, "[store]\nbusy_timeout_ms = 120000\n")
    clients: list[tuple[int, http.client.HTTPConnection]] = []
    health = _connections(port)
    lock_fd = os.open(f"{sqlite_file(store.engine)}{WRITER_LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600)
    threads: list[threading.Thread] = []
    try:
        clients = _spread(port, 8)
        assert len({pid for pid, _ in clients}) == 2
        calendar = Dav(port, world).calendar()
        statuses: dict[str, int] = {}
        fcntl.flock(lock_fd, fcntl.LOCK_EX)

        def client(index: int, conn: http.client.HTTPConnection) -> None:
            for n in range(5):
                name = f"spread-{index}-{n}"
                body = event(name, "Spread", "20270501T090000Z", "20270501T100000Z")
                conn.request("PUT", f"{calendar}{name}.ics", body=body.encode(),
                             headers={"Authorization": _auth(), "Content-Type": "text/calendar"})
                response = conn.getresponse()
                response.read()
                statuses[name] = response.status
        threads = [threading.Thread(target=client, args=(i, conn)) for i, (_, conn) in enumerate(clients)]
        for t in threads:
            t.start()

        def both_wait() -> bool:
            return all(_health(conn)["writer_turns"]["file_waits"] > 0 for conn in health.values())
        assert wait_until(both_wait, 60)
        assert statuses == {}  # nothing written while another process holds the writer's file
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        for t in threads:
            t.join(120)
        assert sorted(statuses.values()) == [201] * 40
        conn = clients[0][1]
        conn.request("PROPFIND", calendar, headers={"Authorization": _auth(), "Depth": "1"})
        listing = conn.getresponse()
        listed = listing.read().decode()
        assert listing.status == 207 and all(f"{name}.ics" in listed for name in statuses)
        turns = {pid: _health(conn)["writer_turns"] for pid, conn in health.items()}
        assert all(t["not_granted"] == 0 for t in turns.values()), turns
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        for t in threads:
            t.join(120)
        for _, conn in [*clients, *((0, c) for c in health.values())]:
            conn.close()
        assert server.stop() == 0


def _serve_logged(store_url: str, tmp_path: Path, extra: str = "", server: str = "") -> tuple[Serve, int, Path]:
    """`_serve` with its log in a file (returned): the console and admin listeners are given port 0 and
    their bound ports are read from it (`serveproc.logged_ports`), so no port is chosen before the server
    binds it."""
    log = tmp_path / "serve.log"
    served, port = _serve(store_url, tmp_path, extra, server, log=f'destination = "{log}"\n')
    return served, port, log


@ON_SQLITE
def test_sqlite_an_account_change_in_one_process_reaches_the_other_at_once(store_url, world, store,  # type: ignore[no-untyped-def]
                                                                          tmp_path) -> None:
    """No account poll here (`account_poll_seconds = 0`): a suspension and a password change made
    through the first process's admin API reach the copy's verified-login memory over the relay."""
    server, port, log = _serve_logged(store_url, tmp_path, "[auth]\naccount_poll_seconds = 0\n[console]\n"
                                                          'endpoint = "tcp:0:interface=127.0.0.1"\n')
    console = logged_ports(log)["console"]
    assert f"web console and admin API: http://127.0.0.1:{console}/" in "".join(server.out)  # the bound port, not 0
    _, token = admin.create_token(store, admin.cli_actor(), "test", None)
    account = f"http://127.0.0.1:{console}/admin/api/tenants/{world.tenant_id}/accounts/{world.alice}"

    def api(method: str, path: str, body: dict[str, Any]) -> None:
        response = requests.request(method, account + path, json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text

    try:
        by_process = _connections(port)
        copy = by_process[next(pid for pid in by_process if pid != server.proc.pid)]
        assert _status(copy, "alice", "alice-pw") == 200  # remembered by the copy now
        api("PATCH", "", {"active": False})
        assert wait_until(lambda: _status(copy, "alice", "alice-pw") == 403, 30)
        api("PATCH", "", {"active": True})
        assert wait_until(lambda: _status(copy, "alice", "alice-pw") == 200, 30)
        api("POST", "/password", {"password": "alice-new-pw"})
        assert wait_until(lambda: _status(copy, "alice", "alice-pw") == 401, 30)
        assert _status(copy, "alice", "alice-new-pw") == 200
    finally:
        assert server.stop() == 0


PIDFD_GETFD = 438
"""The system call number of pidfd_getfd (the same on every Linux architecture; kernel 5.6)."""


def _channel_of(pid: int) -> socket.socket | None:
    """A duplicate of serving process `pid`'s end of its channel to the first process (its one Unix
    socket), taken through pidfd_getfd; None where the kernel refuses it."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # a kernel before 5.3
        return None
    found: list[socket.socket] = []
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:  # closed meanwhile
                continue
            fd = libc.syscall(PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                return None
            sock = socket.socket(fileno=fd)
            if sock.family == socket.AF_UNIX:
                found.append(sock)
            else:
                sock.close()
    finally:
        os.close(pidfd)
    assert len(found) == 1, found  # the channel is the copy's only Unix socket
    return found[0]


@ON_SQLITE
def test_sqlite_a_copy_that_lost_its_channel_is_started_again_and_hears_the_others(  # type: ignore[no-untyped-def]
        store_url, world, store, tmp_path) -> None:
    """The copy's channel to the first process breaks (shut down here from outside, as a broken stream
    looks to both ends): the copy, which could no longer hear the other process's changes, stops; the
    first process starts a new copy with a fresh channel; it serves, its password questions are answered
    by the first process (no Argon2 check of its own), and a change made through the first process still
    crosses to it (no account poll here: only the relay can tell it)."""
    server, port, log = _serve_logged(store_url, tmp_path, "[auth]\naccount_poll_seconds = 0\n[console]\n"
                                                          'endpoint = "tcp:0:interface=127.0.0.1"\n')
    console = logged_ports(log)["console"]
    _, token = admin.create_token(store, admin.cli_actor(), "test", None)
    account = f"http://127.0.0.1:{console}/admin/api/tenants/{world.tenant_id}/accounts/{world.alice}"
    conns: list[http.client.HTTPConnection] = []
    try:
        by_process = _connections(port)
        conns.extend(by_process.values())
        first = server.proc.pid
        [lost] = [pid for pid in by_process if pid != first]
        channel = _channel_of(lost)
        if channel is None:
            pytest.skip("pidfd_getfd refused here: cannot reach the copy's channel")
        by_process.pop(lost).close()
        channel.shutdown(socket.SHUT_RDWR)
        channel.close()
        assert wait_until(lambda: _gone(lost), 60)  # it stopped (it is not killed: nothing else ends it)
        found: dict[int, http.client.HTTPConnection] = {}

        def a_new_copy_answers() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            pid = int(_health(conn)["process"])
            if pid in (first, lost) or found:
                conn.close()
            else:
                found[pid] = conn
            return bool(found)
        assert wait_until(a_new_copy_answers, 60)  # the first process started it again
        [(restarted, copy)] = found.items()
        conns.append(copy)
        copy.request("PROPFIND", Dav(port, world).calendar(), headers={"Authorization": _auth(), "Depth": "0"})
        response = copy.getresponse()
        response.read()
        assert response.status == 207
        assert _status(copy, "alice", "alice-pw") == 200 and _health(copy)["password_hashes"] == 0
        response = requests.patch(account, json={"active": False}, timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert wait_until(lambda: _status(copy, "alice", "alice-pw") == 403, 30)  # relayed to the new copy
        assert _health(copy)["process"] == restarted
    finally:
        for conn in conns:
            conn.close()
        assert server.stop() == 0


def _broker_counts(admin_port: int) -> dict[str, float]:
    """`oxsync_password_broker_total` by result, from the node's `/metrics` (the first process's)."""
    text = requests.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=30).text
    prefix = 'oxsync_password_broker_total{result="'
    return {line[len(prefix):].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


@ON_SQLITE
def test_sqlite_the_copies_password_questions_are_counted_on_the_nodes_metrics(store_url, world,  # type: ignore[no-untyped-def]
                                                                             tmp_path) -> None:
    """`/metrics` is served by the first process only: a copy's password questions, answered by the
    first process or checked locally (here: a question over `password_broker_max_bytes`), are counted
    there, told over the copy's channel."""
    server, port, log = _serve_logged(store_url, tmp_path, server='admin_endpoint = "tcp:0:interface=127.0.0.1"\n'
                                                                  "password_broker_max_bytes = 512\n")
    admin_port = logged_ports(log)["admin"]
    by_process: dict[int, http.client.HTTPConnection] = {}
    try:
        by_process = _connections(port)
        copy = by_process[next(pid for pid in by_process if pid != server.proc.pid)]
        assert _broker_counts(admin_port) == {}
        assert _status(copy, "alice", "alice-pw") == 200  # asked the first process
        assert wait_until(lambda: _broker_counts(admin_port) == {"answered": 1.0}, 30)
        assert _status(copy, "alice", "x" * 600) == 401  # too large to ask: checked in the copy
        assert wait_until(lambda: _broker_counts(admin_port) == {"answered": 1.0, "local": 1.0}, 30)
        assert _health(copy)["password_hashes"] == 1
        # written as 2 beside an admin listener: served so, and warned once that /metrics is the first's
        events = [json.loads(line).get("event") for line in log.read_text().splitlines() if line.startswith("{")]
        assert events.count("server.processes_metrics") == 1
    finally:
        for conn in by_process.values():
            conn.close()
        assert server.stop() == 0
