"""Administrators: who acts (`Actor`), on which tenant they may act, the audit log and API tokens.

What must hold:
- a platform admin acts on every tenant; a tenant admin only on their own: another tenant's ids
  answer `NotFound` exactly as if they did not exist; an account that is neither gets `PermissionDenied`;
- every administrative write records one audit row (who, via what, from where, what, on what) in the
  same transaction as the change, so there is no change without its record and no record without it;
- API tokens are 256-bit random secrets shown once; only their SHA-256 is stored; a revoked token,
  or one of a deleted tenant, never authenticates again.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from oxsync.store import accounts
from oxsync.store import schema as s
from oxsync.store.api import Store
from oxsync.store.engine import WRITE
from oxsync.store.errors import AccessRefused, AuthenticationFailed, NotFound, PermissionDenied
from oxsync.store.tx import Tx, now_ms

TOKEN_PREFIX = "oxs_"
MAX_DETAIL = 2000


@dataclass(frozen=True)
class Actor:
    """Someone performing administrative actions."""

    name: str
    """How the audit log names them: an account's address, `cli:<unix user>`, `token:<id>`."""
    via: str
    """console | api | cli"""
    address: str = ""
    platform: bool = False
    tenant_id: int | None = None
    """The tenant a tenant admin (or token) is limited to; None with `platform`."""
    user_id: int | None = None
    tenant_admin: bool = False

    @property
    def is_admin(self) -> bool:
        return self.platform or self.tenant_admin

    def may_act_on(self, tenant_id: int) -> bool:
        return self.platform or (self.tenant_admin and self.tenant_id == tenant_id)


def cli_actor() -> Actor:
    """The shell user running `oxsync`: has the database, so acts on every tenant."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(f"cli:{who}", "cli", "local", platform=True)


def user_actor(store: Store, tenant_id: int, user_id: int, via: str, address: str) -> Actor:
    """The Actor for a signed-in account, with its admin roles as stored now."""
    u = s.users
    with store.engine.connect() as conn:
        row = conn.execute(select(u.c.email, u.c.tenant_admin, u.c.platform_admin, u.c.active).where(
            and_(u.c.tenant_id == tenant_id, u.c.id == user_id))).one_or_none()
    if row is None:
        raise AuthenticationFailed("account does not exist")
    if not row.active:
        raise AccessRefused("account suspended")
    return Actor(row.email, via, address, platform=bool(row.platform_admin), tenant_id=tenant_id, user_id=user_id,
                 tenant_admin=bool(row.tenant_admin) or bool(row.platform_admin))


def console_login(store: Store, login: str, password: str) -> tuple[int, int]:
    """(tenant_id, user_id) for a console sign-in: the account's password, active account; no protocol
    right is needed (every account has its self-service page). Same cost whether the login exists or not."""
    found = store.resolve_login(login) if login else None
    stored = None
    if found is not None:
        u = s.users
        with store.engine.connect() as conn:
            row = conn.execute(select(u.c.password_hash, u.c.active).where(
                and_(u.c.tenant_id == found[0], u.c.id == found[1]))).one_or_none()
        stored = row.password_hash if row is not None else None
    if not accounts.verify_password(stored, password, store.settings.auth) or found is None or row is None:
        raise AuthenticationFailed("wrong user name or password")
    if not row.active:
        raise AccessRefused("account suspended")
    return found


def check_scope(actor: Actor, tenant_id: int) -> None:
    if not actor.is_admin:
        raise PermissionDenied("administrators only")
    if not actor.may_act_on(tenant_id):
        raise NotFound(f"tenant {tenant_id} does not exist")


def check_platform(actor: Actor) -> None:
    if not actor.platform:
        raise PermissionDenied("platform administrators only")


def audit(conn: Connection, actor: Actor, tenant_id: int | None, action: str, target: str = "",
          detail: str = "") -> None:
    """One audit row, inside the caller's transaction. Callers never pass secrets in `detail`."""
    conn.execute(insert(s.audit_log).values(
        ms=now_ms(), tenant_id=tenant_id, actor=actor.name[:320], via=actor.via[:16], address=actor.address[:64],
        action=action[:64], target=target[:320], detail=detail[:MAX_DETAIL]))


@contextmanager
def admin_tx(store: Store, actor: Actor, tenant_id: int, write: bool = False) -> Iterator[Tx]:
    """A transaction on `tenant_id` after the scope check (NotFound for a tenant out of reach)."""
    check_scope(actor, tenant_id)
    with store.transaction(tenant_id, write) as tx:
        yield tx


