"""Account changes (suspend, resume, password, protocol rights, delete) apply at once in every dialect,
on every node, although verified logins are remembered; and password checks are counted, pooled and
shared (issue 10 §3, issue 11's login part). Counts of hashes, never timings."""

from __future__ import annotations

import threading

import pytest
from twisted.internet.defer import Deferred

from oxsync.dialects import install_all
from oxsync.model import Protocol
from oxsync.store import accounts
from oxsync.store.removal import delete_user
from oxsync.web.password_broker import SingleFlightChecks
from tests.fixtures import make_store
from tests.live import http_request, wait_until

OX_PROPFIND = ('<D:propfind xmlns:D="DAV:" xmlns:ox="http://www.open-xchange.org"><D:prop>'
               "<ox:lastsync>0</ox:lastsync></D:prop></D:propfind>")
PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>'


def dialects(port: int, login: str, password: str) -> dict[str, int]:
    """One authenticated request per dialect, Basic auth only (no cookie kept): login -> status."""
    auth = (login, password)
    return {
        "ox": http_request(port, "PROPFIND", "/servlet/webdav.folders", auth=auth, body=OX_PROPFIND)[0],
        "eas": http_request(port, "OPTIONS", "/Microsoft-Server-ActiveSync", auth=auth)[0],
        "dav": http_request(port, "PROPFIND", "/dav/", auth=auth, body=PROPFIND,
                            headers={"Depth": "0"})[0],
    }


def ok(statuses: dict[str, int]) -> bool:
    return all(200 <= s < 300 for s in statuses.values())


def refused(statuses: dict[str, int]) -> bool:
    return all(s in (401, 403) for s in statuses.values())


def change(store, world, fn) -> None:  # type: ignore[no-untyped-def]
    with store.transaction(world.tenant_id, write=True) as tx:
        fn(tx)


def test_account_changes_apply_at_once_in_every_dialect(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, auth={"account_poll_seconds": 0.0})  # the bus alone
    checks = running.service.site.context.authenticator.checks
    assert ok(dialects(running.port, "alice", "alice-pw"))
    hashes = checks.hashes
    assert ok(dialects(running.port, "alice", "alice-pw")) and checks.hashes == hashes  # remembered

    change(store, world, lambda tx: accounts.update_user(tx, world.alice, active=False))
    assert refused(dialects(running.port, "alice", "alice-pw"))
    change(store, world, lambda tx: accounts.update_user(tx, world.alice, active=True))
    assert ok(dialects(running.port, "alice", "alice-pw"))

    change(store, world, lambda tx: accounts.update_user(tx, world.alice, protocols=[Protocol.DAV]))
    statuses = dialects(running.port, "alice", "alice-pw")
    assert statuses["ox"] == 403 and statuses["eas"] == 403 and 200 <= statuses["dav"] < 300

    change(store, world, lambda tx: accounts.update_user(tx, world.alice, protocols=list(Protocol),
                                                         password="new-pw"))
    assert all(s == 401 for s in dialects(running.port, "alice", "alice-pw").values())
    assert ok(dialects(running.port, "alice", "new-pw"))

    change(store, world, lambda tx: accounts.add_alias(tx, world.alice, "ali@example.com"))
    assert ok(dialects(running.port, "ali@example.com", "new-pw"))
    change(store, world, lambda tx: accounts.remove_alias(tx, world.alice, "ali@example.com"))
    assert http_request(running.port, "OPTIONS", "/Microsoft-Server-ActiveSync",
                        auth=("ali@example.com", "new-pw"))[0] == 401

    assert ok(dialects(running.port, "bob", "bob-pw"))
    change(store, world, lambda tx: delete_user(tx, world.bob))
    assert all(s == 401 for s in dialects(running.port, "bob", "bob-pw").values())


