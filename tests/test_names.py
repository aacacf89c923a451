"""One word, one meaning: tables, algorithms, versions and the served model each live under their own
name, and the served model does not import the serving service that imports it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import airec

PACKAGE = Path(airec.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


OLD_NAMES = ["airec.models", "airec.recsys.models", "airec.registry", "airec.serving.registry"]


@pytest.mark.parametrize("old", OLD_NAMES)
def test_the_ambiguous_names_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_each_word_names_one_thing():
    from airec.recsys.algorithms import ALGORITHMS
    from airec.serving.served import served_model
    from airec.tables import ModelVersion
    from airec.versions import views

    assert set(ALGORITHMS) == {"popularity", "itemknn", "ease", "autoencoder"}
    assert ModelVersion._meta.table_name == "model_versions"
    assert views.blp.name == "versions" and not hasattr(views, "ModelVersion")  # no view shadows the table
    assert hasattr(served_model, "sync")


def test_the_served_model_does_not_import_the_serving_service():
    assert "airec.serving.service" not in imported_modules(PACKAGE / "serving" / "served.py")
    assert "airec.serving.served" in imported_modules(PACKAGE / "serving" / "service.py")
