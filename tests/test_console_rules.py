"""Self-service mail filter rules in the console (OXtender manual §6.2): the same code as `oxsync user
rules`, installed in a real Dovecot over ManageSieve and applied to delivered mail; without a mail
server, or with one out of reach, the page says so and the rules stay saved."""

from __future__ import annotations

import socket
import time

from oxsync.dialects import install_all
from oxsync.mail import rules as mail_rules
from oxsync.mail import sieve
from oxsync.store import admin
from tests.consolehelp import ConsoleClient, build_console_world
from tests.dovecot import make_message
from tests.test_sieve import _folder_subjects, mail_section, settings_of

SHOP_RULE = {"name": "shop news", "match": "anyof", "if_field_0": "from", "if_op_0": "contains",
             "if_value_0": "news@shop.example", "then_type_0": "move", "then_value_0": "Junk",
             "then_type_1": "mark_read"}


def _stored(store, tenant: int, user: int) -> list[str]:  # type: ignore[no-untyped-def]
    with store.session(tenant, user) as session:
        return [r["name"] for r in mail_rules.stored_rules(session)]


def test_rules_page_without_mail_server(store, live_server) -> None:  # type: ignore[no-untyped-def]
    cw = build_console_world(store, live_server)
    c = cw.browser()
    c.login("bob")
    page = c.get("/me/rules")
    assert page.status_code == 200 and 'id="no-mail-server"' in page.text
    bad = c.post("/me/rules", {**SHOP_RULE, "then_type_0": "forward", "then_value_0": "nobody"})
    assert bad.status_code == 400 and _stored(store, cw.tenant, cw.ids["bob"]) == []
    assert c.post("/me/rules", SHOP_RULE, csrf=False).status_code == 403
    done = c.post("/me/rules", {**SHOP_RULE, "name": "<script>x</script>"})
    assert done.status_code == 200 and "&lt;script&gt;x&lt;/script&gt;" in done.text and "<script>x" not in done.text
    assert 'id="no-mail-server"' in done.text and "news@shop.example" in done.text
    assert _stored(store, cw.tenant, cw.ids["bob"]) == ["<script>x</script>"]
    c.post("/me/rules/remove", {"name": "<script>x</script>"})
    assert _stored(store, cw.tenant, cw.ids["bob"]) == []
    assert [r["action"] for r in admin.read_audit(store, admin.cli_actor(), cw.tenant)].count("self.mail_rules") == 2


def test_rules_page_with_the_mail_server_out_of_reach(store, live_server) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:  # bound, never listening, held to the end: a connection to it is refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        cw = build_console_world(store, live_server, mail={"imap_host": "127.0.0.1", "managesieve_port": closed})
        c = cw.browser()
        c.login("bob")
        done = c.post("/me/rules", SHOP_RULE)
        assert done.status_code == 200 and 'id="notice"' in done.text
        assert "serveur de courrier n&#39;a pas pu être joint" in done.text
        assert _stored(store, cw.tenant, cw.ids["bob"]) == ["shop news"]  # kept, to install later


def test_rules_from_the_console_file_delivered_mail(mail, live_server) -> None:  # type: ignore[no-untyped-def]
    running = live_server(mail.store, setup=install_all, console={"endpoint": "tcp:0:interface=127.0.0.1"},
                          mail=mail_section(mail))
    c = ConsoleClient(f"http://127.0.0.1:{running.service.console_listener.port.getHost().port}")
    login = mail.alice_address.partition("@")[0]
    assert c.login(login, "alice-pw").url.endswith("/me")
    page = c.post("/me/rules", SHOP_RULE)
    assert page.status_code == 200 and 'id="no-mail-server"' not in page.text and "rules_unreachable" not in page.url
    rules, _ = sieve.active_definitions(settings_of(mail).mail, mail.alice_address)
    assert [r["name"] for r in rules] == ["shop news"]  # what Dovecot applies, read back
    mail.deliver(make_message("Weekly deals", sender="Shop <news@shop.example>", to=mail.alice_address))
    mail.deliver(make_message("Lunch?", sender="Bob <bob@example.net>", to=mail.alice_address))
    deadline = time.monotonic() + 10
    while "Weekly deals" not in _folder_subjects(mail, "Junk") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _folder_subjects(mail, "Junk") == ["Weekly deals", "True"]  # moved and marked read
    assert "Weekly deals" not in _folder_subjects(mail, "INBOX")
    c.post("/me/rules/remove", {"name": "shop news"})
    assert sieve.active_definitions(settings_of(mail).mail, mail.alice_address)[0] == []
    # the console's out-of-office is the same script's vacation rule (as a phone's Settings Oof)
    assert c.post("/me/oof", {"state": "1", "message": "Back on Monday"}).url.endswith("/me?notice=saved")
    rules, oof = sieve.active_definitions(settings_of(mail).mail, mail.alice_address)
    assert rules == [] and oof["state"] == "1" and oof["messages"]["AppliesToInternal"]["reply"] == "Back on Monday"