def test_a_change_by_another_process_is_noticed_on_sqlite(live_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/oxsync.db"
    server_store, cli_store = make_store(url), make_store(url)  # the CLI: its own engine, no listeners
    from tests.world import build_world

    world = build_world(cli_store)
    running = live_server(server_store, setup=install_all, auth={"account_poll_seconds": 3600.0})
    poll = running.service.getServiceNamed("account-poll")
    assert ok(dialects(running.port, "alice", "alice-pw"))
    running.call(poll.poll)  # the timer's next turn, run now
    change(cli_store, world, lambda tx: accounts.update_user(tx, world.alice, active=False))
    assert ok(dialects(running.port, "alice", "alice-pw"))  # not noticed yet: no timer turn ...
    running.call(poll.poll)
    assert refused(dialects(running.port, "alice", "alice-pw"))  # ... noticed at the next one
    cli_store.dispose()
    server_store.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_suspension_on_one_node_applies_on_the_other(live_server, store, store_url, world) -> None:  # type: ignore[no-untyped-def]
    from tests.test_two_nodes import wait_listening

    other_store = make_store(store_url)
    a = live_server(store, setup=install_all)
    b = live_server(other_store, setup=install_all)
    wait_listening(a)
    wait_listening(b)
    verified_b = b.service.site.context.authenticator.verified
    assert ok(dialects(b.port, "alice", "alice-pw")) and len(verified_b) == 3
    generation = verified_b.generation
    change(store, world, lambda tx: accounts.update_user(tx, world.alice, active=False))  # via node A's store
    # LISTEN/NOTIFY is asynchronous: wait for the notice (bounded, generous for a loaded machine)
    assert wait_until(lambda: verified_b.generation != generation, 60), "node B never heard of the suspension"
    assert len(verified_b) == 0
    assert refused(dialects(b.port, "alice", "alice-pw"))
    other_store.dispose()


def test_identical_concurrent_checks_share_one_hash() -> None:
    started: list[Deferred[bool]] = []

    def verify(stored_hash: str | None, password: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        started.append(d)
        return d

    checks = SingleFlightChecks(verify)
    results: list[bool] = []
    for _ in range(8):
        checks.check("$argon2id$h", "pw").addCallback(results.append)
    checks.check("$argon2id$h", "other").addCallback(results.append)
    assert len(started) == 2 and checks.hashes == 2
    started[0].callback(True)
    started[1].callback(False)
    assert results == [True] * 8 + [False]
    checks.check("$argon2id$h", "pw")  # a later check is a new flight (the cache answers repeats)
    assert checks.hashes == 3


def test_logins_hash_once_on_the_hash_pool(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    threads: list[str] = []
    original = store.verify_password

    def recording(stored_hash: str | None, password: str) -> bool:
        threads.append(threading.current_thread().name)
        return original(stored_hash, password)

    store.verify_password = recording  # type: ignore[method-assign]
    running = live_server(store, setup=install_all)
    statuses: list[int] = []
    lock = threading.Lock()

    def device() -> None:
        status = http_request(running.port, "OPTIONS", "/Microsoft-Server-ActiveSync", auth=("carol", "carol-pw"))[0]
        with lock:
            statuses.append(status)

    devices = [threading.Thread(target=device) for _ in range(8)]
    for t in devices:
        t.start()
    for t in devices:
        t.join(30)
    assert statuses == [200] * 8
    assert running.service.site.context.authenticator.checks.hashes == 1 and len(threads) == 1
    assert threads[0].startswith("PoolThread-oxsync-hash")  # neither the reactor nor a store thread


def test_devices_arriving_with_one_login_are_one_attempt_for_the_throttle(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    """30 devices of one user behind one address arrive together with new credentials: more than the
    per-user and per-address pending limits, yet one login attempt (one hash), so none is throttled;
    a burst of different wrong passwords is still held back."""
    gate = threading.Event()
    original = store.verify_password

    def held(stored_hash: str | None, password: str) -> bool:
        gate.wait(30)  # keep the first check in flight until every device has arrived
        return original(stored_hash, password)

    store.verify_password = held  # type: ignore[method-assign]
    running = live_server(store, setup=install_all, auth={"max_failures_per_user": 3, "max_failures_per_address": 5})
    authenticator = running.service.site.context.authenticator
    statuses: list[int] = []
    lock = threading.Lock()

    def device(password: str) -> None:
        status = http_request(running.port, "OPTIONS", "/Microsoft-Server-ActiveSync", auth=("carol", password))[0]
        with lock:
            statuses.append(status)

    devices = [threading.Thread(target=device, args=("carol-pw",)) for _ in range(30)]
    for t in devices:
        t.start()
    assert wait_until(lambda: sum(len(w) for w in authenticator._attempts.values()) == 29, 30)  # noqa: SLF001
    gate.set()
    for t in devices:
        t.join(30)
    assert statuses == [200] * 30 and authenticator.checks.hashes == 1

    statuses.clear()
    guesses = [threading.Thread(target=device, args=(f"guess-{n}",)) for n in range(8)]
    for t in guesses:
        t.start()
    for t in guesses:
        t.join(30)
    assert statuses.count(429) >= 4, statuses  # at most 3 distinct guesses of one login in flight


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_tenant_rename_reaches_every_node(live_server, store, store_url, world) -> None:  # type: ignore[no-untyped-def]
    """`oxsync tenant rename` works on a bare connection, not a Tx: it still tells every node."""
    from oxsync.store import relabel
    from tests.test_two_nodes import wait_listening

    node = live_server(store, setup=install_all)
    wait_listening(node)
    verified = node.service.site.context.authenticator.verified
    assert ok(dialects(node.port, "alice@example.com", "alice-pw")) and len(verified) == 3
    generation = verified.generation
    cli_store = make_store(store_url)  # another process's store
    relabel.in_write_transaction(cli_store, relabel.rename_tenant, "example.com", "example.org")
    assert wait_until(lambda: verified.generation != generation, 60), "the node never heard of the rename"
    assert all(s == 401 for s in dialects(node.port, "alice@example.com", "alice-pw").values())
    assert ok(dialects(node.port, "alice@example.org", "alice-pw"))
    cli_store.dispose()
