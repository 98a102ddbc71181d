"""HTTP plumbing shared by every dialect: small response helpers, auth, limits, health.

Handlers usually finish a request later (after a store call on the pool); by then the client may be
gone, so every helper here checks that before writing.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.server import Request


def client_address(request: Request) -> str:
    """The peer's IP address (or a stable placeholder for non-IP transports)."""
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(host) if host else type(address).__name__


def is_gone(request: Request) -> bool:
    """True once the request was finished or its connection was lost: nothing may be written then."""
    return bool(request.finished or getattr(request, "_disconnected", False))


def send_bytes(request: Request, code: int, body: bytes, content_type: bytes,
               headers: dict[bytes, bytes] | None = None) -> None:
    """Write a complete response and finish the request, unless the client has already gone."""
    if is_gone(request):
        return
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def send_text(request: Request, code: int, text: str, headers: dict[bytes, bytes] | None = None) -> None:
    send_bytes(request, code, text.encode("utf-8"), b"text/plain; charset=utf-8", headers)


def send_json(request: Request, code: int, value: Any, headers: dict[bytes, bytes] | None = None) -> None:
    body = json.dumps(value, separators=(",", ":")).encode("utf-8")
    send_bytes(request, code, body, b"application/json", headers)
