"""Guards the type-check ratchet (docs/types.md): mypy's errors and the `type: ignore` comments in
oxsync/ may only go down, file by file, against tests/data/mypy_baseline.json.

The first test runs mypy once (incremental cache in .mypy_cache/); the others check the comparison's
sentences on made-up counts, so a rename or a stale entry is reported the way the docs promise.
"""

from __future__ import annotations

from pathlib import Path

from tests import typecheck


def test_mypy_errors_and_ignores_stay_at_or_below_the_baseline() -> None:
    verdict = typecheck.check()
    assert not verdict.problems, verdict.report()


def test_a_file_above_its_baseline_or_unlisted_fails(tmp_path: Path) -> None:
    (tmp_path / "oxsync").mkdir()
    (tmp_path / "oxsync" / "a.py").write_text("")
    (tmp_path / "oxsync" / "new.py").write_text("")
    problems = typecheck.compare("errors", {"oxsync/a.py": 3, "oxsync/new.py": 1}, {"oxsync/a.py": 2}, tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith("oxsync/a.py: 3 mypy errors, above its baseline 2")
    assert problems[1].startswith("oxsync/new.py: 1 mypy errors, but it is not listed")


def test_a_file_below_its_baseline_fails_with_the_count_to_write(tmp_path: Path) -> None:
    (tmp_path / "oxsync").mkdir()
    (tmp_path / "oxsync" / "a.py").write_text("")
    problems = typecheck.compare("ignores", {"oxsync/a.py": 1}, {"oxsync/a.py": 4}, tmp_path)
    assert problems == [
        "oxsync/a.py: 1 `type: ignore` comments, below its baseline 4: lower the baseline to 1 in "
        "tests/data/mypy_baseline.json ['ignores'] (`make typecheck-baseline`)"]


def test_a_moved_file_names_both_places_and_the_count() -> None:
    problems = typecheck.compare("errors", {"oxsync/dav/core.py": 5}, {"oxsync/dav/old.py": 5}, Path("/nonexistent"))
    moved, gone = problems
    assert moved.startswith("oxsync/dav/core.py: 5 mypy errors, but it is not listed")
    assert '"oxsync/dav/core.py": 5' in moved and "oxsync/dav/old.py (listed 5, now 0)" in moved
    assert gone.startswith("oxsync/dav/old.py: listed with 5 mypy errors")
    assert "no longer exists: move the entry to where its code went" in gone


def test_lowering_never_raises_or_adds() -> None:
    counts = {"errors": {"a.py": 1, "b.py": 9, "new.py": 2}, "ignores": {"a.py": 0}}
    baseline = {"errors": {"a.py": 3, "b.py": 4, "gone.py": 2}, "ignores": {"a.py": 1}}
    assert typecheck.lowered(counts, baseline) == {"errors": {"a.py": 1, "b.py": 4}, "ignores": {}}


def test_ignores_are_counted_in_comments_only(tmp_path: Path) -> None:
    (tmp_path / "oxsync").mkdir()
    (tmp_path / "oxsync" / "m.py").write_text(
        'x = "# type: ignore"  # type: ignore[assignment]\n'
        "y = 1  #type:ignore\n"
        "# a note about typing, not an ignore\n")
    assert typecheck.ignore_counts(tmp_path) == {"oxsync/m.py": 2}
