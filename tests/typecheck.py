"""The type-check ratchet (docs/types.md): mypy over oxsync/, per-file counts that may only go down.

One mypy run (configured in pyproject.toml, incremental cache in .mypy_cache/) gives the errors of each
file; a tokenizer pass counts each file's `type: ignore` comments. Both are compared with
tests/data/mypy_baseline.json, file by file:

- a file above its count fails (new errors, or new ignores, are not allowed);
- a file not listed must have none;
- a file below its count fails too, with "lower the baseline to N", so the baseline is never stale;
- a listed file that no longer exists fails: when code moves, its entry moves with it.

`python -m tests.typecheck` prints the verdict; `--lower` rewrites the baseline downward only (it never
raises a count or adds a file). tests/test_types.py runs the check in `make check` and `make test`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "data" / "mypy_baseline.json"
CHECKED = "oxsync"
"""The tree mypy checks (pyproject.toml `[tool.mypy] files`) and whose ignores are counted."""
MYPY_TIMEOUT_SECONDS = 600
ERROR_LINE = re.compile(r"^(?P<path>[^:\s][^:]*\.pyi?):\d+(?::\d+)?: error: ", re.MULTILINE)
IGNORE_COMMENT = re.compile(r"#\s*type:\s*ignore\b")
KINDS = {"errors": "mypy errors", "ignores": "`type: ignore` comments"}


@dataclass
class Verdict:
    """What one check found: counts per kind and file, and the sentences that make it fail."""

    counts: dict[str, dict[str, int]]
    baseline: dict[str, dict[str, int]]
    problems: list[str] = field(default_factory=list)
    mypy_output: str = ""

    def totals(self) -> str:
        parts = []
        for kind, label in KINDS.items():
            now, was = sum(self.counts[kind].values()), sum(self.baseline.get(kind, {}).values())
            parts.append(f"{now} {label} in {len(self.counts[kind])} files (baseline {was})")
        return "; ".join(parts)

    def report(self) -> str:
        """The failing sentences, then mypy's lines for the files that went up (the rest is known debt)."""
        lines = [*self.problems, "", self.totals()]
        worse = {p.split(":", 1)[0] for p in self.problems if " above " in p or " not listed" in p}
        shown = [line for line in self.mypy_output.splitlines() if line.split(":", 1)[0] in worse]
        if shown:
            lines += ["", "mypy on the files that went up:", *shown]
        return "\n".join(lines)


def run_mypy(root: Path = ROOT) -> str:
    """mypy's output over the configured files; raises if mypy itself failed (crash, bad config)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(root / "pyproject.toml"),
         "--no-pretty", "--no-color-output", "--no-error-summary"],
        cwd=root, capture_output=True, text=True, timeout=MYPY_TIMEOUT_SECONDS, check=False)
    errors = ERROR_LINE.findall(proc.stdout)
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not errors):
        raise RuntimeError(f"mypy failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def error_counts(mypy_output: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in ERROR_LINE.findall(mypy_output):
        key = Path(path).as_posix()
        counts[key] = counts.get(key, 0) + 1
    return counts


def ignore_counts(root: Path = ROOT) -> dict[str, int]:
    """`type: ignore` comments per file (comments only: a string that mentions one is not counted)."""
    counts: dict[str, int] = {}
    for path in sorted((root / CHECKED).rglob("*.py")):
        with tokenize.open(path) as source:
            found = sum(1 for token in tokenize.generate_tokens(source.readline)
                        if token.type == tokenize.COMMENT and IGNORE_COMMENT.search(token.string))
        if found:
            counts[path.relative_to(root).as_posix()] = found
    return counts


def compare(kind: str, now: dict[str, int], allowed: dict[str, int], root: Path = ROOT) -> list[str]:
    """Every file whose count differs from its baseline, in a sentence that says what to do."""
    label, where = KINDS[kind], f"{BASELINE.relative_to(ROOT).as_posix()} [{kind!r}]"
    shrunk = {p: n for p, n in allowed.items() if now.get(p, 0) < n}
    problems = []
    for path in sorted(now.keys() | allowed.keys()):
        count, limit = now.get(path, 0), allowed.get(path, 0)
        if count > limit and path not in allowed:
            hint = ", ".join(f"{p} (listed {n}, now {now.get(p, 0)})" for p, n in sorted(shrunk.items()))
            problems.append(
                f"{path}: {count} {label}, but it is not listed in {where} (a file not listed must have "
                f"none). If its code moved here from a listed file, move that entry with it: "
                f'"{path}": {count}' + (f"; listed files that went down: {hint}" if hint else "")
                + ". Otherwise fix them.")
        elif count > limit:
            problems.append(f"{path}: {count} {label}, above its baseline {limit} in {where}: fix the new "
                            f"ones (new {label} are not allowed; if code moved into this file, move its "
                            f"count with it)")
        elif count < limit and not (root / path).exists():
            problems.append(f"{path}: listed with {limit} {label} in {where}, but the file no longer exists: "
                            f"move the entry to where its code went, or delete it")
        elif count < limit:
            problems.append(f"{path}: {count} {label}, below its baseline {limit}: lower the baseline to "
                            f"{count} in {where} (`make typecheck-baseline`)")
    return problems


def load_baseline(path: Path = BASELINE) -> dict[str, dict[str, int]]:
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {kind: dict(data.get(kind, {})) for kind in KINDS}


def check(root: Path = ROOT, baseline_path: Path = BASELINE) -> Verdict:
    output = run_mypy(root)
    counts = {"errors": error_counts(output), "ignores": ignore_counts(root)}
    baseline = load_baseline(baseline_path)
    problems = [p for kind in KINDS for p in compare(kind, counts[kind], baseline[kind], root)]
    return Verdict(counts, baseline, problems, output)


def lowered(counts: dict[str, dict[str, int]], baseline: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The baseline with each count lowered to today's where today's is lower; never raised, never added."""
    return {kind: {p: min(n, counts[kind].get(p, 0)) for p, n in sorted(baseline[kind].items())
                   if counts[kind].get(p, 0) > 0} for kind in KINDS}


def write_baseline(data: dict[str, dict[str, int]], path: Path = BASELINE) -> None:
    """One file per line, sorted, so concurrent moves merge line by line."""
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.typecheck", description=__doc__.split("\n")[0])
    parser.add_argument("--lower", action="store_true", help="rewrite the baseline downward only")
    args = parser.parse_args(argv)
    verdict = check()
    if args.lower:
        write_baseline(lowered(verdict.counts, verdict.baseline))
        verdict = Verdict(verdict.counts, load_baseline(), mypy_output=verdict.mypy_output)
        verdict.problems = [p for kind in KINDS
                            for p in compare(kind, verdict.counts[kind], verdict.baseline[kind])]
    print(verdict.report() if verdict.problems else f"ok: {verdict.totals()}")
    return 1 if verdict.problems else 0


if __name__ == "__main__":
    sys.exit(main())
