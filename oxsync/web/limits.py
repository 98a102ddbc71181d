"""Limits of the HTTP channel: request body (413), request line (414) and header block (431), the time
to send the headers (408), and open connections per client address (503).

Body: 413 as soon as a body is known to exceed `max_request_body_bytes`.

twisted.web buffers a whole body (memory or temp file) before `render` runs, so the limit must act in
the channel. A declared `Content-Length` over the limit is refused when the headers end: no content
file is created and no `100 Continue` is sent. A chunked body is counted in `handleContentChunk` and
refused the moment it passes the limit. The refusal is written directly to the transport with
`Connection: close`; the rest of the body is read and discarded (bounded in bytes and time) so that
the client sees the 413 instead of a connection reset, then the connection is closed.

Slow clients: a connection that opened (or finished a response) must deliver a complete request line
and header block within `header_read_timeout_seconds`, however slowly it trickles bytes in (Twisted's
idle timeout is reset by every byte, so it cannot stop a slow sender). Oversized request lines and
header blocks get 414 / 431 answers instead of Twisted's bare 400 or a dropped connection. At most
`max_connections_per_address` connections per client IP are served at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

log = logging.getLogger("oxsync.web.limits")



class LimitedRequest(Request):
    """Counts body bytes as they arrive; also carries the principal and the start time for the log."""

    principal = None

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)
        self.started_at = time.monotonic()
        self.body_bytes = 0
        self.refused = False

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self.body_bytes += len(data)
        channel = self.channel
        if isinstance(channel, LimitedHTTPChannel) and self.body_bytes > channel.max_request_body_bytes:
            self.refused = True
            channel.refuse_body(self.body_bytes)
            return
        super().handleContentChunk(data)


class ConnectionCounts(Counter[str]):
    """Open connections per client address, shared by the channels of one Site; `open_total` over
    every address, told to `on_total` on each change (the serving processes' accept balance, listeners.py)."""

    open_total = 0
    on_total: Callable[[int], object] | None = None

    def __setitem__(self, address: str, count: int) -> None:
        self._moved(count - self.get(address, 0))
        super().__setitem__(address, count)

    def __delitem__(self, address: object) -> None:
        self._moved(-self[address] if isinstance(address, str) else 0)
        super().__delitem__(address)

    def _moved(self, by: int) -> None:
        if by:
            self.open_total += by
            if self.on_total is not None:
                self.on_total(self.open_total)


def _status_line(code: int, reason: str, text: str) -> bytes:
    body = (text + "\n").encode()
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (code, reason.encode(), len(body))) + body


