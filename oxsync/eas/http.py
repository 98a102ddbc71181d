"""`/Microsoft-Server-ActiveSync`: OPTIONS, POST dispatch, authentication and the provisioning gate.

What must hold (MS-ASHTTP):
- OPTIONS answers `MS-ASProtocolVersions` and `MS-ASProtocolCommands`; without credentials it is an
  empty 401 (some devices probe that way);
- bad or missing credentials are 401, never 403 (Android treats 403 as "provision again");
- a request the server cannot parse is a 400 (or 413 when too large), logged once, with no state written;
- until a device acknowledged the policy, commands other than Provision get 449 (<= 12.1) or a
  WBXML Status 142 (no key) / 144 (wrong key) (14.0+); a pending remote wipe gets 449 / 140;
- every response carries `MS-Server-ActiveSync` and a WBXML content type, with Content-Length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.eas import protocol, state
from oxsync.eas.commands import HANDLERS, STATE_KEYS
from oxsync.eas.request import (
    BadRequest,
    EasRequest,
    EasResponse,
    GateRefused,
    Query,
    parse_query,
    status_response,
)
from oxsync.eas.service import Eas
from oxsync.eas.state import StateStore
from oxsync.eas.wbxml import Element, WBXMLError, decode, encode
from oxsync.logs import failure_exc_info
from oxsync.model import Protocol
from oxsync.store.api import Principal
from oxsync.store.budget import WorkLimitExceeded
from oxsync.store.session import UserSession
from oxsync.web import client_address, is_gone, send_bytes

log = logging.getLogger("oxsync.eas")

UNGATED = frozenset({"Provision"})
VERSIONS_HEADER = ",".join(protocol.VERSIONS).encode()
COMMANDS_HEADER = ",".join(protocol.COMMANDS).encode()


def common_headers(request: Request) -> None:
    request.setHeader(b"MS-Server-ActiveSync", protocol.SERVER_VERSION)
    request.setHeader(b"MS-ASProtocolVersions", VERSIONS_HEADER)
    request.setHeader(b"Cache-Control", b"private")


class ActiveSyncResource(Resource):
    isLeaf = True

    def __init__(self, eas: Eas) -> None:
        super().__init__()
        self.eas = eas

    # ------------------------------------------------------------ GET / OPTIONS

    def render_GET(self, request: Request) -> bytes:
        common_headers(request)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return b"<html><body><h1>oxsync</h1><p>This is an Exchange ActiveSync endpoint.</p></body></html>\n"

    def render_OPTIONS(self, request: Request) -> Any:
        common_headers(request)
        if request.getHeader(b"authorization") is None:
            send_bytes(request, 401, b"", protocol.WBXML_CONTENT_TYPE,
                       {b"WWW-Authenticate": b'Basic realm="oxsync"'})
            return NOT_DONE_YET
        d = self.eas.authenticator.authenticate(request, Protocol.MOBILE)

        def answer(principal: Principal | None) -> None:
            if principal is None:
                return
            send_bytes(request, 200, b"", b"application/vnd.ms-sync.wbxml", {
                b"Allow": b"OPTIONS,POST", b"Public": b"OPTIONS,POST",
                b"MS-ASProtocolVersions": VERSIONS_HEADER, b"MS-ASProtocolCommands": COMMANDS_HEADER,
            })

        d.addCallback(answer).addErrback(self._crashed, request, "OPTIONS")
        return NOT_DONE_YET

    # ------------------------------------------------------------ POST

    def render_POST(self, request: Request) -> Any:
        common_headers(request)
        raw_query = request.uri.partition(b"?")[2]
        try:
            query = parse_query(raw_query)
        except BadRequest as exc:
            self._bad(request, None, str(exc))
            return NOT_DONE_YET
        request.metrics_command = query.cmd  # type: ignore[attr-defined]  # oxsync.metrics label
        d = self.eas.authenticator.authenticate(request, Protocol.MOBILE)
        d.addCallback(self._authenticated, request, query)
        d.addErrback(self._crashed, request, query.cmd)
        return NOT_DONE_YET

    def _bad(self, request: Request, query: Query | None, reason: str, code: int = 400,
             principal: Principal | None = None) -> None:
        log.warning("bad ActiveSync request: %s", reason, extra={
            "event": "eas.bad_request", "reason": reason, "address": client_address(request),
            "cmd": query.cmd if query else "", "device": query.device_id if query else "",
            "login": principal.login if principal else ""})
        send_bytes(request, code, f"{reason}\n".encode(), b"text/plain; charset=utf-8")

    def _authenticated(self, principal: Principal | None, request: Request, query: Query) -> Deferred[None] | None:
        if principal is None:
            return None  # 401/403/429 already sent
        try:
            req = self._build(principal, request, query)
        except BadRequest as exc:
            code = 413 if str(exc).startswith("body exceeds") else 400
            self._bad(request, query, str(exc), code, principal)
            return None
        if req.cmd in STATE_KEYS:  # the command runs the gate in its own first unit (Eas.staged)
            req.gate = self._gate_in_unit(req, STATE_KEYS[req.cmd](req))
            answered: Deferred[EasResponse] = succeed(None).addCallback(self._dispatch, req)
            answered.addErrback(_refused)
        else:
            answered = self._gate(req).addCallback(self._dispatch, req)
        return answered.addCallback(self._send, request, req)

    def _build(self, principal: Principal, request: Request, query: Query) -> EasRequest:
        if query.cmd not in HANDLERS:
            raise BadRequest(f"unknown or unsupported command {query.cmd!r}")
        if not query.device_id or len(query.device_id) > 64 or not query.device_id.isprintable():
            raise BadRequest("missing or invalid DeviceId")
        if not query.device_type or len(query.device_type) > 64:
            raise BadRequest("missing or invalid DeviceType")
        header_version = request.getHeader(b"ms-asprotocolversion")
        version = query.version or (header_version.decode("latin-1").strip() if header_version else "")
        if version not in protocol.VERSIONS:
            raise BadRequest(f"unsupported protocol version {version!r}")
        key = request.getHeader(b"x-ms-policykey")
        policy_key = query.policy_key if query.policy_key is not None else (key.decode("latin-1").strip() if key else None)
        raw = request.content.read() if request.content is not None else b""
        if len(raw) > self.eas.config.max_request_bytes:
            raise BadRequest(f"body exceeds {self.eas.config.max_request_bytes} bytes")
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1").split(";")[0].strip().lower()
        body: Element | None = None
        if raw and content_type != "message/rfc822":
            limits = self.eas.settings.limits
            try:
                body = decode(raw, max_depth=limits.max_wbxml_depth, max_elements=limits.max_wbxml_elements,
                              max_string_bytes=limits.max_wbxml_string_bytes)
            except WBXMLError as exc:
                raise BadRequest(f"invalid WBXML: {exc}") from exc
            expected = protocol.ROOT_TAG.get(query.cmd)
            if expected is not None and body.tag != expected:
                raise BadRequest(f"root element {body.tag} does not match command {query.cmd}")
        agent = (request.getHeader(b"user-agent") or b"").decode("latin-1")[:256]
        options = query.params.get("Options", "")
        multipart = (request.getHeader(b"ms-asacceptmultipart") or b"").upper() == b"T" or \
            query.params.get("AcceptMultiPart", "").upper() == "T" or \
            (len(options) == 1 and bool(ord(options) & 2))
        return EasRequest(principal, query.cmd, query.device_id, query.device_type, version, policy_key,
                          query.params, body, raw, content_type, agent, multipart, request)

    # ------------------------------------------------------------ provisioning gate

    def _gate(self, req: EasRequest) -> Deferred[EasResponse | None]:
        """Read the device record (a read transaction); write it only when it must change."""
        eas = self.eas

        def check(session: UserSession) -> tuple[EasResponse | None, dict[str, Any] | None]:
            record = state.load_device(session, req.device_id)
            return _verdict(eas, req, record), record if _stale(eas, req, record) else None

        def touch(result: tuple[EasResponse | None, dict[str, Any] | None]) -> Any:
            refused, record = result
            if record is None:
                return refused
            return eas.write(req, lambda session: _touch(session, req, state.load_device(session, req.device_id)),
                             light=True).addCallback(lambda _: refused)

        return eas.read(req, check, light=True).addCallback(touch)

    def _gate_in_unit(self, req: EasRequest, keys: list[str]) -> Callable[[StateStore], EasResponse | None]:
        """The gate as the command's first unit runs it: the device record and the command's first states
        (`keys`, a Sync's cached request and collections) in one statement, the touch staged with the
        command's own state writes."""
        eas = self.eas

        def gate(states: StateStore) -> EasResponse | None:
            if isinstance(states, state.StagedStates) and req.device_id not in state.NOT_PERSISTED_DEVICES:
                states.prefetch(req.device_id, [state.DEVICE, *keys])
            record = state.load_device(states, req.device_id)
            if _stale(eas, req, record):
                _touch(states, req, record)
            return _verdict(eas, req, record)

        return gate

    def _dispatch(self, refused: EasResponse | None, req: EasRequest) -> Deferred[EasResponse] | EasResponse:
        if refused is not None:
            return refused
        answered = HANDLERS[req.cmd](self.eas, req)  # inside a callback: what it raises becomes the chain's failure
        if req.gate is not None:
            raise RuntimeError(f"ActiveSync {req.cmd} did not run the provisioning gate")
        return answered

    def _send(self, response: EasResponse, request: Request, req: EasRequest) -> None:
        if is_gone(request):
            return
        body = response.body
        data = encode(body) if isinstance(body, Element) else (body or b"")
        send_bytes(request, response.code, data, response.content_type, response.headers)

    def _crashed(self, failure: Failure, request: Request, cmd: str) -> None:
        if failure.check(WorkLimitExceeded):  # not a crash: the request asked for too much work
            log.warning("ActiveSync %s over its work limit: %s", cmd, failure.value,
                        extra={"event": "eas.work_limit", "cmd": cmd})
            if not is_gone(request):
                send_bytes(request, 503, b"", protocol.WBXML_CONTENT_TYPE, {b"Retry-After": b"300"})
            return
        log.error("ActiveSync %s failed", cmd, exc_info=failure_exc_info(failure),
                  extra={"event": "eas.error", "cmd": cmd})
        if not is_gone(request):
            send_bytes(request, 500, b"", protocol.WBXML_CONTENT_TYPE)


def _now() -> int:
    import time

    return int(time.time())


def _stale(eas: Eas, req: EasRequest, record: dict[str, Any]) -> bool:
    """Whether the device record must be touched (what the device says of itself changed, or it was last
    seen over `device_touch_seconds` ago); never for a device whose state is not kept."""
    return req.device_id not in state.NOT_PERSISTED_DEVICES and (
        record.get("type") != req.device_type or record.get("ua") != req.user_agent
        or record.get("version") != req.version
        or int(record.get("last_seen", 0)) + eas.config.device_touch_seconds < _now())


def _touch(states: StateStore, req: EasRequest, record: dict[str, Any]) -> None:
    state.touch_device(states, req.device_id, record, type=req.device_type, ua=req.user_agent,
                       version=req.version, last_cmd=req.cmd)


def _refused(failure: Failure) -> EasResponse:
    """The refusal of a gate run inside the command's unit (`GateRefused`)."""
    failure.trap(GateRefused)
    assert isinstance(failure.value, GateRefused)
    return failure.value.response


def _verdict(eas: Eas, req: EasRequest, record: dict[str, Any]) -> EasResponse | None:
    """None when the command may run; otherwise the provisioning / wipe refusal."""
    if req.cmd in UNGATED:
        return None
    if record.get("wipe") in ("requested", "pending"):
        return _refuse(req, protocol.REMOTE_WIPE_REQUESTED)
    if not eas.config.require_provisioning:
        return None
    if not req.policy_key or req.policy_key == "0":
        return _refuse(req, protocol.DEVICE_NOT_PROVISIONED)
    if req.device_id in state.NOT_PERSISTED_DEVICES:
        return None
    if req.policy_key != record.get("policy_key"):
        return _refuse(req, protocol.INVALID_POLICY_KEY)
    return None


def _refuse(req: EasRequest, status: int) -> EasResponse:
    """449 for <= 12.1; a WBXML status in the command's own root element for 14.0+."""
    log.info("device must provision", extra={"event": "eas.gate", "status": status, "device": req.device_id,
                                             "login": req.principal.login, "cmd": req.cmd})
    if req.v < 14.0:
        return EasResponse(None, code=449)
    return status_response(req.cmd, status)
