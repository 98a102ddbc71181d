"""The documentation tells the truth about settings and files: every setting it names exists, the
example configuration lists every setting with its default and meaning and is current, and nothing
refers to files outside this repository."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from oxsync.config import ConfigError, Settings, apply_overrides
from oxsync.config_example import example_toml, setting_docs

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "bench" / "README.md",
                                                ROOT / "conformance" / "README.md"]
SETTINGS = {s.name: {f.name for f in fields(getattr(Settings(), s.name))} for s in fields(Settings)}
ALL_KEYS = set().union(*SETTINGS.values())
EXPLICIT = re.compile(r"\[([a-z_]+)\]\s*`?([a-z][a-z0-9_]*)")
SECTION_HEADING = re.compile(r"^#+ .*`\[([a-z_]+)\]`")
BACKTICKED = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")
SETTING_SHAPE = re.compile(r"(^(max|min)_)|(_(seconds|bytes|days|kib|hours)$)")
NOT_SETTINGS = {"max_connections"}  # PostgreSQL's, named in docs/cluster.md
"""Backticked names shaped like settings that are something else."""


def doc_lines():  # type: ignore[no-untyped-def]
    for path in DOCS:
        if path.exists():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                yield path, number, line


def test_every_setting_named_in_the_docs_exists() -> None:
    wrong = []
    section = None
    for path, number, line in doc_lines():
        heading = SECTION_HEADING.match(line)
        if line.startswith("#"):
            section = heading.group(1) if heading else None
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}"
        for name, key in EXPLICIT.findall(line):
            if name in SETTINGS and key not in SETTINGS[name]:
                wrong.append(f"{where}: [{name}] {key}")
            elif name not in SETTINGS and line[line.find(f"[{name}]") - 1:].startswith("`["):
                wrong.append(f"{where}: no section [{name}]")
        explicit_keys = {key for _, key in EXPLICIT.findall(line)}
        for key in BACKTICKED.findall(line):
            if key in explicit_keys or key in NOT_SETTINGS or key.startswith("oxsync_"):
                continue
            if section is not None and key not in ALL_KEYS and SETTING_SHAPE.search(key):
                wrong.append(f"{where}: `{key}` is not in [{section}]")
            elif section is None and SETTING_SHAPE.search(key) and key not in ALL_KEYS:
                wrong.append(f"{where}: `{key}` is no setting")
    assert not wrong, "\n".join(wrong)


def test_toml_examples_in_the_docs_are_accepted() -> None:
    for path in DOCS:
        for block in re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            try:
                apply_overrides(Settings(), tomllib.loads(block))
            except (ConfigError, tomllib.TOMLDecodeError) as exc:
                pytest.fail(f"{path.relative_to(ROOT)}: {exc}\n{block}")


def test_the_doc_check_catches_a_wrong_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above is not vacuous: the name the issue found in the docs is caught."""
    bad = tmp_path / "bad.md"
    bad.write_text("Logins are cached for `[eas] auth_cache_seconds`.\n\n## Settings (`[dav]`)\n\n"
                   "`auth_cache_seconds` (0 = hash every request)\n")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", [bad])
    with pytest.raises(AssertionError) as failed:
        test_every_setting_named_in_the_docs_exists()
    assert "[eas] auth_cache_seconds" in str(failed.value) and "is not in [dav]" in str(failed.value)


def test_example_configuration_is_complete_and_current() -> None:
    text = example_toml()
    committed = (ROOT / "docs" / "oxsync.example.toml").read_text(encoding="utf-8")
    assert committed == text, "docs/oxsync.example.toml is stale: run `oxsync config example > docs/oxsync.example.toml`"
    docs = setting_docs()
    for section, keys in SETTINGS.items():
        for key in keys:
            assert docs[(section, key)].strip(), f"[{section}] {key} has no meaning"
            assert re.search(rf"^# {key} = ", text.split(f"[{section}]\n", 1)[1], flags=re.M), (section, key)
    uncommented = "\n".join(line[2:] if re.match(r"^# [a-z_]+ = ", line) else line for line in text.splitlines())
    assert apply_overrides(Settings(), tomllib.loads(uncommented)) == Settings()  # the defaults, exactly


def test_config_example_verb_prints_it() -> None:
    from tests.serveproc import oxsync

    result = oxsync("config", "example", timeout=60)
    assert result.returncode == 0 and result.stdout == example_toml()


def test_nothing_refers_to_files_outside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = re.compile(r"ARCHITECTURE(\.md)?\b|\breference/[a-z-]+\.md|\bseeds/|/work/shared")
    wrong = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".cfg", ".txt", ".service", ".ini") and name != "Makefile":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if outside.search(line) and name != "tests/test_docs.py":
                wrong.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not wrong, "\n".join(wrong)


def test_repository_files_named_in_docs_exist() -> None:
    named = re.compile(r"(?<![\w/.])((?:docs|bench|conformance|tests|oxsync|packaging)/[\w./-]+\.(?:md|py|toml|service))")
    missing = []
    for path, number, line in doc_lines():
        for ref in named.findall(line):
            if not (ROOT / ref).exists():
                missing.append(f"{path.relative_to(ROOT)}:{number}: {ref}")
    assert not missing, "\n".join(missing)
