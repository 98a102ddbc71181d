"""`oxsync user set --tenant-admin/--sharing...`, `oxsync audit`, `oxsync token`: the CLI's side of issue 16."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from oxsync.cli import main
from oxsync.config import Settings, StoreSettings
from oxsync.store import accounts, admin
from oxsync.store.api import Store


def _run(db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["--db", db, *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_flags_audit_and_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path}/oxsync.db"
    assert _run(db, capsys, monkeypatch, "init", "--domain", "example.com")[0] == 0
    assert _run(db, capsys, monkeypatch, "user", "add", "alice", "--password", "secret-pw-1")[0] == 0
    code, text = _run(db, capsys, monkeypatch, "user", "set", "alice", "--tenant-admin", "--no-sharing",
                      "--no-public-folders")
    assert code == 0, text
    store = Store(Settings(store=StoreSettings(url=db, thread_pool_size=1)))
    try:
        tenant = store.tenant("example.com")
        with store.transaction(tenant.id) as tx:
            alice = accounts.get_user(tx, accounts.find_user_id(tx, "alice") or 0)
        assert alice.tenant_admin and not alice.sharing and not alice.public_folders and not alice.platform_admin
        code, text = _run(db, capsys, monkeypatch, "user", "show", "alice")
        assert "tenant_admin" in text and "sharing" in text
        code, text = _run(db, capsys, monkeypatch, "token", "add", "--name", "robot")
        assert code == 0
        token = text.split(": ", 1)[1].split()[0]
        assert admin.token_actor(store, token, "").may_act_on(tenant.id)
        assert _run(db, capsys, monkeypatch, "token", "revoke", "1")[0] == 0
        code, text = _run(db, capsys, monkeypatch, "audit")
        assert code == 0
        lines = text.splitlines()
        assert "token.revoke" in lines[1] and "token.create" in lines[2]
        assert any("user.set" in line and "alice" in line and "tenant_admin=True" in line for line in lines)
        assert any("user.add" in line for line in lines)
        assert "secret-pw-1" not in text  # passwords never reach the log
        assert "user.show" not in text  # reads are not admin actions
    finally:
        store.dispose()


def test_serve_prints_the_console_url_and_the_demo_admin() -> None:
    from oxsync.cli_serve import console_lines
    from oxsync.config import Settings, apply_overrides

    assert console_lines(Settings(), {"alice": "pw"}) == []  # off unless configured
    settings = apply_overrides(Settings(), {"console": {"endpoint": "tcp:8090:interface=127.0.0.1"}})
    lines = console_lines(settings, {"alice": "s3cret", "bob": "x"})
    assert lines[0].startswith("web console and admin API: http://127.0.0.1:8090/")
    assert lines[1].strip() == "console admin (demo tenant and platform): alice / s3cret"
    # `tcp:0`: the port the listener bound, not the endpoint's 0
    zero = apply_overrides(Settings(), {"console": {"endpoint": "tcp:0:interface=127.0.0.1"}})
    assert console_lines(zero, {}, 41234)[0].startswith("web console and admin API: http://127.0.0.1:41234/")
