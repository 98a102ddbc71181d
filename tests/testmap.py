"""Which test files guard which module: the table in docs/tests.md, its check and its generator.

The convention: every module under oxsync/ has one row in docs/tests.md naming the test files that
guard it (the ones to run after changing it). tests/test_house.py checks that every module has a row
with at least one test file, that every test file named exists, and that no row names a module that is
gone. The rows are kept by hand; `python -m tests.testmap` adds a proposed row for each module that has
none and drops the rows of modules that are gone (it never rewrites an existing row). Its proposal, best
first: test files that import the module, then those that name it (`oxsync.store.timeranges` or
`store/timeranges.py`), then the tests of its package that mention its name; read it before committing.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "tests.md"
ROW = re.compile(r"^\| `(?P<module>oxsync/[^`]+\.py)` \| (?P<tests>.*) \|$")
TEST_NAME = re.compile(r"`(tests/[^`]+\.py)`")
MAX_PROPOSED = 5
PACKAGE_TESTS = {
    "console": ("test_console_",), "dav": ("test_dav_",), "eas": ("test_eas_",), "ox": ("test_ox_",),
    "formats": ("test_ical", "test_vcard", "test_kept"), "mail": ("test_mail_", "test_eas_mail", "test_sieve"),
    "onboarding": ("test_onboarding",), "push": ("test_ox_push", "test_eas_push", "test_pgbus"),
    "store": ("test_store_", "test_changes", "test_schema"), "recurrence": ("test_recurrence",),
    "web": ("test_server", "test_http_limits", "test_hostile_headers"), "model": ("test_store_objects",),
}
"""Where a module's package is tested when no test file imports or names the module itself."""
STRUCTURAL = {"test_architecture.py", "test_types.py", "test_house.py", "test_docs.py"}
"""They read every module (import graph, types, sizes, docs) but guard no module's behaviour."""


def modules() -> list[str]:
    """Every module of the product, as a path relative to the repository (`oxsync/eas/http.py`)."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "oxsync").rglob("*.py")
                  if "migrations/versions" not in p.as_posix())


def test_files() -> list[Path]:
    return sorted((ROOT / "tests").glob("test_*.py"))


@functools.cache
def _source(path: Path) -> tuple[str, frozenset[str]]:
    text = path.read_text(encoding="utf-8")
    return text, frozenset(_imported(ast.parse(text)))


def read_table(path: Path = TABLE) -> dict[str, list[str]]:
    """module path -> test file paths, from the table's rows."""
    table: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            table[match["module"]] = TEST_NAME.findall(match["tests"])
    return table


def _dotted(module: str) -> str:
    name = module.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def _imported(tree: ast.AST) -> set[str]:
    """Dotted names a test imports, `from pkg import name` counted as both `pkg` and `pkg.name`."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def propose(module: str, tests: Iterable[Path] | None = None) -> list[str]:
    """The test files that most likely guard `module`, best first (at most MAX_PROPOSED)."""
    dotted, parts = _dotted(module), module.removesuffix(".py").split("/")
    stem = parts[-2] if parts[-1] == "__init__" else parts[-1]
    package = parts[1] if len(parts) > 2 else ""
    prefixes = PACKAGE_TESTS.get(package, (f"test_{package}",) if package else ())
    scored: list[tuple[int, str]] = []
    in_package: list[str] = []
    topic = stem.removeprefix("cli_")
    for path in tests if tests is not None else test_files():
        if path.name in STRUCTURAL:
            continue
        text, imported = _source(path)
        name = path.relative_to(ROOT).as_posix()
        score = 4 * (dotted in imported) + 3 * (len(topic) > 2 and topic in path.stem)
        score += 2 * (re.search(rf"\b{re.escape(dotted)}\b", text) is not None or module.split("/", 1)[1] in text)
        if prefixes and path.name.startswith(prefixes):
            in_package.append(name)
            score += min(2, len(re.findall(rf"\b{re.escape(stem)}\b", text, re.IGNORECASE)) // 2)
        if score:
            scored.append((score, name))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = [name for _, name in scored[:MAX_PROPOSED]]
    return best or in_package[:MAX_PROPOSED]


def problems(table: dict[str, list[str]] | None = None) -> list[str]:
    """Sentences saying where the table and the tree disagree (empty when they agree)."""
    table = read_table() if table is None else table
    found = []
    for module in modules():
        if not table.get(module):
            found.append(f"{module}: no row (or no test file) in docs/tests.md; `python -m tests.testmap` "
                         "proposes one")
    for module, tests in sorted(table.items()):
        if not (ROOT / module).exists():
            found.append(f"{module}: listed in docs/tests.md but gone (`python -m tests.testmap` drops it)")
        found.extend(f"{module}: names {test}, which does not exist" for test in tests
                     if not (ROOT / test).is_file())
    return found


def update(path: Path = TABLE) -> list[str]:
    """Add a proposed row for each module without one, drop rows of modules that are gone; the changes."""
    lines = path.read_text(encoding="utf-8").splitlines()
    existing = read_table(path)
    alive = set(modules())
    kept = [line for line in lines if not ((m := ROW.match(line)) and m["module"] not in alive)]
    changes = [f"dropped {m}" for m in sorted(set(existing) - alive)]
    rows = {m["module"]: line for line in kept if (m := ROW.match(line))}
    for module in sorted(alive - set(existing)):
        proposed = propose(module)
        rows[module] = f"| `{module}` | {' '.join(f'`{t}`' for t in proposed)} |"
        changes.append(f"added {module}: {', '.join(proposed) or 'NOTHING FOUND: name its tests by hand'}")
    head = [line for line in kept if not ROW.match(line)]
    path.write_text("\n".join([*head, *(rows[m] for m in sorted(rows))]) + "\n", encoding="utf-8")
    return changes


if __name__ == "__main__":
    for change in update():
        print(change)
    sys.exit(1 if problems() else 0)
