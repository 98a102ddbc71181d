"""/admin/api/: token auth and scope, every operation through the same store calls as the pages, and
every real response validated against the served OpenAPI description."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate

from oxsync.model import Module, Protocol
from oxsync.store import accounts, admin
from oxsync.store.folders import default_folder_id
from tests.consolehelp import ConsoleWorld, build_console_world


class Api:
    """Calls the API and checks each answer against the OpenAPI operation it belongs to."""

    def __init__(self, cw: ConsoleWorld, token: str, spec: dict[str, Any]) -> None:
        self.base = cw.url + "/admin/api"
        self.token = token
        self.spec = spec
        self.checked: set[tuple[str, str, int]] = set()

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        bare = path.split("?")[0]
        for template, ops in self.spec["paths"].items():
            regex = "^" + re.sub(r"\{\w+\}", "[^/]+", template) + "$"
            if re.match(regex, bare) and method.lower() in ops:
                return template, ops[method.lower()]
        raise AssertionError(f"{method} {path} is not described in the OpenAPI document")

    def __call__(self, method: str, path: str, body: Any = None, token: str | None = None,
                 **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        response = requests.request(method, self.base + path, json=body, headers=headers, params=params, timeout=30)
        template, op = self._operation(method, path)
        described = op["responses"].get(str(response.status_code))
        assert described is not None, f"{method} {path}: status {response.status_code} not described: {response.text}"
        schema = described["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator({**schema, "components": self.spec["components"]}).validate(response.json())
        self.checked.add((method, template, response.status_code))
        return response


@pytest.fixture
def cw(store, live_server) -> ConsoleWorld:  # type: ignore[no-untyped-def]
    return build_console_world(store, live_server)


@pytest.fixture
def spec(cw: ConsoleWorld) -> dict[str, Any]:
    document = requests.get(cw.url + "/admin/api/openapi.json", timeout=30).json()
    validate(document)
    return document


def _token(cw: ConsoleWorld, tenant: int | None, who: str = "alice") -> str:
    actor = admin.user_actor(cw.store, cw.tenant, cw.ids[who], "console", "")
    return admin.create_token(cw.store, actor, "test", tenant)[1]


def test_api_operations_match_openapi_and_store(cw: ConsoleWorld, spec: dict[str, Any]) -> None:
    api = Api(cw, _token(cw, cw.tenant), spec)
    t = f"/tenants/{cw.tenant}"
    home = api("GET", t).json()
    assert home["accounts_created"] == 4 and home["max_accounts"] == 50
    made = api("POST", t + "/accounts", {"login": "gina", "display_name": "Gina", "protocols": ["mobile"],
                                         "flags": {"sharing": False}, "quota_bytes": 1000000}).json()
    assert made["password"] and made["protocols"] == ["mobile"] and made["flags"]["sharing"] is False
    gina = made["id"]
    assert cw.store.authenticate("gina", made["password"], Protocol.MOBILE).user_id == gina
    page = api("GET", t + "/accounts", q="gin").json()
    assert [a["login"] for a in page["accounts"]] == ["gina"] and page["total"] == 1
    assert api("GET", t + "/accounts", sort="login", dir="desc", per_page=2).json()["pages"] == 3
    changed = api("PATCH", t + f"/accounts/{gina}", {"active": False, "protocols": ["mobile", "dav"],
                                                     "aliases": ["g@example.com"]}).json()
    assert changed["active"] is False and changed["aliases"] == ["g@example.com"]
    assert api("GET", t + f"/accounts/{gina}").json()["protocols"] == ["dav", "mobile"]
    assert api("POST", t + f"/accounts/{gina}/password", {}).json()["password"]
    assert api("POST", t + f"/accounts/{gina}/password", {"password": "chosen-pw-1"}).json() == {}
    group = api("POST", t + "/groups", {"name": "ops", "display_name": "Ops", "members": [gina]}).json()
    assert api("DELETE", t + f"/groups/{group['id']}/members/{gina}").json()["members"] == []
    assert api("PUT", t + f"/groups/{group['id']}/members/{cw.ids['bob']}").json()["members"] == [cw.ids["bob"]]
    assert api("PATCH", t + f"/groups/{group['id']}", {"display_name": "Operations"}).json()["display_name"] == "Operations"
    assert api("GET", t + "/groups").json()["groups"][-1]["display_name"] == "Operations"
    api("DELETE", t + f"/groups/{group['id']}")
    res = api("POST", t + "/resources", {"name": "van", "email": "van@example.com", "kind": "equipment"}).json()
    assert api("GET", t + f"/resources/{res['id']}/bookings").json() == {"bookings": []}
    assert [r["name"] for r in api("GET", t + "/resources").json()["resources"]] == ["room1", "van"]
    api("DELETE", t + f"/resources/{res['id']}")
    with cw.store.transaction(cw.tenant) as tx:
        calendar = default_folder_id(tx, cw.ids["bob"], Module.CALENDAR)
    shared = api("PUT", t + f"/accounts/{cw.ids['bob']}/folders/{calendar}/permissions",
                 {"who": f"user:{cw.ids['carol']}", "level": 4}).json()
    assert {(p["entity"], p["level"]) for p in shared["permissions"]} == {(cw.ids["bob"], 8), (cw.ids["carol"], 4)}
    assert calendar in [f["id"] for f in api("GET", t + f"/accounts/{cw.ids['bob']}/folders").json()["folders"]]
    refused = api("PUT", t + f"/accounts/{gina}/folders/{_default(cw, gina)}/permissions",
                  {"who": f"user:{cw.ids['carol']}", "level": 2})
    assert refused.status_code == 403  # gina has no collaborative sharing right
    with cw.store.session(cw.tenant, cw.ids["bob"], write=True) as session:
        session.put_state("DEV1", "", {"type": "Android", "ua": "Android/14", "version": "16.1"})
        session.put_state("DEV1", "c:30", {"key": "{x}1", "known": "1-3"})
    assert api("GET", t + "/devices").json()["devices"][0]["device_id"] == "DEV1"
    assert api("GET", t + f"/accounts/{cw.ids['bob']}/devices/DEV1").json()["folders"][0]["known"] == 3
    assert api("POST", t + f"/accounts/{cw.ids['bob']}/devices/DEV1/wipe", {}).json()["action"] == "wipe"
    assert api("POST", t + f"/accounts/{cw.ids['bob']}/devices/DEV1/resync", {"target": "contacts"}).status_code == 200
    assert api("DELETE", t + f"/accounts/{gina}", confirm="nobody").status_code == 400
    assert api("DELETE", t + f"/accounts/{gina}", confirm="gina").json() == {"deleted": gina}
    entries = api("GET", t + "/audit", limit=100).json()["entries"]
    assert all(e["via"] == "api" and e["actor"].startswith("token:") for e in entries[:5])
    assert {"account.create", "account.suspend", "account.password", "group.member", "folder.share",
            "device.wipe", "account.delete"} <= {e["action"] for e in entries}
    assert api("GET", t + "/accounts/999").status_code == 404
    assert api("POST", t + "/accounts", {"login": "Bad Login!"}).status_code == 400
    assert api("POST", t + "/accounts", {"login": "bob"}).status_code == 409


def _default(cw: ConsoleWorld, user_id: int) -> int:
    with cw.store.transaction(cw.tenant) as tx:
        found = default_folder_id(tx, user_id, Module.CONTACT)
    assert found is not None
    return found


def test_api_tokens_scope_and_revocation(cw: ConsoleWorld, spec: dict[str, Any]) -> None:
    mine = _token(cw, cw.tenant)
    api = Api(cw, mine, spec)
    other = f"/tenants/{cw.other}"
    assert api("GET", other).status_code == 404  # another tenant: as if it did not exist
    assert api("GET", other + "/accounts").status_code == 404
    assert api("PATCH", other + f"/accounts/{cw.ids['dave']}", {"active": False}).status_code == 404
    with cw.store.transaction(cw.other) as tx:
        assert accounts.get_user(tx, cw.ids["dave"]).active
    assert api("GET", "/tenants").status_code == 403  # platform operations
    assert api("GET", f"/tenants/{cw.tenant}", token="oxs_not-a-token").status_code == 401
    assert api("GET", f"/tenants/{cw.tenant}", token="").status_code == 401
    platform = Api(cw, _token(cw, None, "ops"), spec)
    assert {t["domain"] for t in platform("GET", "/tenants").json()["tenants"]} == {"example.com", "other.test"}
    created = platform("POST", "/tenants", {"domain": "api.test", "max_accounts": 3}).json()
    assert platform("PATCH", f"/tenants/{created['tenant_id']}", {"quota_bytes": 10**9}).json()["quota_bytes"] == 10**9
    assert platform("GET", other + "/accounts").json()["total"] == 2
    token_id = admin.list_tokens(cw.store, admin.cli_actor(), cw.tenant)[0]["id"]
    admin.revoke_token(cw.store, admin.cli_actor(), token_id)
    assert api("GET", f"/tenants/{cw.tenant}").status_code == 401  # revoked: at once
    assert requests.get(cw.url + "/admin/api/nowhere", timeout=30).status_code == 404


def test_invalid_tokens_are_throttled_per_address(store, live_server) -> None:  # type: ignore[no-untyped-def]
    from oxsync.dialects import install_all

    tenant = store.create_tenant("t.test")
    running = live_server(store, setup=install_all, console={"endpoint": "tcp:0:interface=127.0.0.1"},
                          auth={"max_failures_per_address": 3})
    url = f"http://127.0.0.1:{running.service.console_listener.port.getHost().port}/admin/api/tenants/{tenant.id}"
    codes = [requests.get(url, headers={"Authorization": "Bearer oxs_guess"}, timeout=30).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
