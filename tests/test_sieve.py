"""Out-of-office (EAS Settings Oof) and filter rules (`oxsync user rules`) as the user's Sieve script in a
real Dovecot over ManageSieve: installed, read back, and applied to mail delivered by LMTP."""

from __future__ import annotations

import json
import time

import pytest
from sievelib.parser import Parser

from oxsync.eas import install
from oxsync.eas.wbxml import E
from oxsync.mail import sieve
from tests.dovecot import make_message
from tests.eas_client import client

S = "Settings"


def mail_section(mail) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {**mail.dovecot.mail_settings(), "managesieve_port": mail.dovecot.listeners.sieve}


@pytest.fixture
def phone(live_server, mail):  # type: ignore[no-untyped-def]
    running = live_server(mail.store, setup=install, mail=mail_section(mail))
    c = client(running, user=mail.alice_address)
    c.provision()
    return c


def settings_of(mail):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from oxsync.config import apply_overrides

    return replace(apply_overrides(mail.store.settings, {"mail": mail_section(mail)}))


def test_rules_render_to_valid_sieve() -> None:
    rules = [sieve.check_rule({"name": "news", "conditions": [{"field": "from", "op": "contains", "value": 'n"ews@'}],
                               "actions": [{"type": "move", "value": "Junk"}, {"type": "mark_read"}, {"type": "stop"}]}),
             sieve.check_rule({"name": "big", "match": "allof", "conditions": [{"field": "size", "op": "over",
                                                                               "value": "5M"}],
                               "actions": [{"type": "discard"}]})]
    oof = {"state": "2", "start": "2031-05-01T00:00:00.000Z", "end": "2031-05-10T00:00:00.000Z",
           "messages": {"AppliesToInternal": {"enabled": "1", "reply": "Back on the 10th", "body_type": "Text"},
                        "AppliesToExternalUnknown": {"enabled": "1", "reply": "<p>Away</p>", "body_type": "HTML"}}}
    vacation = sieve.vacation_from_oof(oof, ["example.com"], ["alice@example.com"])
    script = sieve.render(rules, oof, vacation)
    parser = Parser()
    assert parser.parse(script), parser.error
    assert 'fileinto "Junk"' in script and "size :over 5M" in script and 'currentdate :value "ge"' in script
    assert 'address :domain :is "from" ["example.com"]' in script and '"Away"' in script
    assert sieve.definitions(script) == (rules, oof)
    with pytest.raises(sieve.RuleError):
        sieve.check_rule({"name": "bad", "conditions": [{"field": "x-spam", "op": "contains", "value": "y"}],
                          "actions": [{"type": "discard"}]})
    assert sieve.vacation_from_oof({"state": "0"}, [], []) is None


def test_oof_from_the_phone_is_the_active_vacation_and_reads_back(phone, mail) -> None:  # type: ignore[no-untyped-def]
    set_oof = phone.post("Settings", E(f"{S}:Settings", E(f"{S}:Oof", E(f"{S}:Set", E(f"{S}:OofState", "1"),
        E(f"{S}:OofMessage", E(f"{S}:AppliesToInternal"), E(f"{S}:Enabled", "1"), E(f"{S}:ReplyMessage", "Away, ask Bob"),
          E(f"{S}:BodyType", "Text")),
        E(f"{S}:OofMessage", E(f"{S}:AppliesToExternalUnknown"), E(f"{S}:Enabled", "1"),
          E(f"{S}:ReplyMessage", "Out of office until Monday"), E(f"{S}:BodyType", "Text"))))))
    assert set_oof.body.find(f"{S}:Oof").findtext(f"{S}:Status") == "1"
    script = sieve.read_active(settings_of(mail).mail, mail.alice_address)
    assert "vacation" in script and "Out of office until Monday" in script and mail.domain in script

    def get():  # type: ignore[no-untyped-def]
        reply = phone.post("Settings", E(f"{S}:Settings", E(f"{S}:Oof", E(f"{S}:Get", E(f"{S}:BodyType", "Text")))))
        return reply.body.find(f"{S}:Oof").find(f"{S}:Get")

    got = get()
    assert got.findtext(f"{S}:OofState") == "1"
    assert {m.findtext(f"{S}:ReplyMessage") for m in got.findall(f"{S}:OofMessage")} == {
        "Away, ask Bob", "Out of office until Monday"}
    sieve.install(settings_of(mail).mail, mail.alice_address, 'require ["fileinto"];\nfileinto "Junk";\n')
    assert get().findtext(f"{S}:OofState") == "0"  # what the mail server applies, not what was once stored
    off = phone.post("Settings", E(f"{S}:Settings", E(f"{S}:Oof", E(f"{S}:Set", E(f"{S}:OofState", "0")))))
    assert off.body.find(f"{S}:Oof").findtext(f"{S}:Status") == "1"
    assert "vacation" not in sieve.read_active(settings_of(mail).mail, mail.alice_address)


def _folder_subjects(mail, folder: str) -> list[str]:  # type: ignore[no-untyped-def]
    imap = mail.imap()
    imap.select_folder(folder, readonly=True)
    uids = imap.search()
    found = [v[b"ENVELOPE"].subject.decode() for v in imap.fetch(uids, ["ENVELOPE"]).values()] if uids else []
    flags = [v[b"FLAGS"] for v in imap.fetch(uids, ["FLAGS"]).values()] if uids else []
    imap.logout()
    return sorted(found) + [str(b"\\Seen" in f) for f in flags]


def test_filter_rules_from_the_cli_file_delivered_mail(mail, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from oxsync.cli import main

    config = tmp_path / "oxsync.toml"
    section = mail_section(mail)
    config.write_text("[mail]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in section.items()))
    base = ["--config", str(config), "--db", mail.store.settings.store.url, "--tenant", mail.domain]
    capsys.readouterr()
    assert main([*base, "user", "rules", "add", mail.alice_address, "shop news", "--if", "from contains news@shop.example",
                 "--then", "move Junk", "--then", "mark-read", "--then", "stop"]) == 0
    assert "installed on the mail server" in capsys.readouterr().out
    assert main([*base, "user", "rules", "add", mail.alice_address, "bad", "--if", "x-spam contains y", "--then", "discard"]) == 2
    assert main([*base, "user", "rules", "list", mail.alice_address, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == ["shop news"]
    mail.deliver(make_message("Weekly deals", sender="Shop <news@shop.example>", to=mail.alice_address))
    mail.deliver(make_message("Lunch?", sender="Bob <bob@example.net>", to=mail.alice_address))
    deadline = time.monotonic() + 10
    while "Weekly deals" not in _folder_subjects(mail, "Junk") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _folder_subjects(mail, "Junk") == ["Weekly deals", "True"]  # moved and marked read
    assert "Lunch?" in _folder_subjects(mail, "INBOX") and "Weekly deals" not in _folder_subjects(mail, "INBOX")
    rules, _ = sieve.active_definitions(settings_of(mail).mail, mail.alice_address)
    assert [r["name"] for r in rules] == ["shop news"]
    assert main([*base, "user", "rules", "remove", mail.alice_address, "shop news"]) == 0
    assert sieve.active_definitions(settings_of(mail).mail, mail.alice_address)[0] == []
