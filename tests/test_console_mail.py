"""The console's and API's mail settings per account: send-as addresses and the contact collection
switch (hosting FAQ, seed 000), through the same store calls as `oxsync user alias` / `mail-options`."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from oxsync.store import admin, reminders, sending
from tests.consolehelp import ConsoleWorld, build_console_world
from tests.test_console_api import Api, _token


@pytest.fixture
def cw(store, live_server) -> ConsoleWorld:  # type: ignore[no-untyped-def]
    return build_console_world(store, live_server)


def _mail(cw: ConsoleWorld, login: str) -> tuple[list[str], bool]:
    with cw.store.transaction(cw.tenant) as tx:
        uid = cw.ids[login]
        return sending.send_as_addresses(tx, uid), reminders.options(tx, uid)["collect_addresses"]


def _audit(cw: ConsoleWorld) -> list[tuple[str, str]]:
    return [(r["action"], r["detail"]) for r in admin.read_audit(cw.store, admin.cli_actor(), cw.tenant)]


def test_account_page_edits_send_as_and_collection(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("alice")
    bob = cw.ids["bob"]
    page = c.get(f"/t/{cw.tenant}/accounts/{bob}")
    assert "Collecte automatique des contacts" in page.text and "listes de diffusion" in page.text  # the FAQ's warning
    assert 'id="collect-addresses" checked' not in page.text  # off by default
    done = c.post(f"/t/{cw.tenant}/accounts/{bob}/mail", {"add_send_as": "Sales@example.org nope",
                                                          "collect_addresses": "on"})
    assert done.status_code == 400 and _mail(cw, "bob") == ([], False)  # one bad address changes nothing
    done = c.post(f"/t/{cw.tenant}/accounts/{bob}/mail", {"add_send_as": "Sales@example.org, help@example.org",
                                                          "collect_addresses": "on"})
    assert done.status_code == 200 and _mail(cw, "bob") == (["help@example.org", "sales@example.org"], True)
    assert 'id="collect-addresses" checked' in done.text and "sales@example.org" in done.text
    row = c.get(f"/t/{cw.tenant}/accounts?q=bob").text  # the FAQ's icons in the accounts table
    assert 'class="right on collect"' in row and ">@2</span>" in row
    toggled = c.post(f"/t/{cw.tenant}/accounts/{bob}/status", {"active": "0"}, headers={"HX-Request": "true"}).text
    assert 'class="right on collect"' in toggled and ">@2</span>" in toggled
    c.post(f"/t/{cw.tenant}/accounts/{bob}/status", {"active": "1"})
    c.post(f"/t/{cw.tenant}/accounts/{bob}/mail", {"remove_send_as": "sales@example.org"})
    assert _mail(cw, "bob") == (["help@example.org"], False)  # an unticked box turns collection off
    actions = _audit(cw)
    assert ("account.send_as", "add=sales@example.org,help@example.org, remove=") in actions
    assert ("account.collect_addresses", "on=True") in actions and ("account.collect_addresses", "on=False") in actions
    english = c.get(f"/t/{cw.tenant}/accounts/{bob}", headers={"Accept-Language": "en"}).text
    assert "Automatic collection of contacts" in english and "mailing lists" in english
    # refused without CSRF, for a plain user, and for another tenant's admin
    assert c.post(f"/t/{cw.tenant}/accounts/{bob}/mail", {"collect_addresses": "on"}, csrf=False).status_code == 403
    u = cw.browser()
    u.login("bob")
    assert u.post(f"/t/{cw.tenant}/accounts/{bob}/mail", {"collect_addresses": "on"}).status_code == 403
    d = cw.browser()
    d.login("dave")
    assert d.post(f"/t/{cw.tenant}/accounts/{bob}/mail", {"collect_addresses": "on"}).status_code == 404
    assert _mail(cw, "bob") == (["help@example.org"], False)


def test_api_account_mail(cw: ConsoleWorld) -> None:
    spec = requests.get(cw.url + "/admin/api/openapi.json", timeout=30).json()
    validate(spec)
    api = Api(cw, _token(cw, cw.tenant), spec)
    path = f"/tenants/{cw.tenant}/accounts/{cw.ids['carol']}/mail"
    off = {"reminder_mails": True, "digest_hour": None}
    assert api("GET", path).json() == {"send_as": [], "collect_addresses": False, **off}
    body: dict[str, Any] = api("PATCH", path, {"send_as": ["Info@example.org"], "collect_addresses": True}).json()
    assert body == {"send_as": ["info@example.org"], "collect_addresses": True, **off} == api("GET", path).json()
    assert _mail(cw, "carol") == (["info@example.org"], True)
    assert api("PATCH", path, {"send_as": []}).json() == {"send_as": [], "collect_addresses": True, **off}
    assert api("PATCH", path, {"collect_addresses": "yes"}).status_code == 400
    assert api("PATCH", path, {"digest_hour": 24}).status_code == 400
    changed = api("PATCH", path, {"reminder_mails": False, "digest_hour": 6}).json()
    assert changed["reminder_mails"] is False and changed["digest_hour"] == 6
    with cw.store.transaction(cw.tenant) as tx:
        assert reminders.options(tx, cw.ids["carol"])["digest_hour"] == 6
    assert api("PATCH", path, {"send_as": "x@example.org"}).status_code == 400
    other = f"/tenants/{cw.other}/accounts/{cw.ids['dave']}/mail"
    assert api("GET", other).status_code == 404
    assert _mail(cw, "carol") == ([], True)


def test_setup_links_to_profiles_and_autoconfig_from_the_served_settings(store, live_server) -> None:  # type: ignore[no-untyped-def]
    cw = build_console_world(store, live_server, server={"public_host": "sync.example.com", "public_scheme": "https"},
                             mail={"imap_host": "imap.example.com", "imap_port": 993, "imap_tls": "implicit"})
    c = cw.browser()
    c.login("bob")
    me = c.get("/me").text
    base = "https://sync.example.com"
    autoconfig = "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob@example.com"
    for link in (f"{base}/profile", f"{base}/profile?mail=imap", base + autoconfig):
        assert f'href="{link}"' in me, link
    assert "<code>imap.example.com</code>" in me and "<code>993</code>" in me and "<code>bob@example.com</code>" in me
    a = cw.browser()
    a.login("alice")
    admin_page = a.get(f"/t/{cw.tenant}/accounts/{cw.ids['bob']}/setup").text  # the admin's set-up page for bob
    assert all(f'href="{link}"' in admin_page for link in (f"{base}/profile", base + autoconfig))
    # the links lead to the real resources on the HTTP listener, answering from the same settings
    http = f"http://127.0.0.1:{cw.http_port}"
    profile = requests.get(http + "/profile?mail=imap", auth=("bob", "bob-pw-1"), timeout=30)
    assert profile.status_code == 200 and b"imap.example.com" in profile.content and b"sync.example.com" in profile.content
    xml = requests.get(http + autoconfig, timeout=30)
    assert xml.status_code == 200 and "<hostname>imap.example.com</hostname>" in xml.text and base in xml.text


def test_setup_without_mail_says_so(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("bob")
    me = c.get("/me").text
    assert "Aucun serveur de courrier" in me and "profile?mail=imap" not in me and 'id="profile-link"' in me


def test_self_service_reminder_and_digest_options(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("bob")
    page = c.get("/me").text
    assert 'id="reminder-mails" checked' in page  # reminder mails are on by default, no digest
    assert c.post("/me/mail-options", {"digest_hour": "25"}).status_code == 400
    assert c.post("/me/mail-options", {"digest_hour": "7"}).status_code == 200
    with cw.store.transaction(cw.tenant) as tx:
        options = reminders.options(tx, cw.ids["bob"])
    assert options == {"reminder_mails": False, "digest_hour": 7, "collect_addresses": False}
    page = c.get("/me").text
    assert 'id="reminder-mails" checked' not in page and '<option value="7" selected>' in page
    assert c.post("/me/mail-options", {"reminder_mails": "on"}, csrf=False).status_code == 403
    assert ("self.mail_options", "reminder_mails=False, digest_hour=7") in _audit(cw)
