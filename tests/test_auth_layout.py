"""airec.auth's modules each do one job and import one another one way only (issue 18, points 3 and 4)."""

from __future__ import annotations

import ast
from pathlib import Path

import airec.auth

PACKAGE = Path(airec.auth.__file__).parent


def _auth_imports(path: Path) -> set[str]:
    """The airec.auth modules that `path` imports anywhere (inside functions too)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airec.auth."):
            imported.add(node.module.removeprefix("airec.auth."))
        elif isinstance(node, ast.ImportFrom) and node.module == "airec.auth":
            imported.update(alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
        elif isinstance(node, ast.Import):
            imported.update(
                alias.name.removeprefix("airec.auth.")
                for alias in node.names
                if alias.name.startswith("airec.auth.")
            )
    return imported


def test_the_package_init_only_re_exports():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    work = [type(node).__name__ for node in tree.body if not isinstance(node, ast.Import | ast.ImportFrom)]
    assert work in ([], ["Expr", "Assign"], ["Expr"]), work  # the docstring and __all__ at most
    defined_here = [
        name
        for name in airec.auth.__all__
        if getattr(getattr(airec.auth, name), "__module__", "") == "airec.auth"
    ]
    assert defined_here == []


def test_no_import_circle_between_auth_modules():
    graph = {path.stem: _auth_imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert "service" in graph["gate"] and "cache" in graph["service"]  # the walk sees real imports

    def reaches(start: str, target: str, seen: frozenset = frozenset()) -> bool:
        return any(
            nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt}))
            for nxt in graph.get(start, ())
        )

    circles = sorted(name for name in graph if reaches(name, name))
    assert circles == [], f"these airec.auth modules import themselves through others: {circles}"
