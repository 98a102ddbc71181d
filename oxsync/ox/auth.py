"""OX authentication: HTTP Basic on every request, plus a stateless signed `sessionid` cookie.

The cookie is `v1.<tenant>.<user>.<expires>.<mac>`, with an HMAC-SHA256 over those fields and the
client address, keyed by `[ox] session_secret`. Any node holding the same secret can verify it; there
is no server-side session table. Suspension and the `outlook` right are re-checked inside the store
transaction of every cookie request (`check_account`), so revoking access takes effect at once.

Secret: `[ox] session_secret` if set (required for several nodes sharing a PostgreSQL database); else a
random secret generated once and kept in `<database file>.ox-secret` (SQLite), or for other databases
one derived from the store URL (same config -> same secret on every node; set it explicitly in production).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request

from oxsync.config import Settings
from oxsync.model import Protocol
from oxsync.store.api import Principal
from oxsync.store.errors import AccessRefused
from oxsync.store.session import UserSession
from oxsync.web import client_address
from oxsync.web.auth import Authenticator

COOKIE = b"sessionid"
_COOKIE_FORM = re.compile(rb"(v1\.([0-9]{1,18})\.([0-9]{1,18})\.([0-9]{1,12}))\.([A-Za-z0-9_=-]{1,64})")
"""The only bytes a cookie we issued can hold (ASCII digits only: `int` would accept other scripts)."""


@dataclass(frozen=True)
class OxUser:
    tenant_id: int
    user_id: int
    via_cookie: bool


def load_secret(settings: Settings) -> bytes:
    configured = settings.ox.session_secret
    if configured:
        return configured.encode("utf-8")
    url = settings.store.url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url[len("sqlite:///"):] + ".ox-secret")
        try:
            return path.read_bytes().strip()
        except FileNotFoundError:
            secret = secrets.token_hex(32).encode("ascii")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
            return secret
        except FileExistsError:
            return path.read_bytes().strip()
    return hashlib.sha256(b"oxsync-ox-session\0" + url.encode("utf-8")).hexdigest().encode("ascii")


class SessionCookies:
    def __init__(self, secret: bytes, max_age: int) -> None:
        self.secret = secret
        self.max_age = max_age

    def _mac(self, payload: str, address: str) -> str:
        digest = hmac.new(self.secret, f"{payload}|{address}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")

    def issue(self, tenant_id: int, user_id: int, address: str, now: float | None = None) -> str:
        payload = f"v1.{tenant_id}.{user_id}.{int((now or time.time()) + self.max_age)}"
        return f"{payload}.{self._mac(payload, address)}"

    def verify(self, value: bytes | str, address: str, now: float | None = None) -> tuple[int, int] | None:
        """(tenant, user) of a valid cookie; None for anything else, whatever its bytes (a malformed
        cookie is just not a session: no exception, no log line per request)."""
        match = _COOKIE_FORM.fullmatch(value.encode("utf-8", "replace") if isinstance(value, str) else value)
        if match is None:
            return None
        payload = match.group(1).decode("ascii")
        if not hmac.compare_digest(match.group(5), self._mac(payload, address).encode("ascii")):
            return None
        tenant_id, user_id, expires = (int(match.group(i)) for i in (2, 3, 4))
        if expires < (now or time.time()):
            return None
        return tenant_id, user_id


def check_account(session: UserSession, who: OxUser) -> None:
    """Inside the request's transaction: a cookie holder must still be active and allowed Outlook."""
    if not who.via_cookie:
        return
    me = session.me()
    if not me.active:
        raise AccessRefused("account suspended")
    if Protocol.OUTLOOK not in me.protocols:
        raise AccessRefused("account not enabled for outlook")


class OxAuth:
    """Basic first (when sent), else a valid cookie, else the 401 challenge."""

    def __init__(self, authenticator: Authenticator, cookies: SessionCookies, on_login=None) -> None:
        self.authenticator = authenticator
        self.cookies = cookies
        self.on_login = on_login
        """Called with (tenant_id, user_id, address) after each successful Basic login (UDP push)."""

    def authenticate(self, request: Request) -> Deferred[OxUser | None]:
        address = client_address(request)
        if request.getHeader(b"authorization") is None:
            raw = request.getCookie(COOKIE)
            if raw:
                found = self.cookies.verify(raw, address)
                if found is not None:
                    if self.on_login is not None:
                        self.on_login(found[0], found[1], address)
                    return succeed(OxUser(found[0], found[1], True))
                request.addCookie(COOKIE, b"", max_age=b"0", path=b"/servlet", httpOnly=True)
        d = self.authenticator.authenticate(request, Protocol.OUTLOOK)
        return d.addCallback(self._basic_ok, request, address)

    def _basic_ok(self, principal: Principal | None, request: Request, address: str) -> OxUser | None:
        if principal is None:
            return None
        cookie = self.cookies.issue(principal.tenant_id, principal.user_id, address)
        request.addCookie(COOKIE, cookie.encode("ascii"), max_age=str(self.cookies.max_age).encode(),
                          path=b"/servlet", httpOnly=True)
        if self.on_login is not None:
            self.on_login(principal.tenant_id, principal.user_id, address)
        return OxUser(principal.tenant_id, principal.user_id, False)
