"""Live servers for protocol tests: the global reactor in a daemon thread, services on ephemeral ports.

Usage in a test module (fixtures `reactor` and `live_server` come from conftest):

    def test_x(live_server, store):
        running = live_server(store, setup=oxsync.eas.install)   # real HTTP on 127.0.0.1:running.port
        status, headers, body = http_request(running.port, "GET", "/health")
"""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import blockingCallFromThread

from oxsync.server import OxsyncService


@dataclass
class Running:
    service: OxsyncService
    port: int
    reactor: Any

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` on the reactor thread (waiting for a Deferred result)."""
        return blockingCallFromThread(self.reactor, fn, *args)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def http_request(port: int, method: str, path: str, *, auth: tuple[str, str] | None = None, body: bytes | str | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One real HTTP request over loopback; returns (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    all_headers = dict(headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        all_headers["Authorization"] = f"Basic {token}"
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_until(predicate: Callable[[], object], seconds: float = 10.0) -> bool:
    """Poll `predicate` until it holds or `seconds` pass (a bounded wait for an asynchronous event, such
    as a NOTIFY from another node); returns whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
