"""One password, one set of rights: Dovecot authenticates IMAP logins against oxsync's accounts."""

from __future__ import annotations

import pytest

from oxsync.model import Protocol
from oxsync.store import accounts, removal
from tests.dovecot import MASTER_PASSWORD, MASTER_USER, make_message
from tests.fixtures import raw_write


def _refused(mail, login: str, password: str) -> bool:  # type: ignore[no-untyped-def]
    return mail.dovecot.login_refused(login, password)


def test_our_password_logs_in_and_lmtp_delivers(mail) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(make_message("hello", to=mail.alice_address))
    client = mail.imap("alice")
    folders = {name: flags for flags, _, name in client.list_folders()}
    assert {"INBOX", "Drafts", "Sent", "Trash"} <= set(folders)
    assert b"\\Trash" in folders["Trash"]
    client.select_folder("INBOX")
    assert len(client.search()) == 1
    client.logout()
    assert _refused(mail, mail.alice_address, "wrong")
    assert _refused(mail, "nobody@" + mail.domain, "alice-pw")


def test_password_change_applies_to_imap_at_once(mail) -> None:  # type: ignore[no-untyped-def]
    with mail.store.transaction(mail.tenant_id, write=True) as tx:
        accounts.update_user(tx, mail.alice, password="new-secret")
    assert _refused(mail, mail.alice_address, "alice-pw")
    assert not _refused(mail, mail.alice_address, "new-secret")


def test_imap_right_suspension_and_deletion(mail) -> None:  # type: ignore[no-untyped-def]
    with mail.store.transaction(mail.tenant_id, write=True) as tx:
        accounts.update_user(tx, mail.bob, protocols=[Protocol.MOBILE])
    assert _refused(mail, mail.bob_address, "bob-pw")
    # the gateway's master login still reaches a phone-only account's mailbox
    assert not _refused(mail, f"{mail.bob_address}*{MASTER_USER}", MASTER_PASSWORD)
    assert _refused(mail, f"{mail.bob_address}*{MASTER_USER}", "not-the-master-password")
    with mail.store.transaction(mail.tenant_id, write=True) as tx:
        accounts.update_user(tx, mail.alice, active=False)
    assert _refused(mail, mail.alice_address, "alice-pw")
    assert _refused(mail, f"{mail.alice_address}*{MASTER_USER}", MASTER_PASSWORD)
    with mail.store.transaction(mail.tenant_id, write=True) as tx:
        removal.delete_user(tx, mail.bob)
    assert _refused(mail, f"{mail.bob_address}*{MASTER_USER}", MASTER_PASSWORD)


def test_alias_address_logs_into_the_same_mailbox(mail) -> None:  # type: ignore[no-untyped-def]
    with mail.store.transaction(mail.tenant_id, write=True) as tx:
        accounts.add_alias(tx, mail.alice, f"a.martin@{mail.domain}")
    mail.deliver(make_message("to the alias"), to=f"a.martin@{mail.domain}")
    client = mail.dovecot.imap(f"a.martin@{mail.domain}", "alice-pw")
    client.select_folder("INBOX")
    assert len(client.search()) == 1
    client.logout()
    other = mail.imap("alice")
    other.select_folder("INBOX")
    assert len(other.search()) == 1
    other.logout()


def test_new_accounts_and_migrated_accounts_have_the_imap_right(store) -> None:  # type: ignore[no-untyped-def]
    tenant = store.create_tenant("rights.example")
    with store.transaction(tenant.id, write=True) as tx:
        user = accounts.create_user(tx, "dora", "dora-pw")
    assert Protocol.IMAP in user.protocols


@pytest.mark.parametrize("text", ["imap", "outlook,imap"])
def test_cli_parses_the_imap_right(text: str) -> None:
    from oxsync.cli_admin import parse_protocols

    assert Protocol.IMAP in parse_protocols(text)


def test_migration_0007_grants_imap_to_accounts_that_had_rights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, text

    from oxsync.store.migrate import upgrade

    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "0012")
    with raw_write(engine) as conn:
        conn.execute(text("INSERT INTO tenants (id, domain, usage_bytes, rev, last_ms, min_valid_rev) VALUES (1, 'old.example', 0, 0, 0, 0)"))
        for uid, rights in ((1, "dav,mobile,outlook"), (2, "")):
            conn.execute(text("INSERT INTO users (tenant_id, id, login, password_hash, display_name, first_name, "
                              "last_name, email, protocols, active, usage_bytes, last_ms, settings) VALUES "
                              "(1, :id, :login, 'x', '', '', '', :login, :rights, 1, 0, 0, '{}')"),
                         {"id": uid, "login": f"u{uid}", "rights": rights})
    upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, protocols FROM users")).all())
    engine.dispose()
    assert set(rows[1].split(",")) == {"dav", "mobile", "outlook", "imap"}
    assert rows[2] == ""
