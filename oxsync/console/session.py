"""Console sessions: a signed, stateless cookie and the CSRF token derived from it.

Cookie `oxconsole` = `v1.<tenant>.<user>.<expires>.<nonce>.<mac>` (HMAC-SHA256 over the fields,
keyed by `[console] session_secret`). `HttpOnly`, `SameSite=Strict`, `Secure` when the console
listens with TLS. The account is re-read on every request (suspension and admin roles apply at
once); the cookie only says who signed in. The CSRF token is an HMAC of the cookie, so it is the same
for the whole session, differs between sessions and cannot be computed without the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

COOKIE = b"oxconsole"
LANG_COOKIE = b"oxlang"


@dataclass(frozen=True)
class SignedIn:
    tenant_id: int
    user_id: int
    raw: str


class SessionSigner:
    def __init__(self, secret: bytes | str | None, max_age: int) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        self.secret = secret or os.urandom(32)
        self.max_age = max_age

    def _mac(self, payload: str, purpose: str = "session") -> str:
        digest = hmac.new(self.secret, f"{purpose}|{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii").rstrip("=")

    def issue(self, tenant_id: int, user_id: int, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.max_age)
        payload = f"v1.{tenant_id}.{user_id}.{expires}.{secrets.token_urlsafe(9)}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, value: str, now: float | None = None) -> SignedIn | None:
        parts = value.split(".")
        if len(parts) != 6 or parts[0] != "v1":
            return None
        payload = ".".join(parts[:5])
        if not hmac.compare_digest(parts[5], self._mac(payload)):
            return None
        try:
            tenant_id, user_id, expires = int(parts[1]), int(parts[2]), int(parts[3])
        except ValueError:
            return None
        if expires < (now if now is not None else time.time()):
            return None
        return SignedIn(tenant_id, user_id, value)

    def csrf_token(self, session: SignedIn) -> str:
        return self._mac(session.raw, "csrf")

    def csrf_ok(self, session: SignedIn, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token)
