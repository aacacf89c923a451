"""The layers stay one-way and the modules small, read from the source (ast), without importing it.

Every `import` counts, at module level or inside a function (as import-linter counts them): an import
moved into a function still ties the two modules together.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "airec"

#: Cycles allowed, each with the reason it still exists. Emptying this is the goal.
KNOWN_CYCLES: dict[frozenset[str], str] = {}

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
#: Packages whose modules may not import one another's views (a view is the web face of its package).
DOMAINS = ("serving", "ingestion", "training", "stats")
#: What the ML core must never import: the web app and its database layer.
WEB_LIBRARIES = ("flask", "flask_smorest", "werkzeug", "peewee", "playhouse", "gunicorn", "webargs")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_modules()[name].read_text(encoding="utf-8"))


def _imports(name: str) -> list[tuple[str, str | None]]:
    """(module, name imported from it or None) for every import statement of module `name`."""
    path = _modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found += [(base, alias.name) for alias in node.names]
    return found


def _targets(name: str) -> set[str]:
    """The airec modules that module `name` imports (`from a import b` names a.b when that is a module)."""
    modules = _modules()
    out = set()
    for module, imported in _imports(name):
        submodule = f"{module}.{imported}"
        target = submodule if submodule in modules else module
        if target in modules and target != name:
            out.add(target)
    return out


def _cycles() -> list[frozenset[str]]:
    """The import cycles among airec's modules."""
    return _strongly_connected({name: sorted(_targets(name)) for name in _modules()})


def _strongly_connected(graph: dict[str, list[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    member = None
                    while member != node:
                        member = stack.pop()
                        component.add(member)
                    if len(component) > 1:
                        components.append(frozenset(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(graph[child])))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return components


def test_the_import_graph_is_read():
    """Guards the guards: the parser sees the imports the other tests rely on, and finds a cycle."""
    assert "airec.recsys.algorithms" in _targets("airec.benchmarks.catalogue")  # inside a function
    assert "airec.scope" in _targets("airec.db.proxy")  # `from airec import scope` names a module
    assert "airec.db" in _targets("airec.leases")
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": [], "e": ["a", "e"]}
    assert _strongly_connected(graph) == [frozenset("abc")]


def test_no_import_cycles_between_modules():
    found = _cycles()
    unexpected = [sorted(cycle) for cycle in found if cycle not in KNOWN_CYCLES]
    assert not unexpected, (
        f"import cycles (make them one-way, or list one in KNOWN_CYCLES with its reason): {unexpected}"
    )
    stale = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in found]
    assert not stale, f"these cycles are gone: remove them from KNOWN_CYCLES: {stale}"


def test_recsys_imports_nothing_of_the_web_app():
    offending = []
    for name in _modules():
        if not name.startswith("airec.recsys"):
            continue
        for module, _ in _imports(name):
            if module.startswith("airec") and not module.startswith("airec.recsys"):
                offending.append(f"{name} imports {module}")
            if module.split(".")[0] in WEB_LIBRARIES:
                offending.append(f"{name} imports {module}")
    assert not offending, offending


def test_domains_do_not_import_one_anothers_views():
    offending = []
    for name in _modules():
        own = name.split(".")[1] if name.count(".") else ""
        if own not in DOMAINS:
            continue
        for target in _targets(name):
            if target.endswith(".views") and target.split(".")[1] != own:
                offending.append(f"{name} imports {target}")
    assert not offending, offending


def test_benchmarks_use_only_public_names():
    """The benchmarks are commands over the functions users call: no private name, no view."""
    offending = []
    for name in _modules():
        if not name.startswith("airec.benchmarks"):
            continue
        for module, imported in _imports(name):
            if not module.startswith("airec"):
                continue
            if module.endswith(".views") or (imported or "").startswith("_"):
                offending.append(f"{name}: from {module} import {imported}")
        aliases = {alias for _, alias in _imports(name) if alias}
        for node in ast.walk(_tree(name)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
                    offending.append(f"{name}: {node.value.id}.{node.attr}")
    assert not offending, offending


def _oversized() -> dict[str, list[str]]:
    """relative path -> what in it is over the limits."""
    found: dict[str, list[str]] = {}
    for name, path in _modules().items():
        relative = path.relative_to(PACKAGE.parent).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.setdefault(relative, []).append(f"{lines} lines")
        for node in ast.walk(_tree(name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.setdefault(relative, []).append(f"{node.name}() {length} lines")
    return found


def test_no_module_over_450_lines_and_no_function_over_60():
    found = _oversized()
    assert not found, f"split by meaning: {found}"