class LimitedHTTPChannel(HTTPChannel):
    """HTTP/1.1 channel enforcing the limits above; the settings are set by the Site."""

    header_timeout: float = 20.0
    max_request_line: int = 8192
    max_header_bytes: int = 65536
    max_per_address: int = 256
    connections: ConnectionCounts | None = None
    _header_call: Any = None
    _address: str | None = None
    _answered = False
    _line_bytes = 0
    """A limit answer was written: everything the client still sends is ignored."""

    # -------------------------------------------------------------- connections and header time

    def connectionMade(self) -> None:
        super().connectionMade()
        # LineReceiver drops an over-long line silently; let it through so that we can answer 414/431
        self.MAX_LENGTH = self.max_request_line + self.max_header_bytes + 2
        self.totalHeadersSize = self.max_request_line + self.max_header_bytes + 2
        peer = self.transport.getPeer() if self.transport is not None else None
        self._address = str(getattr(peer, "host", "")) or None
        if self.connections is not None and self._address is not None:
            self.connections[self._address] += 1
            if self.connections[self._address] > self.max_per_address:
                log.warning("too many connections from one address", extra={
                    "event": "http.too_many_connections", "address": self._address, "limit": self.max_per_address})
                self._refuse(503, "Service Unavailable", "too many connections from your address")
                return
        self._start_header_timer()

    def _start_header_timer(self) -> None:
        if self.header_timeout > 0 and (self._header_call is None or not self._header_call.active()):
            self._header_call = self.callLater(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_call is not None and self._header_call.active():
            self._header_call.cancel()
        self._header_call = None

    def _headers_too_slow(self) -> None:
        self._header_call = None
        started = bool(self._receivedHeaderSize or getattr(self, "_buffer", b""))
        log.info("request headers too slow", extra={"event": "http.header_timeout", "address": self._address or "",
                                                     "started": started})
        if started:
            self._refuse(408, "Request Timeout", "the request headers took too long")
        else:  # an idle connection: nothing to answer
            self._answered = True
            self.timeoutConnection()

    def _refuse(self, code: int, reason: str, text: str) -> None:
        self._answered = True
        self._stop_header_timer()
        if self.transport is not None:
            self.transport.write(_status_line(code, reason, text))
        self.setTimeout(None)
        self.timeoutConnection()  # close now; abort if the client does not read (abortTimeout)

    def dataReceived(self, data: bytes) -> None:
        if self._answered:
            return
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._answered:
            return
        first = bool(getattr(self, "_HTTPChannel__first_line", 0))  # Twisted: no request line yet
        if first and line and len(line) > self.max_request_line:
            self._refuse(414, "URI Too Long", f"the request line exceeds {self.max_request_line} bytes")
            return
        if first:
            self._line_bytes = len(line)
        elif self._receivedHeaderSize - self._line_bytes + len(line) > self.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large", f"the headers exceed {self.max_header_bytes} bytes")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if getattr(self, "_HTTPChannel__first_line", 0):
            self._refuse(414, "URI Too Long", f"the request line exceeds {self.max_request_line} bytes")
        else:
            self._refuse(431, "Request Header Fields Too Large", f"a header line exceeds {self.max_header_bytes} bytes")

    def requestDone(self, request: Any) -> None:
        if self.persistent:
            self._start_header_timer()  # the next request's headers (cancelled if already buffered)
        super().requestDone(request)

    max_request_body_bytes: int = 32 * 1024 * 1024
    drain_seconds: float = 5.0
    """How long the rest of a refused body is read and discarded before the connection is closed."""
    drain_bytes: int = 1024 * 1024
    """At least this much of a refused body is discarded (more if the body limit is larger)."""
    _refused = False
    _drained = 0
    _drain_call = None
    _closing = False

    def allHeadersReceived(self) -> None:
        self._stop_header_timer()
        if self.length is not None and self.length > self.max_request_body_bytes:
            self.refuse_body(self.length)  # before gotLength/100-continue: nothing is allocated
            return
        super().allHeadersReceived()

    def refuse_body(self, size: int) -> None:
        """Answer 413 now and switch the connection to discard-then-close."""
        transport = self.transport
        if self._refused or transport is None:  # already refused, or no connection left to answer on
            return
        self._refused = True
        peer = transport.getPeer()
        path = getattr(self, "_path", b"").split(b"?", 1)[0]
        log.warning("request body too large", extra={
            "event": "http.body_too_large", "address": getattr(peer, "host", ""),
            "method": getattr(self, "_command", b"").decode("latin-1"), "path": path.decode("latin-1"),
            "size": size, "limit": self.max_request_body_bytes,
        })
        body = f"request body exceeds the limit of {self.max_request_body_bytes} bytes\n".encode()
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body
        )
        self.setTimeout(None)
        self._drain_call = self.callLater(self.drain_seconds, self._close_after_refusal)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drained += len(data)
            if self._drained > max(self.drain_bytes, self.max_request_body_bytes):
                self._close_after_refusal()
            return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._refused:  # the end of a refused chunked body: never dispatch it
            return
        super().allContentReceived()

    def _close_after_refusal(self) -> None:
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None
        if not self._closing and self.transport is not None and self.connected:
            self._closing = True
            self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_header_timer()
        if self.connections is not None and self._address is not None:
            self.connections[self._address] -= 1
            if self.connections[self._address] <= 0:
                del self.connections[self._address]
            self._address = None
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None
        super().connectionLost(reason)
