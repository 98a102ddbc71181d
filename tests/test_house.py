"""Guards the house rules a reader relies on: every module names its tests (docs/tests.md), every test
file says which behaviour it guards (its docstring), and modules stay small (at most 600 lines).

Each rule reads the tree as it is (no import executed); the last test checks the table's sentences on
a made-up table, so a missing row or a test file that does not exist is reported the way docs/tests.md
promises.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests import testmap

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
KNOWN_LARGE: set[str] = set()
"""Modules allowed over MAX_LINES while being split (none today; remove an entry once split)."""
MIN_DOCSTRING = 30
"""Characters: enough for one sentence that names a behaviour."""


def test_every_module_names_its_tests() -> None:
    problems = testmap.problems()
    assert not problems, "docs/tests.md disagrees with the tree:\n" + "\n".join(problems)


def test_every_test_file_says_what_it_guards() -> None:
    silent = []
    for path in testmap.test_files():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if len(doc.strip()) < MIN_DOCSTRING:
            silent.append(path.name)
    assert not silent, f"these test files do not open with a docstring saying what they guard: {silent}"


def test_modules_stay_small() -> None:
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in (ROOT / "oxsync").rglob("*.py")}
    large = {name for name, lines in sizes.items() if lines > MAX_LINES}
    assert large <= KNOWN_LARGE, f"over {MAX_LINES} lines, split along a natural seam: {sorted(large - KNOWN_LARGE)}"


def test_the_table_check_names_what_is_missing_or_wrong() -> None:
    table = {module: ["tests/test_recurrence.py"] for module in testmap.modules()}
    del table["oxsync/recurrence/expand.py"]
    table["oxsync/recurrence/rrule.py"] = ["tests/test_no_such_file.py"]
    table["oxsync/gone.py"] = ["tests/test_recurrence.py"]
    problems = testmap.problems(table)
    assert len(problems) == 3
    assert problems[0].startswith("oxsync/recurrence/expand.py: no row")
    assert problems[1].startswith("oxsync/gone.py: listed in docs/tests.md but gone")
    assert problems[2] == "oxsync/recurrence/rrule.py: names tests/test_no_such_file.py, which does not exist"


def test_a_new_module_gets_a_proposed_row(tmp_path: Path) -> None:
    table = tmp_path / "tests.md"
    rows = [line for line in testmap.TABLE.read_text(encoding="utf-8").splitlines()
            if "oxsync/recurrence/expand.py" not in line]
    table.write_text("\n".join([*rows, "| `oxsync/gone.py` | `tests/test_recurrence.py` |"]) + "\n")
    changes = testmap.update(table)
    assert changes[0] == "dropped oxsync/gone.py"
    assert "added oxsync/recurrence/expand.py: tests/test_recurrence.py" in changes
    rows = testmap.read_table(table)
    assert "oxsync/gone.py" not in rows and rows["oxsync/recurrence/expand.py"] == ["tests/test_recurrence.py"]
    assert rows["oxsync/recurrence/rrule.py"] == testmap.read_table()["oxsync/recurrence/rrule.py"]  # kept as is
