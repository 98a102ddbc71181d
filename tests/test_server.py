"""The runtime skeleton over real loopback HTTP: auth, throttling, body limits, health, bus, logs.

The global reactor runs in a daemon thread for the whole session; each test starts its own service on
an ephemeral port (with its own settings) against one shared SQLite store, and talks to it with
`http.client` from the test thread.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import io
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.config import AuthSettings, Settings, StoreSettings
from oxsync.logs import JsonFormatter
from oxsync.model import Module, Protocol
from oxsync.model.folder import PRIVATE_ROOT
from oxsync.push.bus import Change, ChangeBus
from oxsync.server import OxsyncService
from oxsync.store import accounts
from oxsync.store.api import Store
from oxsync.web import send_text
from oxsync.web.auth import Authenticator, LoginThrottle, parse_basic
from tests.live import Running

PASSWORD = "s3cr3t-Hunter2"
WRONG = "Wr0ng-Guess-XyZ"


# ---------------------------------------------------------------- fixtures


@dataclass
class Accounts:
    store: Store
    tenant_id: int
    alice: int


@pytest.fixture(scope="module")
def server_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    tmp = tmp_path_factory.mktemp("server")
    store = Store(Settings(store=StoreSettings(url=f"sqlite:///{tmp}/db.sqlite", thread_pool_size=4)))
    store.create_schema()
    tenant = store.create_tenant("example.com")
    with store.transaction(tenant.id, write=True) as tx:
        alice = accounts.create_user(tx, "alice", PASSWORD, protocols=list(Protocol))
        accounts.create_user(tx, "bob", PASSWORD, protocols=[Protocol.DAV])
        carol = accounts.create_user(tx, "carol", PASSWORD)
        accounts.update_user(tx, carol.id, active=False)
        accounts.create_user(tx, "dave", PASSWORD)
    yield Accounts(store, tenant.id, alice.id)
    store.dispose()


class Protected(Resource):
    """Demo dialect resource: GET greets the principal; POST echoes the body length."""

    isLeaf = True

    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self.authenticator = authenticator

    def render_GET(self, request: Request) -> object:
        d = self.authenticator.authenticate(request, Protocol.MOBILE)
        d.addCallback(lambda p: p and send_text(request, 200, f"hello {p.login}"))
        return NOT_DONE_YET


class Echo(Resource):
    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        return b"%d" % len(request.content.read())


@pytest.fixture
def serve(live_server: Callable[..., Running], server_store: Accounts) -> Callable[..., Running]:
    """Start a server with two demo dialect resources (protected, echo) on the shared store."""

    def start(**sections: dict[str, Any]) -> Running:
        def setup(service: OxsyncService) -> None:
            service.site.root.register("protected", Protected(service.site.context.authenticator))
            service.site.root.register("echo", Echo())

        return live_server(server_store.store, setup=setup, **sections)

    return start


def request(port: int, method: str, path: str, *, auth: tuple[str, str] | None = None,
            body: Any = None, headers: dict[str, str] | None = None,
            chunked: bool = False) -> tuple[int, http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdrs = dict(headers or {})
    if auth is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request(method, path, body=body, headers=hdrs, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- root, health


def test_root_and_health(serve: Callable[..., Running]) -> None:
    srv = serve()
    status, _, body = request(srv.port, "GET", "/")
    assert (status, body) == (200, b"oxsync\n")
    status, response, body = request(srv.port, "GET", "/health")
    assert status == 200 and response.getheader("Content-Type") == "application/json"
    data = json.loads(body)
    assert data["status"] == "ok" and data["store"] == "ok" and data["revision_check_ms"] >= 0
    assert request(srv.port, "GET", "/no-such-thing")[0] == 404


def test_health_503_when_store_query_fails(serve: Callable[..., Running]) -> None:
    srv = serve()
    pool = srv.service.async_store

    def broken() -> float:
        raise OSError("database unreachable")

    pool.ping = lambda: pool.run(broken)  # type: ignore[method-assign]
    status, _, body = request(srv.port, "GET", "/health")
    assert status == 503 and json.loads(body)["store"] == "error"


def test_register_refuses_duplicates(serve: Callable[..., Running]) -> None:
    srv = serve()
    with pytest.raises(ValueError):
        srv.service.site.root.register("health", Resource())


# ---------------------------------------------------------------- authentication


def test_missing_and_wrong_credentials_get_401_challenge(serve: Callable[..., Running]) -> None:
    srv = serve()
    for auth in (None, ("alice", WRONG), ("nobody", WRONG)):
        status, response, _ = request(srv.port, "GET", "/protected", auth=auth)
        assert status == 401, auth
        assert response.getheader("WWW-Authenticate") == 'Basic realm="oxsync"'
    status, response, _ = request(srv.port, "GET", "/protected", headers={"Authorization": "Basic !!!"})
    assert status == 401


def test_good_credentials(serve: Callable[..., Running]) -> None:
    srv = serve()
    assert request(srv.port, "GET", "/protected", auth=("alice", PASSWORD))[::2] == (200, b"hello alice")
    assert request(srv.port, "GET", "/protected", auth=("Alice@Example.com", PASSWORD))[::2] == (200, b"hello alice")


def test_suspended_and_protocol_not_enabled_get_403_with_reason(serve: Callable[..., Running]) -> None:
    srv = serve()
    status, response, body = request(srv.port, "GET", "/protected", auth=("carol", PASSWORD))
    assert status == 403 and b"suspended" in body and response.getheader("WWW-Authenticate") is None
    status, _, body = request(srv.port, "GET", "/protected", auth=("bob", PASSWORD))
    assert status == 403 and b"not enabled for mobile" in body
    # a wrong password never reveals the account state
    assert request(srv.port, "GET", "/protected", auth=("carol", WRONG))[0] == 401
    assert request(srv.port, "GET", "/protected", auth=("bob", WRONG))[0] == 401


# ---------------------------------------------------------------- throttling


def _counting_authenticate(srv: Running) -> list[str]:
    calls: list[str] = []
    pool = srv.service.async_store
    original = pool.login_record

    def counted(login: str) -> Any:
        calls.append(login)
        return original(login)

    pool.login_record = counted  # type: ignore[method-assign]
    return calls


def test_verified_logins_spare_the_hash_but_never_cache_failures(serve: Callable[..., Running]) -> None:
    srv = serve()
    calls = _counting_authenticate(srv)
    for _ in range(3):
        assert request(srv.port, "GET", "/protected", auth=("alice", PASSWORD))[0] == 200
    assert calls == ["alice"]  # the password hash was checked once
    assert request(srv.port, "GET", "/protected", auth=("alice", WRONG))[0] == 401
    assert request(srv.port, "GET", "/protected", auth=("alice", WRONG))[0] == 401
    assert calls == ["alice", "alice", "alice"]  # every wrong password reaches the store (and the throttle)
    uncached = serve(auth={"verified_login_cache_seconds": 0})
    uncached_calls = _counting_authenticate(uncached)
    for _ in range(2):
        assert request(uncached.port, "GET", "/protected", auth=("alice", PASSWORD))[0] == 200
    assert uncached_calls == ["alice", "alice"]


def test_throttle_per_user_checked_before_password(serve: Callable[..., Running]) -> None:
    srv = serve(auth={"max_failures_per_user": 3, "max_failures_per_address": 100,
                      "failed_login_window_seconds": 60})
    calls = _counting_authenticate(srv)
    for _ in range(3):
        assert request(srv.port, "GET", "/protected", auth=("alice", WRONG))[0] == 401
    assert len(calls) == 3
    status, response, _ = request(srv.port, "GET", "/protected", auth=("alice", PASSWORD))
    assert status == 429 and 0 < int(response.getheader("Retry-After")) <= 60
    assert request(srv.port, "GET", "/protected", auth=("ALICE", WRONG))[0] == 429
    assert len(calls) == 3, "a throttled attempt must not reach the password check"
    # other accounts from the same address are unaffected
    assert request(srv.port, "GET", "/protected", auth=("dave", PASSWORD))[0] == 200


def test_throttle_counts_attempts_in_flight(serve: Callable[..., Running]) -> None:
    """A burst of parallel guesses cannot all pass the check before the first one fails."""
    srv = serve(auth={"max_failures_per_user": 3, "max_failures_per_address": 100,
                      "failed_login_window_seconds": 60})
    calls = _counting_authenticate(srv)
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(password: str) -> None:
        status = request(srv.port, "GET", "/protected", auth=("alice", password))[0]
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(f"{WRONG}{n}",)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(statuses) == 12 and set(statuses) <= {401, 429}
    assert statuses.count(401) <= 3 and len(calls) <= 3


def test_throttle_per_address_not_reset_by_success(serve: Callable[..., Running]) -> None:
    srv = serve(auth={"max_failures_per_user": 100, "max_failures_per_address": 3,
                      "failed_login_window_seconds": 60})
    assert request(srv.port, "GET", "/protected", auth=("x1", WRONG))[0] == 401
    assert request(srv.port, "GET", "/protected", auth=("x2", WRONG))[0] == 401
    assert request(srv.port, "GET", "/protected", auth=("dave", PASSWORD))[0] == 200
    assert request(srv.port, "GET", "/protected", auth=("x3", WRONG))[0] == 401
    status, response, _ = request(srv.port, "GET", "/protected", auth=("alice", PASSWORD))
    assert status == 429 and int(response.getheader("Retry-After")) > 0  # a login not yet verified waits
    assert request(srv.port, "GET", "/protected")[0] == 429  # even without credentials
    # a device that already proved its password is not locked out by someone else's failures
    assert request(srv.port, "GET", "/protected", auth=("dave", PASSWORD))[0] == 200


def test_login_throttle_window_slides_and_memory_is_bounded() -> None:
    now = [1000.0]
    throttle = LoginThrottle(
        AuthSettings(failed_login_window_seconds=10, max_failures_per_user=2, max_failures_per_address=50),
        clock=lambda: now[0], max_keys=5,
    )
    throttle.record_failure("Alice", "10.0.0.1")
    now[0] += 4
    throttle.record_failure("alice", "10.0.0.1")
    assert throttle.retry_after("alice", "10.0.0.2") == 6
    now[0] += 6
    assert throttle.retry_after("alice", "10.0.0.2") == 0  # the first failure left the window
    for i in range(50):
        throttle.record_failure(f"user{i}", f"10.1.0.{i}")
    assert throttle.tracked_keys() <= 10
    now[0] += 11
    throttle.record_failure("late", "10.9.9.9")
    assert throttle.tracked_keys() == 2  # expired keys are dropped
    throttle.begin("bob", "10.0.0.3")
    throttle.begin("bob", "10.0.0.3")
    assert throttle.retry_after("bob", "10.0.0.4") > 0  # two in flight fill bob's limit of 2
    throttle.end("bob", "10.0.0.3", failed=None)
    throttle.end("bob", "10.0.0.3", failed=None)
    assert throttle.retry_after("bob", "10.0.0.4") == 0


def test_parse_basic() -> None:
    enc = base64.b64encode("zoë@example.com:pa:ss".encode()).decode()
    assert parse_basic(f"Basic {enc}".encode()) == ("zoë@example.com", "pa:ss")
    assert parse_basic(b"Bearer abc") is None
    assert parse_basic(b"Basic " + base64.b64encode(b"nocolon")) is None
    assert parse_basic(None) is None


# ---------------------------------------------------------------- body limits


def test_body_limit_content_length(serve: Callable[..., Running]) -> None:
    srv = serve(limits={"max_request_body_bytes": 1024})
    assert request(srv.port, "POST", "/echo", body=b"x" * 1024)[::2] == (200, b"1024")
    status, response, body = request(srv.port, "POST", "/echo", body=b"x" * 5000)
    assert status == 413 and b"1024" in body and response.getheader("Connection") == "close"


def test_body_limit_chunked(serve: Callable[..., Running]) -> None:
    srv = serve(limits={"max_request_body_bytes": 1024})
    status, _, body = request(srv.port, "POST", "/echo", body=iter([b"a" * 500, b"b" * 500]), chunked=True)
    assert (status, body) == (200, b"1000")
    status, _, _ = request(srv.port, "POST", "/echo", body=iter([b"c" * 500] * 8), chunked=True)
    assert status == 413


def test_body_limit_refuses_before_reading_the_body(serve: Callable[..., Running]) -> None:
    """A huge declared length gets 413 at once (no 100 Continue, nothing buffered)."""
    srv = serve(limits={"max_request_body_bytes": 1024})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ")


# ---------------------------------------------------------------- bus and reactor


def test_bus_receives_publish_after_store_write(serve: Callable[..., Running], server_store: Accounts) -> None:
    srv = serve()
    received: list[Change] = []
    srv.call(lambda: srv.service.bus.subscribe(received.append) and None)
    folder = srv.call(lambda: srv.service.async_store.write(
        server_store.tenant_id, server_store.alice,
        lambda s: s.create_folder(PRIVATE_ROOT, "Bus test", Module.CALENDAR)))
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert received and received[0].tenant_id == server_store.tenant_id
    assert folder.folder.id in received[0].folder_ids and received[0].revision > 0


def test_bus_isolates_failing_subscribers() -> None:
    bus = ChangeBus()
    seen: list[int] = []

    def boom(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(boom)
    unsubscribe = bus.subscribe(lambda c: seen.append(c.revision))
    bus.publish(1, [5], 7)
    unsubscribe()
    bus.publish(1, [5], 8)
    assert seen == [7] and len(bus) == 1


def test_slow_store_call_does_not_block_the_reactor(serve: Callable[..., Running]) -> None:
    """A store call that cannot finish until we let it (an Event, not a sleep) holds a store thread;
    the reactor must answer meanwhile. Ordered by construction, no timing compared."""
    srv = serve()
    started, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(30)
        done.set()

    srv.call(lambda: srv.service.async_store.run(slow).addErrback(lambda f: None) and None)
    assert started.wait(10)
    assert request(srv.port, "GET", "/")[0] == 200
    assert not done.is_set()  # the store call is still running: the answer did not wait for it
    release.set()
    assert done.wait(10)


# ---------------------------------------------------------------- logs


def test_logs_are_json_and_never_contain_passwords(serve: Callable[..., Running]) -> None:
    srv = serve()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        request(srv.port, "GET", "/protected", auth=("alice", WRONG))
        request(srv.port, "GET", "/protected", auth=("alice", PASSWORD))
        request(srv.port, "GET", "/protected", auth=("carol", PASSWORD))
        request(srv.port, "GET", f"/?user=alice&password={PASSWORD}")
        logging.getLogger("oxsync.test").info("extra", extra={"password": PASSWORD})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = out.getvalue()
    for secret in (PASSWORD, WRONG, base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
                   base64.b64encode(f"alice:{WRONG}".encode()).decode()):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    failed = [r for r in lines if r.get("event") == "auth.failed"]
    assert len(failed) == 1 and failed[0]["login"] == "alice" and failed[0]["address"] == "127.0.0.1"
    refused = [r for r in lines if r.get("event") == "auth.refused"]
    assert refused and refused[0]["reason"] == "account suspended"
    access = [r for r in lines if r.get("event") == "http.access"]
    assert {r["status"] for r in access} >= {200, 401, 403}
    assert any(r["uri"] == "/?[redacted]" for r in access)
    assert any(r.get("login") == "alice" and r["status"] == 200 for r in access)


# ---------------------------------------------------------------- TLS


def _self_signed(tmp: Any) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_path, cert_path = tmp / "key.pem", tmp / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def test_tls_endpoint_string(serve: Callable[..., Running], tmp_path: Any) -> None:
    key, cert = _self_signed(tmp_path)
    srv = serve(server={"http_endpoint": f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"})
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10, context=context)
    try:
        conn.request("GET", "/protected", headers={
            "Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello alice")
    finally:
        conn.close()


def test_collector_tuned_for_a_server_leaves_a_windows_objects_to_reference_counting() -> None:
    """`tune_collector` (run once the server has started): a burst of new container objects the size of an
    ActiveSync window's (rows, model objects, elements) starts no collection, where Python's default
    threshold of 700 ran about 20; what existed before is frozen out of every collection."""
    import gc

    from oxsync.server import tune_collector

    def collections_during_burst() -> int:
        runs: list[int] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                runs.append(info["generation"])
        gc.collect()
        gc.callbacks.append(count)
        try:
            burst = [{"n": i} for i in range(15_000)]
        finally:
            gc.callbacks.remove(count)
        assert len(burst) == 15_000
        return len(runs)

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, saved[1], saved[2])
        assert collections_during_burst() >= 15
        tune_collector(20_000)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (20_000, saved[1], saved[2])
        assert collections_during_burst() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
