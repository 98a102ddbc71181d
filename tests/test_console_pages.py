"""The web console without a browser: every page and action over real HTTP, with the rights rules
(tenant admins confined to their tenant, plain users to self-service), CSRF and escaping."""

from __future__ import annotations

import re

import pytest

from oxsync.model import Module, Protocol
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.model.permissions import level_for_rights
from oxsync.store import accounts, admin
from oxsync.store.folders import default_folder_id
from oxsync.store.session import UserSession
from tests.consolehelp import ConsoleWorld, build_console_world
from tests.fixtures import raw_write


@pytest.fixture
def cw(store, live_server) -> ConsoleWorld:  # type: ignore[no-untyped-def]
    return build_console_world(store, live_server)


def _user(cw: ConsoleWorld, login: str, tenant: int | None = None):  # type: ignore[no-untyped-def]
    with cw.store.transaction(tenant or cw.tenant) as tx:
        return accounts.get_user(tx, accounts.find_user_id(tx, login) or -1)


def _audit_actions(cw: ConsoleWorld) -> list[str]:
    return [r["action"] for r in admin.read_audit(cw.store, admin.cli_actor(), cw.tenant)]


# ---------------------------------------------------------------- sign-in, sessions, CSRF


def test_sign_in_cookie_flags_csrf_and_throttle(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.get("/login")
    assert c.post("/login", {"login": "alice", "password": "alice-pw-1"}, csrf=False).status_code == 403
    bad = c.post("/login", {"login": "alice", "password": "wrong"})
    assert bad.status_code == 401 and "alice" in bad.text
    ok = c.login("alice")
    assert ok.status_code == 200 and ok.url.endswith(f"/t/{cw.tenant}")
    cookie = next(h for h in ok.history[0].raw.headers.getlist("Set-Cookie") if h.startswith("oxconsole="))
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" not in cookie  # no TLS here
    assert "default-src 'self'" in ok.headers["Content-Security-Policy"]
    # a session cookie from another secret, or tampered, is no session
    c.http.cookies.set("oxconsole", c.http.cookies["oxconsole"][:-2] + "xx")
    assert c.get(f"/t/{cw.tenant}/accounts").url.endswith("/login")
    # failed sign-ins are throttled like the dialects' (10 per login by default)
    t = cw.browser()
    statuses = [t.login("carol", "nope").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    assert t.login("carol").status_code == 429  # even the right password, while throttled


def test_csrf_less_posts_are_refused_and_change_nothing(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("alice")
    bob = cw.ids["bob"]
    assert c.post(f"/t/{cw.tenant}/accounts/{bob}/status", {"active": "0"}, csrf=False).status_code == 403
    assert c.post(f"/t/{cw.tenant}/accounts/{bob}/status", {"active": "0", "csrf": "forged"}, csrf=False).status_code == 403
    other = cw.browser()
    other.login("bob")  # another session's token does not fit this session
    assert c.post(f"/t/{cw.tenant}/accounts/{bob}/status", {"active": "0", "csrf": other.csrf},
                  csrf=False).status_code == 403
    assert _user(cw, "bob").active
    assert "account.suspend" not in _audit_actions(cw)


# ---------------------------------------------------------------- who sees what


def test_plain_user_sees_only_self_service(cw: ConsoleWorld) -> None:
    c = cw.browser()
    assert c.login("bob").url.endswith("/me")
    for path in (f"/t/{cw.tenant}", f"/t/{cw.tenant}/accounts", f"/t/{cw.tenant}/groups", f"/t/{cw.tenant}/devices",
                 f"/t/{cw.tenant}/audit", f"/t/{cw.tenant}/tokens", "/platform/tenants"):
        assert c.get(path).status_code == 403, path
    assert c.post(f"/t/{cw.tenant}/accounts/{cw.ids['carol']}/status", {"active": "0"}).status_code == 403
    assert _user(cw, "carol").active
    page = c.get("/me")
    assert page.status_code == 200 and "nav_accounts" not in page.text and "/t/" not in page.text


def test_tenant_admin_gets_404_for_another_tenants_ids(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("alice")
    dave, other = cw.ids["dave"], cw.other
    for path in (f"/t/{other}", f"/t/{other}/accounts", f"/t/{other}/accounts/{dave}", f"/t/{other}/groups",
                 f"/t/{other}/devices", f"/t/{other}/audit", f"/t/{other}/accounts/{dave}/folders"):
        assert c.get(path).status_code == 404, path
    assert c.post(f"/t/{other}/accounts/{dave}/status", {"active": "0"}).status_code == 404
    assert c.post(f"/t/{other}/accounts", {"login": "intruder"}).status_code == 404
    assert _user(cw, "dave", other).active
    # dave's id inside alice's own tenant is just an unknown account
    assert c.get(f"/t/{cw.tenant}/accounts/{dave + 100}").status_code == 404
    assert c.get("/platform/tenants").status_code == 403
    # and dave cannot reach example.com either
    d = cw.browser()
    assert d.login("dave").url.endswith(f"/t/{other}")
    assert d.get(f"/t/{cw.tenant}/accounts/{cw.ids['bob']}").status_code == 404


def test_user_controlled_strings_are_escaped(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("alice")
    evil = '<script>alert("x")</script>'
    created = c.post(f"/t/{cw.tenant}/accounts", {"login": "mallory", "display_name": evil, "proto_dav": "on"})
    assert created.status_code == 200
    c.post(f"/t/{cw.tenant}/groups", {"name": "g1", "display_name": evil})
    for path in (f"/t/{cw.tenant}/accounts", f"/t/{cw.tenant}/accounts/{_user(cw, 'mallory').id}",
                 f"/t/{cw.tenant}/groups"):
        text = c.get(path).text
        assert "&lt;script&gt;alert(" in text, path
        assert "<script>alert" not in text, path


# ---------------------------------------------------------------- accounts


def test_accounts_create_search_sort_page_suspend_reset_delete(store, live_server) -> None:  # type: ignore[no-untyped-def]
    from tests.consolehelp import build_console_world as build

    cw = build(store, live_server)
    cw.running.service.console.settings = cw.running.service.console.settings  # same object; page size below
    c = cw.browser()
    c.login("alice")
    t = cw.tenant
    created = c.post(f"/t/{t}/accounts", {"login": "frank", "display_name": "Frank Zappa", "proto_mobile": "on",
                                          "proto_dav": "on", "flag_sharing": "on", "quota": "20M",
                                          "aliases": "fz@example.com"})
    assert created.status_code == 200
    password = re.search(r'id="new-password">.*?<code>([^<]+)</code>', created.text, re.S).group(1)
    frank = _user(cw, "frank")
    assert frank.protocols == {Protocol.MOBILE, Protocol.DAV} and frank.sharing and not frank.public_folders
    assert frank.quota_bytes == 20 * 1024 * 1024 and frank.aliases == ["fz@example.com"]
    assert cw.store.authenticate("frank", password, Protocol.DAV).user_id == frank.id
    listing = c.get(f"/t/{t}/accounts", params={"q": "zapp"})
    assert "frank" in listing.text and "bob" not in listing.text and 'class="dot active"' in listing.text
    assert 'proto-mobile" title' in listing.text
    desc = c.get(f"/t/{t}/accounts", params={"sort": "login", "dir": "desc"}).text
    assert desc.index(">ops<") < desc.index(">frank<") < desc.index(">alice<")
    # suspend (data kept), htmx row swap, resume
    row = c.post(f"/t/{t}/accounts/{frank.id}/status", {"active": "0"}, headers={"HX-Request": "true"})
    assert row.text.lstrip().startswith(f'<tr id="account-{frank.id}"') and 'class="dot suspended"' in row.text
    assert not _user(cw, "frank").active
    c.post(f"/t/{t}/accounts/{frank.id}/status", {"active": "1"})
    assert _user(cw, "frank").active
    # edit rights and protocols
    c.post(f"/t/{t}/accounts/{frank.id}", {"display_name": "F. Zappa", "proto_outlook": "on",
                                           "flag_public_folders": "on"})
    frank = _user(cw, "frank")
    assert frank.protocols == {Protocol.OUTLOOK} and frank.public_folders and not frank.sharing
    assert frank.display_name == "F. Zappa"
    # reset password
    reset = c.post(f"/t/{t}/accounts/{frank.id}/password", {})
    new = re.search(r"<code>([^<]+)</code>", reset.text).group(1)
    assert cw.store.authenticate("frank", new, Protocol.OUTLOOK).user_id == frank.id
    # typed confirmation
    assert c.post(f"/t/{t}/accounts/{frank.id}/delete", {"confirm": "bob"}).status_code == 400
    assert _user(cw, "frank").id == frank.id
    assert c.post(f"/t/{t}/accounts/{frank.id}/delete", {"confirm": "frank"}).url.endswith(f"/t/{t}/accounts")
    with cw.store.transaction(t) as tx:
        assert accounts.find_user_id(tx, "frank") is None
    assert {"account.create", "account.suspend", "account.resume", "account.update", "account.password",
            "account.delete"} <= set(_audit_actions(cw))
    audit = c.get(f"/t/{t}/audit").text
    assert "account.delete" in audit and "alice@example.com" in audit and "127.0.0.1" in audit


def test_paging(store, live_server) -> None:  # type: ignore[no-untyped-def]
    from oxsync.dialects import install_all
    from tests.consolehelp import PASSWORDS

    tenant = store.create_tenant("paged.test")
    with store.transaction(tenant.id, write=True) as tx:
        accounts.create_user(tx, "admin", PASSWORDS["alice"], flags={"tenant_admin": True})
        for n in range(12):
            accounts.create_user(tx, f"user{n:02d}", "pw-pw-pw-1")
    running = live_server(store, setup=install_all, console={"endpoint": "tcp:0:interface=127.0.0.1", "page_size": 5})
    from tests.consolehelp import ConsoleClient

    c = ConsoleClient(f"http://127.0.0.1:{running.service.console_listener.port.getHost().port}")
    c.login("admin", PASSWORDS["alice"])
    first = c.get(f"/t/{tenant.id}/accounts").text
    assert "page 1 of 3" in first or "page 1 sur 3" in first
    third = c.get(f"/t/{tenant.id}/accounts", params={"page": 3}).text
    assert ">user10<" in third and ">user11<" in third and ">user00<" not in third and 'rel="next"' not in third


# ---------------------------------------------------------------- groups and resources


def test_groups_create_rename_toggle_delete(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("alice")
    t = cw.tenant
    page = c.post(f"/t/{t}/groups", {"name": "sales", "display_name": "Sales"})
    gid = int(page.url.rsplit("/", 1)[1])
    assert 'id="toggle-carol"' in page.text
    row = c.post(f"/t/{t}/groups/{gid}/members/{cw.ids['carol']}", {"member": "on"}, headers={"HX-Request": "true"})
    assert row.text.lstrip().startswith(f'<tr id="member-{cw.ids["carol"]}"') and 'aria-pressed="true"' in row.text
    with cw.store.transaction(t) as tx:
        assert accounts.get_group(tx, gid).members == [cw.ids["carol"]]
    c.post(f"/t/{t}/groups/{gid}/members/{cw.ids['carol']}", {"member": "off"})  # without htmx: a redirect
    c.post(f"/t/{t}/groups/{gid}/rename", {"display_name": "Sales team"})
    with cw.store.transaction(t) as tx:
        group = accounts.get_group(tx, gid)
        assert group.members == [] and group.display_name == "Sales team"
    c.post(f"/t/{t}/groups/{gid}/delete", {})
    with cw.store.transaction(t) as tx:
        assert accounts.find_group_id(tx, "sales") is None
    assert {"group.create", "group.member", "group.rename", "group.delete"} <= set(_audit_actions(cw))


def test_resources_and_bookings(cw: ConsoleWorld) -> None:
    from datetime import UTC, datetime, timedelta

    from oxsync.model import Appointment, Participant, ParticipantKind

    c = cw.browser()
    c.login("alice")
    t = cw.tenant
    start = datetime(2027, 3, 1, 10, tzinfo=UTC)
    with cw.store.session(t, cw.ids["bob"], write=True) as session:
        calendar = default_folder_id(session.tx, cw.ids["bob"], Module.CALENDAR)
        session.create_object(calendar, Appointment(title="Planning <b>", start_date=start,
                                                    end_date=start + timedelta(hours=1), participants=[
            Participant(ParticipantKind.USER, cw.ids["bob"]), Participant(ParticipantKind.RESOURCE, cw.room)]))
    page = c.get(f"/t/{t}/resources/{cw.room}")
    assert "Planning &lt;b&gt;" in page.text and "bob" in page.text
    made = c.post(f"/t/{t}/resources", {"name": "beamer", "email": "beamer@example.com", "kind": "equipment"})
    rid = int(made.url.rsplit("/", 1)[1])
    c.post(f"/t/{t}/resources/{rid}/delete", {})
    with cw.store.transaction(t) as tx:
        assert accounts.find_resource_id(tx, "beamer") is None


# ---------------------------------------------------------------- folders and sharing


def test_share_a_folder_at_an_outlook_level(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("alice")
    t, bob, carol = cw.tenant, cw.ids["bob"], cw.ids["carol"]
    with cw.store.transaction(t) as tx:
        contacts = default_folder_id(tx, bob, Module.CONTACT)
    page = c.get(f"/t/{t}/accounts/{bob}/folders")
    assert f'id="folder-{contacts}"' in page.text and "8 · Owner" in page.text
    c.post(f"/t/{t}/accounts/{bob}/folders/{contacts}/share", {"who": f"user:{carol}", "level": "4"})
    with cw.store.session(t, carol) as session:
        rights = session.rights(contacts)
    assert level_for_rights(rights) == 4  # carol now sees bob's contacts as an Author, in every dialect
    assert "4 · Author" in c.get(f"/t/{t}/accounts/{bob}/folders").text
    # without the collaborative sharing right, bob's folders cannot be shared, even by an admin
    c.post(f"/t/{t}/accounts/{bob}", {"proto_outlook": "on", "flag_public_folders": "on"})
    refused = c.post(f"/t/{t}/accounts/{bob}/folders/{contacts}/share", {"who": f"group:{cw.team}", "level": "2"})
    assert refused.status_code == 403
    c.post(f"/t/{t}/accounts/{bob}/folders/{contacts}/share", {"who": f"user:{carol}", "level": "none"})
    with cw.store.session(t, carol) as session:
        assert not session.rights(contacts).can_see_folder


# ---------------------------------------------------------------- devices


def test_devices_wipe_cancel_resync_remove(cw: ConsoleWorld) -> None:
    t, bob = cw.tenant, cw.ids["bob"]
    with cw.store.session(t, bob, write=True) as session:
        session.put_state("PHONE1", "", {"type": "iPhone", "ua": "Apple-iPhone/1", "version": "16.1",
                                          "info": {"model": "iPhone15,2"}, "policy_state": "provisioned",
                                          "first_seen": 1_700_000_000, "last_seen": 1_900_000_000})
        session.put_state("PHONE1", "c:21", {"key": "{abc}3", "known": "1-5,9", "filter": 0})
        session.put_state("PHONE1", "c:22", {"key": "{def}2", "known": "", "filter": 3})
    c = cw.browser()
    c.login("alice")
    listing = c.get(f"/t/{t}/devices").text
    assert "PHONE1" in listing and "iPhone15,2" in listing and "Apple-iPhone/1" in listing
    detail = c.get(f"/t/{t}/accounts/{bob}/devices/PHONE1")
    assert "{abc}3" in detail.text and ">6<" in detail.text  # items known from the ranges
    assert ">bob</a>" in detail.text
    c.post(f"/t/{t}/accounts/{bob}/devices/PHONE1/wipe_account", {})
    with cw.store.session(t, bob) as session:
        record = session.get_state("PHONE1", "")
    assert record["wipe"] == "requested" and record["wipe_kind"] == "account"
    c.post(f"/t/{t}/accounts/{bob}/devices/PHONE1/cancel_wipe", {})
    c.post(f"/t/{t}/accounts/{bob}/devices/PHONE1/resync", {"target": "21"})
    with cw.store.session(t, bob) as session:
        assert "wipe" not in session.get_state("PHONE1", "")
        assert session.get_state("PHONE1", "c:21") is None and session.get_state("PHONE1", "c:22") is not None
    c.post(f"/t/{t}/accounts/{bob}/devices/PHONE1/remove", {})
    with cw.store.session(t, bob) as session:
        assert session.device_ids() == []
    assert {"device.wipe_account", "device.cancel_wipe", "device.resync", "device.remove"} <= set(_audit_actions(cw))


# ---------------------------------------------------------------- self-service, languages, platform


def test_self_service_password_gab_oof(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("bob")
    assert c.post("/me/password", {"current": "wrong", "new": "n3w-Passw0rd", "repeat": "n3w-Passw0rd"}).status_code == 400
    assert c.post("/me/password", {"current": "bob-pw-1", "new": "n3w-Passw0rd", "repeat": "other"}).status_code == 400
    assert c.post("/me/password", {"current": "bob-pw-1", "new": "short", "repeat": "short"}).status_code == 400
    assert c.post("/me/password", {"current": "bob-pw-1", "new": "n3w-Passw0rd", "repeat": "n3w-Passw0rd"}).status_code == 200
    assert cw.store.authenticate("bob", "n3w-Passw0rd", Protocol.MOBILE).user_id == cw.ids["bob"]
    c.post("/me/gab", {"display_name": "Bob D.", "phone_business": "+33 1 23 45 67 89", "department": "R&D"})
    with cw.store.session(cw.tenant, cw.ids["carol"]) as session:  # everyone sees it in the address book
        entry = session.get_object(GLOBAL_ADDRESS_BOOK, session.user(cw.ids["bob"]).contact_id)
    assert entry.phone_business == "+33 1 23 45 67 89" and entry.department == "R&D"
    c.post("/me/oof", {"state": "2", "start": "2027-07-01T08:00", "end": "2027-07-15T18:00", "message": "En congés"})
    with cw.store.session(cw.tenant, cw.ids["bob"]) as session:
        oof = session.get_settings()["eas_oof"]
    assert oof["state"] == "2" and oof["start"] == "2027-07-01T08:00:00.000Z"
    assert oof["messages"]["AppliesToInternal"]["reply"] == "En congés"
    assert "En congés" in c.get("/me").text


def test_languages_from_header_and_switch(cw: ConsoleWorld) -> None:
    c = cw.browser()
    assert "Connexion" in c.get("/login").text  # French by default (the customers' documents are)
    assert "Sign in" in c.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"}).text
    c.get("/lang/en?back=/login")
    assert "Sign in" in c.get("/login", headers={"Accept-Language": "fr"}).text  # the switch wins
    c.get("/lang/fr?back=//evil.example")
    assert c.get("/login").url.endswith("/login")


def test_platform_admin_tenants_and_limits(cw: ConsoleWorld) -> None:
    c = cw.browser()
    c.login("ops")
    page = c.get("/platform/tenants")
    assert page.status_code == 200 and "other.test" in page.text
    c.post(f"/platform/tenants/{cw.other}", {"max_accounts": "2", "quota": "1G"})
    made = c.post("/platform/tenants", {"domain": "new.test", "max_accounts": "5", "quota": ""})
    assert made.status_code == 200
    tenants = {t.domain: t for t in cw.store.tenants()}
    assert tenants["other.test"].max_accounts == 2 and tenants["other.test"].quota_bytes == 1024**3
    assert tenants["new.test"].max_accounts == 5
    assert c.get(f"/t/{cw.other}/accounts").status_code == 200  # platform admins reach every tenant
    home = c.get(f"/t/{cw.other}").text
    assert "2 créés" in home or "2 created" in home


def test_suspension_and_role_changes_apply_at_once(cw: ConsoleWorld) -> None:
    alice, bob = cw.browser(), cw.browser()
    alice.login("alice")
    bob.login("bob")
    assert bob.get("/me").status_code == 200
    alice.post(f"/t/{cw.tenant}/accounts/{cw.ids['bob']}/status", {"active": "0"})
    assert bob.get("/me").url.endswith("/login")  # the very next request
    with cw.store.transaction(cw.tenant, write=True) as tx:
        accounts.update_user(tx, cw.ids["alice"], flags={"tenant_admin": False})
    assert alice.get(f"/t/{cw.tenant}/accounts").status_code == 403


_ = UserSession


def test_home_counts_accounts_storage_devices_and_failed_mails(cw: ConsoleWorld) -> None:
    import time

    from sqlalchemy import insert

    from oxsync.store import schema as s

    now_ms = int(time.time() * 1000)
    with raw_write(cw.store.engine) as conn:
        for n, state in enumerate(("failed", "sent", "dropped", "queued")):
            conn.execute(insert(s.outbound_mail).values(
                tenant_id=cw.tenant, kind="imip", idem_key=f"k{n}", sender="bob@example.com", recipients="[]",
                state=state, next_try_ms=now_ms, created_ms=now_ms, updated_ms=now_ms))
    with cw.store.session(cw.tenant, cw.ids["bob"], write=True) as session:
        session.put_state("P1", "", {"type": "iPhone", "last_seen": int(time.time())})
        session.put_state("P2", "", {"type": "iPhone", "last_seen": int(time.time()) - 3 * 86400})
    c = cw.browser()
    c.login("alice")
    c.get("/lang/en")
    home = c.get(f"/t/{cw.tenant}").text
    assert "4 created" in home and "46 available of 50" in home
    assert "1 active in the last 24 hours (2 known)" in home
    assert re.search(r'id="mail-failures">.*?<td>2</td>', home, re.S)
    assert "500.0 MiB" in home
