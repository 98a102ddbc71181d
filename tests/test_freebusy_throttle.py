"""The OX free/busy servlet needs no credentials and tells whether an address exists: it is throttled
per client address, unknown addresses more tightly (issue 10 §3)."""

from __future__ import annotations

from oxsync.ox import install
from oxsync.web.ratelimit import RateLimiter
from tests.live import http_request
from tests.oxclient import OX_SERVER


def freebusy(port: int, user: str) -> tuple[int, dict[str, str]]:
    status, headers, _ = http_request(port, "GET", f"/servlet/webdav.freebusy?username={user}&server=example.com")
    return status, headers


def test_guessing_addresses_is_throttled_per_address(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER,
                          ox={"freebusy_max_unknown_per_address_per_minute": 3,
                              "freebusy_max_requests_per_address_per_minute": 8})
    assert [freebusy(running.port, f"nobody{n}")[0] for n in range(3)] == [404] * 3
    status, headers = freebusy(running.port, "alice")  # after 3 misses even a real address waits
    assert status == 429 and int(headers["retry-after"]) > 0


def test_requests_per_address_are_capped(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install, server=OX_SERVER,
                          ox={"freebusy_max_requests_per_address_per_minute": 5})
    assert [freebusy(running.port, "alice")[0] for _ in range(5)] == [200] * 5
    assert freebusy(running.port, "alice")[0] == 429


def test_the_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(2, max_keys=2, clock=lambda: now[0])
    limiter.hit("a")
    now[0] = 30.0
    limiter.hit("a")
    assert limiter.retry_after("a") == 30 and limiter.retry_after("b") == 0
    now[0] = 60.0
    assert limiter.retry_after("a") == 0  # the first hit left the minute
    limiter.hit("b")
    limiter.hit("c")  # memory is bounded: the oldest key is forgotten
    assert limiter.retry_after("a") == 0 and len(limiter._times) == 2
