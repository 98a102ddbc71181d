"""A live server with the web console for page, API and browser tests: two tenants, admins and users.

example.com: alice (tenant admin), bob and carol (plain users), group `team`, room `room1`;
other.test: dave (tenant admin) and erin. `ops` is a platform admin in example.com.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

from oxsync.store import accounts
from oxsync.store.api import Store

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-1", "carol": "carol-pw-1", "dave": "dave-pw-1",
             "erin": "erin-pw-1", "ops": "ops-pw-1"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class ConsoleWorld:
    store: Store
    running: Any
    port: int
    tenant: int
    other: int
    ids: dict[str, int]
    team: int
    room: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_port(self) -> int:
        return int(self.running.port)

    def browser(self) -> ConsoleClient:
        return ConsoleClient(self.url)


class ConsoleClient:
    """A cookie-keeping HTTP client that fills in the CSRF token of the last page it saw."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> requests.Response:
        response = self.http.get(self.base + path, timeout=30, **kw)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kw: Any) -> requests.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        response = self.http.post(self.base + path, data=form, timeout=30, **kw)
        self._remember(response)
        return response

    def _remember(self, response: requests.Response) -> None:
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)

    def login(self, login: str, password: str | None = None) -> requests.Response:
        self.get("/login")
        return self.post("/login", {"login": login, "password": password or PASSWORDS[login]})


def build_console_world(store: Store, live_server: Any, **sections: Any) -> ConsoleWorld:
    """`sections` override more settings (e.g. `mail`, `server`)."""
    from oxsync.dialects import install_all

    tenant = store.create_tenant("example.com", max_accounts=50, quota_bytes=500 * 1024 * 1024)
    other = store.create_tenant("other.test")
    ids: dict[str, int] = {}
    with store.transaction(tenant.id, write=True) as tx:
        for login, flags in (("alice", {"tenant_admin": True}), ("bob", {}), ("carol", {}),
                             ("ops", {"platform_admin": True})):
            ids[login] = accounts.create_user(tx, login, PASSWORDS[login], first_name=login.title(),
                                              flags=flags).id
        team = accounts.create_group(tx, "team", "Team", [ids["alice"], ids["bob"]]).id
        room = accounts.create_resource(tx, "room1", "room1@example.com", display_name="Room 1").id
    with store.transaction(other.id, write=True) as tx:
        ids["dave"] = accounts.create_user(tx, "dave", PASSWORDS["dave"], flags={"tenant_admin": True}).id
        ids["erin"] = accounts.create_user(tx, "erin", PASSWORDS["erin"]).id
    running = live_server(store, setup=install_all, console={"endpoint": "tcp:0:interface=127.0.0.1"},
                          auth={"verified_login_cache_seconds": 60.0}, **sections)
    port = running.service.console_listener.port.getHost().port
    return ConsoleWorld(store, running, port, tenant.id, other.id, ids, team, room)
