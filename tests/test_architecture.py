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

ASSEMBLY = {"oxsync.server", "oxsync.dialects", "oxsync.demo", "oxsync.__main__", "oxsync.cli", "oxsync.texts_ahead"}
"""Where the dialects meet; `oxsync.cli*` modules belong to it too (see `_part`)."""
DIALECTS = {"oxsync.eas", "oxsync.ox", "oxsync.dav", "oxsync.console", "oxsync.onboarding"}
"""Client-facing packages: they never import each other or the assembly."""
BELOW_DIALECTS = {"oxsync.model", "oxsync.config", "oxsync.endpoints", "oxsync.recurrence", "oxsync.formats", "oxsync.store", "oxsync.render",
                  "oxsync.runtime", "oxsync.metrics", "oxsync.listeners", "oxsync.processes", "oxsync.logs", "oxsync.web",
                  "oxsync.push", "oxsync.mail", "oxsync.maintenance", "oxsync.systemd", "oxsync.advertised",
                  "oxsync.config_example", "oxsync.skips"}
"""Shared by the dialects: they import neither a dialect nor the assembly."""
ONLY_FROM = {"oxsync.model": ("oxsync.model",), "oxsync.recurrence": ("oxsync.model", "oxsync.recurrence")}
"""Plain data imports nothing else of oxsync; the recurrence engine only the data (it reads no settings:
the window and the instance cap are its callers' parameters)."""
ALLOWED_BETWEEN = {("oxsync.eas", "oxsync.mail")}
"""ActiveSync is the mail gateway's face (`eas` calls `mail`'s public API; `mail` never calls back)."""
STORE_MAY_NOT = ("twisted.web", "lxml", "oxsync.eas", "oxsync.ox", "oxsync.dav", "oxsync.web", "oxsync.push",
                 "oxsync.console", "oxsync.onboarding", "oxsync.mail", "oxsync.server", "oxsync.cli", "oxsync.render")
"""`oxsync.render` imports the store (its work budget): the store reports skipped rows to `oxsync.skips`."""

KNOWN: set[tuple[str, str]] = set()
"""Today's exceptions to the rules (none); a mended exception must leave this list."""

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Import cycles between the members of one package (a member is a module or a subpackage taken
whole, so `oxsync.store` <-> `oxsync.render` would be a cycle inside `oxsync`) that exist today: none
(issue 12 broke the last ones). It stays empty: a new cycle fails."""

DAV_LAYERS: list[dict[str, set[str]]] = [
    {"core": {"xml", "layout", "texts", "filters", "freebusy", "context", "inbox", "tree", "props", "multistatus",
              "reportdata", "stream", "members", "warm", "preparse"}},
    {"methods": {"propfind", "objects", "scheduling"}, "reports": {"reports", "sync", "principals"}},
    {"dispatch": {"resource", "__init__"}},
]
"""Inside `oxsync/dav/` (docs/architecture.md, "Inside dav/"): bottom to top; a module imports modules of
lower layers and of its own group only (methods and reports do not import each other)."""



def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> Iterator[str]:
    """What `path` imports; `from pkg import name` names the submodule `pkg.name` when there is one."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module:
                base = node.module
            else:
                continue
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def import_graph() -> dict[str, set[str]]:
    paths = list(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(path): set(_imports(path, modules)) for path in paths}


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
            if own in ONLY_FROM and target.startswith("oxsync") and not any(
                _under(target, p) for p in ONLY_FROM[own]
            ):
                found.add((module, target))
            if not target.startswith("oxsync") or theirs == own or (own, theirs) in ALLOWED_BETWEEN:
                continue
            if own in DIALECTS and (theirs in DIALECTS or theirs in ASSEMBLY):
                found.add((module, theirs))
            if own in BELOW_DIALECTS and (theirs in DIALECTS or theirs in ASSEMBLY):
                found.add((module, theirs))
    return found


def _child(package: str, module: str) -> str | None:
    """The member of `package` (a module, or a subpackage taken whole) that holds `module`; the
    package's own `__init__` is the package's name."""
    if module == package:
        return package
    if not module.startswith(package + "."):
        return None
    return package + "." + module[len(package) + 1:].split(".")[0]


def package_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """Arrows between the members of `package`: one from A to B when any module in A imports one in B."""
    arrows: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = _child(package, module)
        if source is None:
            continue
        found = arrows.setdefault(source, set())
        for target in targets:
            member = _child(package, target)
            if member is not None and member != source:
                found.add(member)
    return arrows


