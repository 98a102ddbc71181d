"""Request body limit: 413 as soon as a body is known to exceed `max_request_body_bytes`.

twisted.web buffers a whole body (memory or temp file) before `render` runs, so the limit must act in
the channel. A declared `Content-Length` over the limit is refused when the headers end: no content
file is created and no `100 Continue` is sent. A chunked body is counted in `handleContentChunk` and
refused the moment it passes the limit. The refusal is written directly to the transport with
`Connection: close`; the rest of the body is read and discarded (bounded in bytes and time) so that
the client sees the 413 instead of a connection reset, then the connection is closed.
"""

from __future__ import annotations

import logging
import time

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


class LimitedHTTPChannel(HTTPChannel):
    """HTTP/1.1 channel enforcing the body limit; `max_request_body_bytes` is set by the Site."""

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
        if self.length is not None and self.length > self.max_request_body_bytes:
            self.refuse_body(self.length)  # before gotLength/100-continue: nothing is allocated
            return
        super().allHeadersReceived()

    def refuse_body(self, size: int) -> None:
        """Answer 413 now and switch the connection to discard-then-close."""
        if self._refused:
            return
        self._refused = True
        peer = self.transport.getPeer() if self.transport is not None else None
        path = getattr(self, "_path", b"").split(b"?", 1)[0]
        log.warning("request body too large", extra={
            "event": "http.body_too_large", "address": getattr(peer, "host", ""),
            "method": getattr(self, "_command", b"").decode("latin-1"), "path": path.decode("latin-1"),
            "size": size, "limit": self.max_request_body_bytes,
        })
        body = f"request body exceeds the limit of {self.max_request_body_bytes} bytes\n".encode()
        self.transport.write(
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

    def connectionLost(self, reason: object) -> None:
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None
        super().connectionLost(reason)
