"""Prometheus metrics on the admin listener: scraped over real HTTP after real traffic of every dialect.

Counters are process-wide (one registry), so each test reads them before and after and checks the delta.
docs/metrics.md lists every metric the registry exports.
"""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oxsync.dialects import install_all
from oxsync.model import Contact, Module
from tests.eas_client import client
from tests.live import http_request
from tests.oxclient import OX_SERVER, OxClient, UdpClient

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ADMIN = {**OX_SERVER, "admin_endpoint": "tcp:0:interface=127.0.0.1"}


def scrape(running) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    port = running.service.admin.port.getHost().port
    status, headers, body = http_request(port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    """Sum over every label set that contains `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


@SQLITE_ONLY
def test_counters_move_with_real_traffic(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=ADMIN, ox={"push_coalesce_seconds": 0.0},
                          eas={"min_heartbeat_seconds": 1})
    before = scrape(running)

    phone = client(running)
    phone.provision()
    contacts = phone.folder_of_type(9)
    phone.sync(contacts, "0")
    phone.sync(contacts)
    status, _, _ = http_request(running.port, "PROPFIND", "/dav/calendars/alice/", auth=("alice", "alice-pw"),
                                headers={"Depth": "1"})
    assert status == 207
    assert http_request(running.port, "GET", "/dav/calendars/alice/", auth=("alice", "wrong-pw"))[0] == 401
    ox = OxClient(running.port, "alice", "alice-pw")
    ox.propfind("folders", {"lastsync": 0})
    sock = UdpClient(running.service.ox_push.bound_port)
    try:
        assert sock.register(world.alice, world.tenant_id) == b"OK\x01"
        parked = scrape(running)
        from oxsync.eas.wbxml import E

        body = E("Ping:Ping", E("Ping:HeartbeatInterval", "600"),
                 E("Ping:Folders", E("Ping:Folder", E("Ping:Id", contacts), E("Ping:Class", "Contacts"))))
        result: dict[str, object] = {}
        thread = threading.Thread(target=lambda: result.setdefault("reply", phone.post("Ping", body)))
        thread.start()
        for _ in range(500):
            if len(running.service.eas.parked):
                break
            threading.Event().wait(0.01)
        during = scrape(running)
        with world.as_user(world.alice, write=True) as session:
            session.create_object(int(contacts), Contact(first_name="Metered"))
        thread.join(30)
        assert result["reply"].text("Ping:Status") == "2"  # type: ignore[attr-defined]
        assert sock.recv() == f"{world.default_folder(world.alice, Module.CONTACT)}\x01".encode()
    finally:
        sock.close()
    after = scrape(running)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("oxsync_http_requests_total", dialect="eas", command="Sync") >= 2
    assert moved("oxsync_http_requests_total", dialect="eas", command="Ping") == 1
    assert moved("oxsync_http_requests_total", dialect="dav", command="PROPFIND", status="2xx") >= 1
    assert moved("oxsync_http_requests_total", dialect="ox") >= 1
    assert moved("oxsync_http_request_seconds_count", dialect="eas", command="Provision") >= 1
    assert moved("oxsync_login_checks_total", result="ok") >= 1
    assert moved("oxsync_login_checks_total", result="failed") == 1
    assert moved("oxsync_store_pool_wait_seconds_count") >= 3
    assert moved("oxsync_push_latency_seconds_count", channel="eas") == 1
    assert moved("oxsync_push_latency_seconds_count", channel="udp") == 1
    assert moved("oxsync_ox_push_packets_total", kind="ack") == 1
    assert moved("oxsync_ox_push_packets_total", kind="notify") >= 1
    assert value(during, "oxsync_eas_parked_requests") - value(parked, "oxsync_eas_parked_requests") == 1
    assert value(after, "oxsync_eas_parked_requests") == value(parked, "oxsync_eas_parked_requests")
    assert value(parked, "oxsync_ox_push_registrations") - value(before, "oxsync_ox_push_registrations") == 1
    assert value(after, "oxsync_listener_up", listener="admin") == 1
    assert value(after, "oxsync_listener_up", listener="udp-push") == 1


@SQLITE_ONLY
def test_throttled_logins_are_counted(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=ADMIN, auth={"max_failures_per_user": 1})
    before = scrape(running)
    for _ in range(3):
        http_request(running.port, "PROPFIND", "/dav/calendars/alice/", auth=("alice", "nope"))
    after = scrape(running)
    assert total(after, "oxsync_login_throttled_total") - total(before, "oxsync_login_throttled_total") >= 1
    assert total(after, "oxsync_http_requests_total", dialect="dav", status="4xx") - \
        total(before, "oxsync_http_requests_total", dialect="dav", status="4xx") == 3


def test_command_labels_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from oxsync import metrics

    monkeypatch.setattr(metrics, "_known_commands", set())  # the process-wide set stays as it was
    assert metrics.bounded_label("Sync") == "Sync"
    assert metrics.bounded_label("<script>") == "other"
    assert metrics.bounded_label("x" * 100) == "other"
    for i in range(metrics._MAX_COMMANDS + 10):
        metrics.bounded_label(f"Junk{i}")
    assert metrics.bounded_label("NeverSeenBefore") == "other"


@SQLITE_ONLY
def test_no_admin_listener_unless_configured(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=OX_SERVER)
    assert running.service.admin is None
    assert http_request(running.port, "GET", "/metrics")[0] == 404


def test_items_skipped_as_unrenderable_are_exported() -> None:
    """The per-item isolation helper's counter reaches /metrics (the assembly registers the listener)."""
    import oxsync.server  # noqa: F401 - the assembly wires oxsync.render to the registry
    from oxsync import metrics
    from oxsync.render import render_each

    def read() -> float:
        return metrics.REGISTRY.get_sample_value("oxsync_items_skipped_total", {"dialect": "dav"}) or 0.0

    before = read()

    def render(obj: int) -> str:
        if obj == 2:
            raise ValueError("cannot render")
        return str(obj)

    assert list(render_each("dav", [1, 2, 3], render)) == ["1", "3"]
    assert read() - before == 1


def test_every_metric_is_in_the_docs_table() -> None:
    """docs/metrics.md has one row per metric the registry exports (a counter under its `_total` name),
    and no row for a metric that is gone."""
    from pathlib import Path

    from oxsync import metrics

    table = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(oxsync_\w+)` \|", table, re.MULTILINE))
    exported = {family.name + ("_total" if family.type == "counter" else "") for family in metrics.REGISTRY.collect()}
    assert exported == documented, (sorted(exported - documented), sorted(documented - exported))
