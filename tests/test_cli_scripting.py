"""Scripting: every list/show verb prints JSON with --json, and the global options are accepted after
the verb too (`oxsync user list --tenant x.org --json`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from oxsync.cli import build_parser, main

SHOW_VERBS = ("list", "show", "members", "quota", "audit")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [leaf for name, sub in action.choices.items() for leaf in leaf_commands(sub, (*path, name))]
    return [path]


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    url = f"sqlite:///{tmp_path}/db.sqlite"
    for argv in (["init", "--domain", "a.org"], ["init", "--domain", "b.org"],
                 ["user", "add", "alice", "--password", "Alice-pass-123", "--tenant", "b.org"],
                 ["user", "add", "bob", "--password", "Bob-pass-1234", "--tenant", "b.org"],
                 ["group", "add", "team", "--tenant", "b.org"]):
        assert main(["--db", url, *argv]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return url


def test_every_list_and_show_verb_prints_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "folder", "list", "--user", "alice", "--db", db, "--tenant", "b.org", "--json")
    assert code == 0, err
    folder_id = str(json.loads(out)[0]["id"])
    arguments = {
        ("user", "show"): ["alice"], ("user", "rules", "list"): ["alice"], ("user", "alias", "list"): ["alice"],
        ("group", "members"): ["team"], ("folder", "list"): ["--user", "alice"],
        ("folder", "show"): [folder_id, "--user", "alice"], ("device", "show"): ["alice", "no-such-device"],
    }
    no_data = {("device", "show")}
    """Verbs whose object the CLI cannot create: they must accept --json and fail cleanly (stdout empty)."""
    verbs = [leaf for leaf in leaf_commands(build_parser()) if leaf[-1] in SHOW_VERBS]
    assert len(verbs) >= 10
    for verb in verbs:
        code, out, err = run(capsys, *verb, *arguments.get(verb, []), "--db", db, "--tenant", "b.org", "--json")
        if verb in no_data and code == 1:
            assert out == "" and err.startswith("oxsync: "), (verb, out, err)
            continue
        assert code == 0, (verb, err)
        parsed = json.loads(out)  # stdout is one JSON document, whatever else the verb says (stderr)
        assert isinstance(parsed, (list, dict)), verb
    code, out, _ = run(capsys, "user", "list", "--json", "--tenant", "b.org", "--db", db)
    assert sorted(u["login"] for u in json.loads(out)) == ["alice", "bob"]


def test_global_options_after_the_verb(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = run(capsys, "--db", db, "--tenant", "b.org", "user", "list")
    after = run(capsys, "user", "list", "--db", db, "--tenant", "b.org")
    assert before == after and before[0] == 0 and "alice" in before[1]
    code, _, err = run(capsys, "user", "list", "--db", db)
    assert code == 2 and "choose one with --tenant" in err  # two tenants: still a usage error
    mixed = run(capsys, "--db", db, "user", "list", "--tenant", "a.org")
    assert mixed[0] == 0 and "alice" not in mixed[1]
