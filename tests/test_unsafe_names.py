"""Issue 17.5: names read from the database never lead the service outside its model store.

Every call site that builds a path from a stored name gets a row edited to point at `../outside`, a
folder next to the model store that holds a complete model. An audit hook watches every open, mkdir,
rename, listing and rmtree while the call runs: touching `outside` is refused and recorded.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from airec import leases
from airec.config import Settings
from airec.db import atomic_write, database
from airec.modelstore import database as dbstore
from airec.modelstore import folders
from airec.modelstore.names import UnsafeName, safe_name, safe_relative
from airec.serving.served import served_model
from airec.tables import ModelFile, ModelFilePart, ModelVersion
from airec.training import publish
from tests.synthetic import ingest, planted, train

ESCAPE = "../outside"
WATCHED = {
    "open",
    "os.mkdir",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.listdir",
    "os.scandir",
    "shutil.rmtree",
}
_guard: dict = {"forbidden": None, "hits": []}


def _hook(event: str, args: tuple) -> None:
    forbidden = _guard["forbidden"]
    if forbidden is None or event not in WATCHED:
        return
    paths = args[:2] if event == "os.rename" else args[:1]
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            where = os.path.normpath(os.path.abspath(os.fsdecode(path)))
            if where == forbidden or where.startswith(forbidden):
                _guard["hits"].append((event, where))
                raise PermissionError(f"test guard: {event} on {where}, outside the model store")


sys.addaudithook(_hook)  # inert unless a test arms it


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_store": "database", "model_poll_seconds": 0}


@pytest.fixture
def outside(client, settings_overrides, tmp_path) -> tuple[str, Path]:
    """A trained model, and a complete copy of it at models/../outside; the guard armed."""
    ingest(client, planted(units=60)[0])
    trained = train(client)["model_version"]
    target = tmp_path / "outside"
    shutil.copytree(Path(settings_overrides["models_dir"]) / trained, target)
    _guard["forbidden"], _guard["hits"] = str(target), []
    yield trained, target
    _guard["forbidden"] = None


def plant_stored_copy(of: str, as_version: str, file_name: str | None = None) -> None:
    """Copy a version's stored files under another version name (or one file under another name)."""

    def copy() -> None:
        for row in ModelFile.select().where(ModelFile.version == of):
            name = file_name if file_name and row.name == folders.ITEMS else row.name
            ModelFile.insert(
                version=as_version, name=name, sha256=row.sha256, size=row.size, parts=row.parts
            ).on_conflict_ignore().execute()
            for part in ModelFilePart.select().where(
                (ModelFilePart.version == of) & (ModelFilePart.name == row.name)
            ):
                ModelFilePart.insert(version=as_version, name=name, part=part.part, data=part.data).execute()

    atomic_write(copy)


def attempt(action) -> Exception | None:
    try:
        action()
    except Exception as exc:  # the refusal is the point; what is checked is that nothing escaped
        return exc
    return None


def test_the_allow_list(tmp_path):
    assert safe_name("20261127T101500000000Z-itemknn-3fa2") == "20261127T101500000000Z-itemknn-3fa2"
    assert safe_relative("linear/B.npy") == "linear/B.npy"
    for bad in ("..", ".", "../../etc", "a/b", "", ".fetch-x", "a\\b", "a\x00", "x" * 129, None):
        with pytest.raises(UnsafeName):
            safe_name(bad)
    for bad in ("../x", "a/../../x", "/etc/passwd", "a//b", "linear/.."):
        with pytest.raises(UnsafeName):
            safe_relative(bad)


def test_an_active_pointer_edited_to_a_path_is_refused(outside):
    trained, _ = outside
    with database.connection_context():
        leases.set_active_version(ESCAPE)
        attempt(served_model.sync)
        assert _guard["hits"] == [] and served_model.active.version == trained


def test_a_stored_version_edited_to_a_path_is_never_fetched_nor_adopted(outside, tmp_path):
    trained, _ = outside
    with database.connection_context():
        plant_stored_copy(trained, ESCAPE)
        atomic_write(lambda: dbstore.delete(trained))  # the planted copy is the only one left
        leases.set_active_version(None)
        served_model.configure(tmp_path / "host-b", "database")  # a host that has nothing yet
        attempt(served_model.sync)
        assert _guard["hits"] == [] and served_model.active is None
        assert ESCAPE not in dbstore.stored_versions()


def test_a_stored_file_name_edited_to_a_path_is_not_written(outside, tmp_path):
    trained, _ = outside
    with database.connection_context():
        plant_stored_copy(trained, "planted-copy", file_name="../../outside/items.json")
        store = dbstore.DatabaseStore(tmp_path / "host-b")
        error = attempt(lambda: store.fetch("planted-copy"))
    assert isinstance(error, UnsafeName) and _guard["hits"] == []
    host = tmp_path / "host-b"
    assert not host.exists() or not list(host.iterdir())  # nothing half-fetched left either


def test_pruning_never_deletes_a_path_from_a_stored_name(outside, client, settings_overrides):
    trained, target = outside
    train(client)
    with database.connection_context():
        plant_stored_copy(trained, ESCAPE)
        settings = Settings.from_env({**settings_overrides, "keep_versions": 1})
        attempt(lambda: publish.prune_versions(settings))
    assert _guard["hits"] == [] and (target / folders.MANIFEST).is_file()


def test_the_version_api_never_uses_a_stored_name_as_a_path(outside, client):
    trained, target = outside
    for name in (ESCAPE, ".."):
        atomic_write(
            lambda n=name: ModelVersion.insert(version=n, algorithm="itemknn", status="ready").execute()
        )
    listed = {v["version"]: v for v in client.get("/api/v1/models").get_json()["versions"]}
    assert listed[ESCAPE]["on_disk"] is False  # `outside` holds a manifest: it was not looked at
    for method in (client.delete, client.get):
        answer = method("/api/v1/models/%2E%2E")
        assert answer.status_code == 422 and "version" in answer.get_json()["message"], answer.get_json()
    answer = client.post("/api/v1/models/%2E%2E/activate")
    assert answer.status_code == 422, answer.get_json()
    assert _guard["hits"] == [] and (target / folders.MANIFEST).is_file()
    assert (Path(client.application.config["AIREC"].models_dir) / trained).is_dir()
