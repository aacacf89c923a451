"""Issue 18.1: one ModelStore interface, two implementations chosen once from AIREC_MODEL_STORE; no
other module asks which kind it holds, and the .fetch-* cache is the database store's alone."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from airec.config import Settings
from airec.modelstore import CorruptModel, ModelStore, StoreKind, UnsafeName, make_store
from airec.modelstore.database import DatabaseStore
from airec.modelstore.files import FilesStore

AIREC = Path(__file__).resolve().parents[1] / "airec"
ASKS_WHICH_STORE = re.compile(r"model_store\s*[!=]=|database_store|(==|!=|\bis)\s*StoreKind\.|\.fetch-")


def protocol_methods() -> set[str]:
    return {
        name for name, _ in inspect.getmembers(ModelStore, inspect.isfunction) if not name.startswith("_")
    }


@pytest.mark.parametrize("kind, cls", [("files", FilesStore), ("database", DatabaseStore)])
def test_each_kind_is_one_implementation_of_the_whole_interface(kind, cls, tmp_path):
    store = make_store(kind, tmp_path)
    assert type(store) is cls and store.kind == StoreKind(kind) and store.models_dir == tmp_path
    for name in protocol_methods():
        ours = inspect.signature(getattr(cls, name))
        theirs = inspect.signature(getattr(ModelStore, name))
        assert list(ours.parameters) == list(theirs.parameters), name


def test_an_unknown_kind_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="AIREC_MODEL_STORE"):
        Settings.from_env({"model_store": "s3"})
    with pytest.raises(ValueError):
        make_store("s3", tmp_path)


def test_the_files_store_has_no_other_copy_and_checks_names(tmp_path):
    store = make_store("files", tmp_path)
    assert store.holds("v1") is False and store.tidy() == [] and store.trim(set()) == []
    with pytest.raises(CorruptModel, match="no copy other than"):
        store.fetch("v1")
    with pytest.raises(UnsafeName):
        store.folder("../v1")


def test_no_module_outside_the_model_store_asks_which_store_it_has():
    offenders = [
        f"{path.relative_to(AIREC)}:{number}: {line.strip()}"
        for path in AIREC.rglob("*.py")
        if path.parent.name != "modelstore"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ASKS_WHICH_STORE.search(line)
    ]
    assert offenders == []