def strongly_connected(arrows: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components with more than one member (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(arrows):
        if start in index:
            continue
        work = [(start, iter(sorted(arrows.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(arrows.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def package_cycles(graph: dict[str, set[str]] | None = None) -> set[frozenset[str]]:
    """Every import cycle between the members of one package of oxsync (oxsync itself included)."""
    graph = import_graph() if graph is None else graph
    packages = {_module_name(path) for path in PACKAGE.rglob("__init__.py")}
    return {cycle for package in packages for cycle in strongly_connected(package_graph(graph, package))}


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "oxsync.store.api" in graph and "sqlalchemy" in {t.split(".")[0] for t in graph["oxsync.store.schema"]}


def test_imports_follow_the_documented_directions() -> None:
    new = violations() - KNOWN
    assert not new, "imports against docs/architecture.md: " + ", ".join(f"{a} -> {b}" for a, b in sorted(new))


def test_known_exceptions_are_still_needed() -> None:
    mended = KNOWN - violations()
    assert not mended, "remove from KNOWN (mended): " + ", ".join(f"{a} -> {b}" for a, b in sorted(mended))


def _names(cycles: set[frozenset[str]]) -> str:
    return "; ".join(" <-> ".join(sorted(c)) for c in sorted(cycles, key=sorted))


def test_no_import_cycle_inside_a_package() -> None:
    new = package_cycles() - KNOWN_CYCLES
    assert not new, "import cycles (break them; KNOWN_CYCLES only shrinks): " + _names(new)


def test_known_cycles_are_still_there() -> None:
    mended = KNOWN_CYCLES - package_cycles()
    assert not mended, "remove (or shrink) in KNOWN_CYCLES, mended: " + _names(mended)


def test_a_planted_cycle_is_found() -> None:
    """The rule sees a cycle through a function-level import, and a `from pkg import module` arrow."""
    graph = import_graph()
    graph["oxsync.dav.xml"] = graph["oxsync.dav.xml"] | {"oxsync.dav.resource"}
    assert any({"oxsync.dav.xml", "oxsync.dav.resource"} <= c for c in package_cycles(graph))
    assert "oxsync.dav.filters" in graph["oxsync.dav.reports"]  # written `from oxsync.dav import filters`


def _dav_group(module: str) -> tuple[int, str] | None:
    name = module.removeprefix("oxsync.dav").lstrip(".") or "__init__"
    for level, groups in enumerate(DAV_LAYERS):
        for group, members in groups.items():
            if name in members:
                return level, group
    return None


def dav_violations(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(module, target) pairs inside oxsync/dav/ that point up or sideways between the layers."""
    found: set[tuple[str, str]] = set()
    for module, targets in graph.items():
        if not _under(module, "oxsync.dav"):
            continue
        mine = _dav_group(module)
        for target in targets:
            theirs = _dav_group(target) if _under(target, "oxsync.dav") else None
            if mine is None or theirs is None:
                continue
            if theirs[0] > mine[0] or (theirs[0] == mine[0] and theirs[1] != mine[1]):
                found.add((module, target))
    return found


def test_dav_is_layered() -> None:
    graph = import_graph()
    unplaced = {m for m in graph if _under(m, "oxsync.dav") and _dav_group(m) is None}
    assert not unplaced, f"place these in DAV_LAYERS (and docs/architecture.md): {sorted(unplaced)}"
    wrong = dav_violations(graph)
    assert not wrong, "imports against dav/'s layers: " + ", ".join(f"{a} -> {b}" for a, b in sorted(wrong))
    planted = {**graph, "oxsync.dav.props": graph["oxsync.dav.props"] | {"oxsync.dav.reports"},
               "oxsync.dav.sync": graph["oxsync.dav.sync"] | {"oxsync.dav.objects"}}
    assert dav_violations(planted) == {("oxsync.dav.props", "oxsync.dav.reports"),
                                       ("oxsync.dav.sync", "oxsync.dav.objects")}


def test_every_package_is_placed() -> None:
    """A new top-level package must be placed in a layer (and in docs/architecture.md)."""
    placed = ASSEMBLY | DIALECTS | BELOW_DIALECTS | {"oxsync"}
    tops = {_part(m) for m in import_graph()}
    assert tops - placed == set()
