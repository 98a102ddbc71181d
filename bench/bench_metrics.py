"""What counting into the Prometheus registry costs per request (docs/metrics.md), beside a request.

Every answered HTTP request runs `classify` (dialect and command from the path) and `observe_request`
(a counter, maybe an error counter, a histogram); every store unit of work records its pool wait. Prints
microseconds per call, and the same for a real `GET /health` over loopback for scale. No peer: Radicale
and SOGo export no Prometheus metrics. Run: python -m bench.bench_metrics
"""

from __future__ import annotations

import http.client
import tempfile
import threading
import time
from collections.abc import Callable

from oxsync import metrics
from oxsync.config import Settings, StoreSettings, apply_overrides
from oxsync.server import classify, make_service
from oxsync.store.api import Store

ROUNDS = 20_000


class FakeRequest:
    path = b"/Microsoft-Server-ActiveSync"
    method = b"POST"
    metrics_command = "Sync"


def per_call(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1e6


def health_request_us(rounds: int = 300) -> float:
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread

    with tempfile.TemporaryDirectory() as tmp:
        settings = apply_overrides(Settings(store=StoreSettings(url=f"sqlite:///{tmp}/db.sqlite")),
                                   {"server": {"http_endpoint": "tcp:0:interface=127.0.0.1", "udp_port": 0}})
        store = Store(settings)
        store.create_schema()
        service = make_service(settings, store, reactor)
        threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True).start()

        def go():  # type: ignore[no-untyped-def]
            service.startService()
            return service.when_listening()

        port = blockingCallFromThread(reactor, go)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        start = time.perf_counter()
        for _ in range(rounds):
            conn.request("GET", "/health")
            conn.getresponse().read()
        elapsed = (time.perf_counter() - start) / rounds * 1e6
        conn.close()
        blockingCallFromThread(reactor, service.stopService)
        reactor.callFromThread(reactor.stop)
        store.dispose()
    return elapsed


def main() -> None:
    request = FakeRequest()
    rows = [
        ("classify (dialect, command)", per_call(lambda: classify(request))),  # type: ignore[arg-type]
        ("observe_request (counter + histogram)", per_call(lambda: metrics.observe_request("eas", "Sync", 200, 0.012))),
        ("store pool wait (histogram + gauge)", per_call(lambda: (metrics.STORE_POOL_QUEUED.inc(),
                                                                   metrics.STORE_POOL_WAIT_SECONDS.observe(0.0004),
                                                                   metrics.STORE_POOL_QUEUED.dec()))),
        ("scrape /metrics (whole registry)", per_call(metrics.scrape, 500)),
    ]
    health = health_request_us()
    print(f"{'operation':42} {'us/call':>10}")
    for name, us in rows:
        print(f"{name:42} {us:10.2f}")
    per_request = rows[0][1] + rows[1][1] + rows[2][1]
    print(f"{'GET /health over loopback (for scale)':42} {health:10.2f}")
    print(f"metrics per request: {per_request:.2f} us = {100 * per_request / health:.2f}% of the cheapest request")


if __name__ == "__main__":
    main()
