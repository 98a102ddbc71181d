"""Guards docs/architecture.md: the direction of imports between oxsync's packages.

The graph is read from the source with `ast` (no import is executed), every `import`/`from` counted,
including those inside functions and under TYPE_CHECKING: an arrow a reader sees is an arrow. Each rule
below is a sentence of docs/architecture.md; `KNOWN` lists today's exceptions by (module, target), so
the list can only shrink: a new arrow against a rule fails, and so does an exception that was mended
but not removed from the list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "oxsync"

ASSEMBLY = {"oxsync.server", "oxsync.dialects", "oxsync.demo", "oxsync.__main__", "oxsync.cli"}
"""Where the dialects meet; `oxsync.cli*` modules belong to it too (see `_part`)."""
DIALECTS = {"oxsync.eas", "oxsync.ox", "oxsync.dav", "oxsync.console", "oxsync.onboarding"}
"""Client-facing packages: they never import each other or the assembly."""
BELOW_DIALECTS = {"oxsync.model", "oxsync.config", "oxsync.recurrence", "oxsync.formats", "oxsync.store", "oxsync.render",
                  "oxsync.runtime", "oxsync.metrics", "oxsync.listeners", "oxsync.logs", "oxsync.web",
                  "oxsync.push", "oxsync.mail", "oxsync.maintenance", "oxsync.systemd", "oxsync.advertised",
                  "oxsync.config_example"}
"""Shared by the dialects: they import neither a dialect nor the assembly."""
ALLOWED_BETWEEN = {("oxsync.eas", "oxsync.mail")}
"""ActiveSync is the mail gateway's face (`eas` calls `mail`'s public API; `mail` never calls back)."""
STORE_MAY_NOT = ("twisted.web", "lxml", "oxsync.eas", "oxsync.ox", "oxsync.dav", "oxsync.web", "oxsync.push",
                 "oxsync.console", "oxsync.onboarding", "oxsync.mail", "oxsync.server", "oxsync.cli")

KNOWN: set[tuple[str, str]] = set()
"""Today's exceptions to the rules (none); a mended exception must leave this list."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                yield node.module


def import_graph() -> dict[str, set[str]]:
    return {_module_name(path): set(_imports(path)) for path in PACKAGE.rglob("*.py")}


def _part(module: str) -> str:
    """The package a module belongs to for these rules: `oxsync.X` (the cli_* modules are the assembly)."""
    parts = module.split(".")
    if len(parts) < 2:
        return module
    name = ".".join(parts[:2])
    return "oxsync.cli" if parts[1].startswith("cli") else name


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for module, targets in import_graph().items():
        own = _part(module)
        for target in targets:
            theirs = _part(target)
            if target.split(".")[0] in ("sqlalchemy", "alembic") and not _under(module, "oxsync.store"):
                found.add((module, target))
            if _under(module, "oxsync.store") and any(_under(target, p) for p in STORE_MAY_NOT):
                found.add((module, target))
            if not target.startswith("oxsync") or theirs == own or (own, theirs) in ALLOWED_BETWEEN:
                continue
            if own in DIALECTS and (theirs in DIALECTS or theirs in ASSEMBLY):
                found.add((module, theirs))
            if own in BELOW_DIALECTS and (theirs in DIALECTS or theirs in ASSEMBLY):
                found.add((module, theirs))
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "oxsync.store.api" in graph and "sqlalchemy" in {t.split(".")[0] for t in graph["oxsync.store.schema"]}


def test_imports_follow_the_documented_directions() -> None:
    new = violations() - KNOWN
    assert not new, "imports against docs/architecture.md: " + ", ".join(f"{a} -> {b}" for a, b in sorted(new))


def test_known_exceptions_are_still_needed() -> None:
    mended = KNOWN - violations()
    assert not mended, "remove from KNOWN (mended): " + ", ".join(f"{a} -> {b}" for a, b in sorted(mended))


def test_every_package_is_placed() -> None:
    """A new top-level package must be placed in a layer (and in docs/architecture.md)."""
    placed = ASSEMBLY | DIALECTS | BELOW_DIALECTS | {"oxsync"}
    tops = {_part(m) for m in import_graph()}
    assert tops - placed == set()