@contextmanager
def platform_conn(store: Store, actor: Actor, write: bool = False) -> Iterator[Connection]:
    """A connection for platform-wide work (tenants, platform tokens); platform admins only."""
    check_platform(actor)
    with store.engine.connect() as conn:
        if write:
            conn = conn.execution_options(**WRITE)
        with conn.begin():
            yield conn


def read_audit(store: Store, actor: Actor, tenant_id: int | None = None, limit: int = 100,
               before_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first. A tenant admin reads their tenant's rows only; a platform admin any or all."""
    a = s.audit_log
    query = select(a).order_by(a.c.id.desc()).limit(max(1, min(limit, 1000)))
    if tenant_id is not None:
        check_scope(actor, tenant_id)
        query = query.where(a.c.tenant_id == tenant_id)
    else:
        check_platform(actor)
    if before_id is not None:
        query = query.where(a.c.id < before_id)
    with store.engine.connect() as conn:
        return [{"id": r.id, "ms": r.ms, "tenant_id": r.tenant_id, "actor": r.actor, "via": r.via,
                 "address": r.address, "action": r.action, "target": r.target, "detail": r.detail}
                for r in conn.execute(query)]


# ---------------------------------------------------------------- API tokens


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, actor: Actor, name: str, tenant_id: int | None) -> tuple[int, str]:
    """(id, token); the token is shown once. A tenant admin creates tokens for their tenant only."""
    if tenant_id is None:
        check_platform(actor)
    else:
        check_scope(actor, tenant_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.engine.connect() as conn:
        conn = conn.execution_options(**WRITE)
        with conn.begin():
            token_id = conn.execute(insert(s.api_tokens).values(
                token_hash=_digest(token), name=name.strip()[:255], tenant_id=tenant_id, created_by=actor.name,
                created_ms=now_ms()).returning(s.api_tokens.c.id)).scalar_one()
            audit(conn, actor, tenant_id, "token.create", f"token:{token_id}", name.strip()[:255])
    return int(token_id), token


def list_tokens(store: Store, actor: Actor, tenant_id: int | None) -> list[dict[str, Any]]:
    t = s.api_tokens
    query = select(t).order_by(t.c.id)
    if tenant_id is None:
        check_platform(actor)
    else:
        check_scope(actor, tenant_id)
        query = query.where(t.c.tenant_id == tenant_id)
    with store.engine.connect() as conn:
        return [{"id": r.id, "name": r.name, "tenant_id": r.tenant_id, "created_by": r.created_by,
                 "created_ms": r.created_ms, "last_used_ms": r.last_used_ms, "revoked": r.revoked_ms is not None}
                for r in conn.execute(query)]


def revoke_token(store: Store, actor: Actor, token_id: int) -> None:
    t = s.api_tokens
    with store.engine.connect() as conn:
        conn = conn.execution_options(**WRITE)
        with conn.begin():
            row = conn.execute(select(t.c.tenant_id).where(t.c.id == token_id)).one_or_none()
            if row is None or not (actor.platform or (row.tenant_id is not None and actor.may_act_on(row.tenant_id))):
                if not actor.is_admin:
                    raise PermissionDenied("administrators only")
                raise NotFound(f"token {token_id} does not exist")
            conn.execute(update(t).where(and_(t.c.id == token_id, t.c.revoked_ms.is_(None))).values(revoked_ms=now_ms()))
            audit(conn, actor, row.tenant_id, "token.revoke", f"token:{token_id}")


def token_actor(store: Store, token: str, address: str) -> Actor:
    """The Actor a bearer token stands for; AuthenticationFailed for unknown or revoked tokens."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        raise AuthenticationFailed("invalid token")
    t = s.api_tokens
    digest = _digest(token)
    with store.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.token_hash == digest)).one_or_none()
    if row is None or row.revoked_ms is not None or not hmac.compare_digest(row.token_hash, digest):
        raise AuthenticationFailed("invalid token")
    if row.last_used_ms is None or row.last_used_ms < now_ms() - 60_000:  # at most one write a minute
        with store.engine.connect() as conn:
            conn = conn.execution_options(**WRITE)
            with conn.begin():
                conn.execute(update(t).where(t.c.id == row.id).values(last_used_ms=now_ms()))
    if row.tenant_id is None:
        return Actor(f"token:{row.id}", "api", address, platform=True)
    return Actor(f"token:{row.id}", "api", address, tenant_id=row.tenant_id, tenant_admin=True)
