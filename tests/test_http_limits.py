"""Slow and oversized clients (issue 10 §3): header-read timeout (408), per-address connection cap
(503), oversized request lines (414) and header blocks (431). The timeout is checked with
`task.Clock`; the rest with real sockets on loopback."""

from __future__ import annotations

import socket

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import Site

from oxsync.web.limits import ConnectionCounts, LimitedHTTPChannel, LimitedRequest


def channel_on(clock: Clock, counts: ConnectionCounts | None = None, host: str = "192.0.2.7",
               timeout: float = 20.0) -> tuple[LimitedHTTPChannel, StringTransport]:
    channel = LimitedHTTPChannel()
    channel.requestFactory = LimitedRequest
    channel.site = Site(Resource())
    channel.callLater = clock.callLater  # type: ignore[method-assign]
    channel.header_timeout = timeout
    channel.connections = counts
    channel.max_per_address = 2
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    channel.makeConnection(transport)
    return channel, transport


def test_headers_trickled_slowly_get_408_at_the_deadline() -> None:
    clock = Clock()
    channel, transport = channel_on(clock)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(19):  # a byte a second resets Twisted's idle timeout, not ours
        clock.advance(1)
        channel.dataReceived(b"X")
    assert not transport.disconnecting and transport.value() == b""
    clock.advance(1.5)
    assert transport.value().startswith(b"HTTP/1.1 408 ") and transport.disconnecting


def test_an_idle_connection_is_closed_without_an_answer() -> None:
    clock = Clock()
    channel, transport = channel_on(clock)
    clock.advance(20.5)
    assert transport.disconnecting and transport.value() == b""


def test_complete_headers_stop_the_clock() -> None:
    clock = Clock()
    channel, transport = channel_on(clock)
    channel.dataReceived(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 404 ")  # answered; kept alive for the next request
    transport.clear()
    clock.advance(19)
    channel.dataReceived(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")  # the next request's own deadline
    assert transport.value().startswith(b"HTTP/1.1 404 ") and not transport.disconnecting


def test_connections_per_address_are_capped_and_released() -> None:
    clock, counts = Clock(), ConnectionCounts()
    first = [channel_on(clock, counts) for _ in range(2)]
    third, transport = channel_on(clock, counts)
    assert transport.value().startswith(b"HTTP/1.1 503 ") and transport.disconnecting
    other, other_transport = channel_on(clock, counts, host="192.0.2.8")  # another address is unaffected
    assert other_transport.value() == b""
    third.connectionLost(None)
    first[0][0].connectionLost(None)
    assert counts["192.0.2.7"] == 1
    _, again = channel_on(clock, counts)
    assert again.value() == b""


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def test_oversized_request_line_and_headers_over_loopback(live_server, store) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store)
    assert raw(running.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    many = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"v" * 1000) for n in range(70))
    assert raw(running.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431 ")
    huge = b"X-Huge: " + b"v" * 80_000  # one line past the whole limit, never ended
    assert raw(running.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + huge).startswith(b"HTTP/1.1 431 ")
    assert raw(running.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200 ")


def test_slow_clients_and_connection_cap_over_loopback(live_server, store) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, limits={"max_connections_per_address": 3, "header_read_timeout_seconds": 0.3})
    slow = [socket.create_connection(("127.0.0.1", running.port), timeout=30) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and never the end of the headers
        # each slow client is answered 408 and closed at its deadline (we wait for that, not for a time)
        for sock in slow:
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in slow:
            sock.close()
    assert raw(running.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200 ")
    held = [socket.create_connection(("127.0.0.1", running.port), timeout=30) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")  # served, then kept alive
        assert raw(running.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
