"""`webdav.attachments`: PUT / GET / DELETE with parameters in HTTP headers (reference §2.7).

Headers: module (1 appointment, 4 task, 7 contact), target_id, target_folder_id, object_id
(attachment), filename (URL-encoded UTF-8), rtf_flag, client_id. Size cap and quota are enforced by
the store (`limits.max_attachment_bytes`, tenant/user quota); errors are plain HTTP statuses.
"""

from __future__ import annotations

from typing import IO, Any
from urllib.parse import unquote

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.model.timeutil import to_ms
from oxsync.ox.auth import OxUser, check_account
from oxsync.ox.errors import OK
from oxsync.ox.servlet import XML_TYPE, OxContext
from oxsync.ox.wire import el, multistatus, response
from oxsync.store.errors import (
    AccessRefused,
    InvalidData,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StaleObject,
)
from oxsync.web import is_gone, send_bytes, send_text

MODULES = {1: "calendar", 4: "tasks", 7: "contacts"}
HTTP_OF_ERROR = ((NotFound, 404), (PermissionDenied, 403), (QuotaExceeded, 507), (StaleObject, 409),
                 (AccessRefused, 403), (InvalidData, 409))


def _size(content: IO[bytes]) -> int:
    """The length of an uploaded body, read from its file without reading the body."""
    position = content.tell()
    content.seek(0, 2)
    size = content.tell()
    content.seek(position)
    return int(size)


class HeaderError(Exception):
    pass


def _header_int(request: Request, name: str) -> int:
    raw = request.getHeader(name.encode())
    try:
        number = int(raw.strip()) if raw is not None else _missing(name)
    except ValueError:
        raise HeaderError(f"header {name} is not a number") from None
    if abs(number) > 2**63 - 1:  # no id is that long (a 50-digit id would overflow the database)
        raise HeaderError(f"header {name} is out of range")
    return number


def _missing(name: str) -> int:
    raise HeaderError(f"missing header {name}")


class AttachmentServlet(Resource):
    isLeaf = True

    def __init__(self, ctx: OxContext) -> None:
        super().__init__()
        self.ctx = ctx

    def _go(self, request: Request, action) -> Any:
        body = request.content.read() if request.content is not None else b""
        d = self.ctx.auth.authenticate(request)

        def authed(who: OxUser | None):
            if who is None or is_gone(request):
                return None
            module = _header_int(request, "module")
            if module not in MODULES:
                raise HeaderError(f"unknown module {module}")
            folder_id = _header_int(request, "target_folder_id")
            target_id = _header_int(request, "target_id")

            def work(session):
                check_account(session, who)
                return action(session, folder_id, target_id, body)

            run = self.ctx.async_store.read if request.method == b"GET" else self.ctx.async_store.write
            return run(who.tenant_id, who.user_id, work)

        d.addCallback(authed)
        d.addErrback(self._failed, request)
        return d

    def render_PUT(self, request: Request) -> Any:
        filename = unquote((request.getHeader(b"filename") or b"").decode("utf-8", "replace"))
        mimetype = (request.getHeader(b"content-type") or b"application/octet-stream").decode("latin-1")
        rtf = (request.getHeader(b"rtf_flag") or b"").strip().lower() == b"true"
        client = (request.getHeader(b"client_id") or b"").decode("utf-8", "replace")
        if not filename:
            send_text(request, 409, "missing header filename\n")
            return NOT_DONE_YET
        limit = self.ctx.settings.limits.max_attachment_bytes
        if request.content is not None and _size(request.content) > limit:  # before any store work
            send_text(request, 413, f"attachment over the {limit} byte limit\n")
            return NOT_DONE_YET

        def action(session, folder_id, target_id, body):
            return session.add_attachment(folder_id, target_id, filename, mimetype, body, rtf)

        def done(meta) -> None:
            if meta is None:
                return
            prop = el("object_id", meta.id) + el("last_modified", to_ms(meta.creation_time))
            prop += el("client_id", client) if client else ""
            body = multistatus([response(meta.id, prop, *OK)], self.ctx.settings.ox.version_string)
            send_bytes(request, 207, body, XML_TYPE)

        self._go(request, action).addCallback(done)
        return NOT_DONE_YET

    def render_GET(self, request: Request) -> Any:
        try:
            attachment_id = _header_int(request, "object_id")
        except HeaderError as exc:
            send_text(request, 409, f"{exc}\n")
            return NOT_DONE_YET

        def action(session, folder_id, target_id, body):
            return session.get_attachment(folder_id, target_id, attachment_id)

        def done(found) -> None:
            if found is not None:
                send_bytes(request, 200, found.content, found.meta.mimetype.encode("latin-1", "replace"))

        self._go(request, action).addCallback(done)
        return NOT_DONE_YET

    def render_DELETE(self, request: Request) -> Any:
        try:
            attachment_id = _header_int(request, "object_id")
        except HeaderError as exc:
            send_text(request, 409, f"{exc}\n")
            return NOT_DONE_YET

        def action(session, folder_id, target_id, body):
            session.delete_attachment(folder_id, target_id, attachment_id)
            return True

        def done(ok) -> None:
            if ok:
                send_text(request, 200, "OK\n")

        self._go(request, action).addCallback(done)
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: Request) -> None:
        if failure.check(HeaderError):
            send_text(request, 409, f"{failure.value}\n")
            return None
        for kind, status in HTTP_OF_ERROR:
            if failure.check(kind):
                if failure.check(InvalidData) and "limit" in str(failure.value):
                    status = 413
                send_text(request, status, f"{failure.value}\n")
                return None
        send_text(request, 500, "Server Error\n")
        return None
