"""One parsed ActiveSync request and its response (the command table is `oxsync.eas.commands`).

The HTTP layer (`oxsync.eas.http`) builds an `EasRequest`, the handler registered for its command
returns an `EasResponse` (or a Deferred of one). Handlers never touch the twisted Request directly,
except the long-lived ones (Ping, hanging Sync), which receive it to watch for disconnects.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from oxsync.eas import protocol
from oxsync.eas.wbxml import E, Element
from oxsync.store.api import Principal


class BadRequest(ValueError):
    """The request cannot be understood at the HTTP level: answered with 400, logged once."""


class GateRefused(Exception):
    """The provisioning gate refused a command inside the command's own unit (`EasRequest.gate`): its
    Deferred fails with this, and the HTTP layer answers `response` (449, or the command's Status)."""

    def __init__(self, response: EasResponse) -> None:
        super().__init__(response.code)
        self.response = response


@dataclass
class Query:
    """The query string, from either the plain or the base64 form (MS-ASHTTP 2.2.1.1.1)."""

    cmd: str
    user: str = ""
    device_id: str = ""
    device_type: str = ""
    version: str | None = None
    policy_key: str | None = None
    params: dict[str, str] = field(default_factory=dict)


def parse_query(raw: bytes) -> Query:
    text = raw.decode("latin-1")
    if text and "Cmd=" not in text and "&" not in text:
        return _parse_base64(unquote(text))
    pairs = dict(parse_qsl(text, keep_blank_values=True))
    cmd = pairs.pop("Cmd", "")
    if not cmd:
        raise BadRequest("missing Cmd")
    return Query(cmd=cmd, user=pairs.pop("User", ""), device_id=pairs.pop("DeviceId", ""),
                 device_type=pairs.pop("DeviceType", ""), params=pairs)


def _parse_base64(text: str) -> Query:
    try:
        blob = base64.b64decode(text + "=" * (-len(text) % 4), altchars=None, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("undecodable base64 query") from exc
    try:
        version, code, _locale = blob[0], blob[1], struct.unpack_from("<H", blob, 2)[0]
        pos = 4
        n = blob[pos]
        device = blob[pos + 1:pos + 1 + n]
        pos += 1 + n
        k = blob[pos]
        policy = str(struct.unpack_from("<I", blob, pos + 1)[0]) if k == 4 else None
        pos += 1 + k
        m = blob[pos]
        device_type = blob[pos + 1:pos + 1 + m].decode("ascii")
        pos += 1 + m
        if len(device) != n or len(device_type) != m:
            raise BadRequest("truncated base64 query")
        params: dict[str, str] = {}
        while pos < len(blob):
            tag, length = blob[pos], blob[pos + 1]
            value = blob[pos + 2:pos + 2 + length]
            if len(value) != length:
                raise BadRequest("truncated base64 query parameter")
            params[protocol.BASE64_PARAMS.get(tag, f"p{tag}")] = value.decode("utf-8", "replace")
            pos += 2 + length
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise BadRequest("truncated base64 query") from exc
    if code not in protocol.COMMAND_CODES:
        raise BadRequest(f"unknown command code {code}")
    device_id = device.decode("ascii") if device.isascii() and device.isalnum() else device.hex()
    return Query(cmd=protocol.COMMAND_CODES[code], user=params.pop("User", ""), device_id=device_id,
                 device_type=device_type, version=f"{version // 10}.{version % 10}", policy_key=policy,
                 params=params)


@dataclass
class EasRequest:
    principal: Principal
    cmd: str
    device_id: str
    device_type: str
    version: str
    policy_key: str | None
    params: dict[str, str]
    body: Element | None
    raw: bytes
    content_type: str
    user_agent: str
    accept_multipart: bool = False
    http: Any = None
    """The twisted Request: only long-lived handlers use it (to notice a disconnect)."""
    gate: Callable[[Any], EasResponse | None] | None = None
    """The provisioning gate, for a command that runs it inside its first staged unit (`Eas.staged`) instead
    of a unit of its own: called with the unit's device state, it stages the device record's touch and
    answers the refusal (None: the command may run). Taken once (`take_gate`); the HTTP layer refuses to
    answer a command that left it untaken."""

    def take_gate(self) -> Callable[[Any], EasResponse | None] | None:
        gate, self.gate = self.gate, None
        return gate

    @property
    def v(self) -> float:
        return protocol.version_number(self.version)

    @property
    def tenant_id(self) -> int:
        return self.principal.tenant_id

    @property
    def user_id(self) -> int:
        return self.principal.user_id


@dataclass
class EasResponse:
    body: Element | bytes | None = None
    code: int = 200
    headers: dict[bytes, bytes] = field(default_factory=dict)
    content_type: bytes = protocol.WBXML_CONTENT_TYPE


def status_response(cmd: str, status: int) -> EasResponse:
    """`<Root><Status>n</Status></Root>` for the command (14.0+ common status codes)."""
    root = protocol.ROOT_TAG.get(cmd, "AirSync:Sync")
    return EasResponse(E(root, E(protocol.STATUS_TAG.get(cmd, "AirSync:Status"), str(status))))
