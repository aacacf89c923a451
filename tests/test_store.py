"""The model store: atomic complete folders, checksums, and what a restart chooses to serve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from airec import leases
from airec.app import create_app
from airec.db import database
from airec.modelstore import folders
from airec.recsys.algorithms import ItemKNN, Popularity
from airec.serving.active import ActiveModel
from airec.serving.served import served_model
from airec.tables import ModelVersion
from tests.synthetic import ingest, planted, recommend, train

ITEMS = ["apple", "bread", "cheese", "dates"]


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


def fitted(kind=Popularity):
    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 1], [0, 1, 1, 0]], dtype=np.float32))
    model = kind()
    model.fit(X)
    return model


def write(models_dir: Path, version: str | None = None, model=None) -> Path:
    version = version or folders.new_version("popularity")
    return folders.write_model(
        models_dir,
        version=version,
        model=model or fitted(),
        items=ITEMS,
        popularity=np.array([3, 3, 2, 1]),
        manifest={"algorithm": "popularity", "note": "test"},
    )


def test_write_model_makes_one_complete_verified_folder(tmp_path):
    folder = write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no .tmp- leftovers
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "items.json", "popularity.npy"} <= names
    assert not any(n.endswith(".part") for n in names)
    manifest = folders.read_manifest(folder)
    assert manifest["version"] == folder.name and manifest["note"] == "test"
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert folders.verify(folder) == manifest
    loaded = folders.load_folder(folder)
    assert loaded.items == ITEMS and loaded.version == folder.name
    assert loaded.popularity.tolist() == [3, 3, 2, 1]


def test_write_model_replaces_a_leftover_temporary_of_the_same_version(tmp_path):
    version = folders.new_version("popularity")
    stale = tmp_path / f"{folders.TMP_PREFIX}{version}"
    stale.mkdir()
    (stale / "junk.bin").write_bytes(b"x")
    folder = write(tmp_path, version)
    assert not stale.exists() and "junk.bin" not in folders.read_manifest(folder)["files"]


def test_a_failed_write_leaves_no_complete_version(tmp_path):
    class Broken(Popularity):
        def save(self, path):
            (Path(path) / "weights.npz").write_bytes(b"half")
            raise OSError("disk full")

    good = write(tmp_path).name
    with pytest.raises(OSError):
        write(tmp_path, model=Broken())
    assert folders.complete_versions(tmp_path) == [good]
    assert folders.clean_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [good]


def test_complete_versions_are_oldest_first_and_skip_incomplete(tmp_path):
    versions = [write(tmp_path).name for _ in range(3)]
    (tmp_path / folders.new_version("ease")).mkdir()  # newer, but no manifest
    partial = tmp_path / folders.new_version("ease")
    partial.mkdir()
    (partial / "manifest.json.part").write_text("{}")
    tmp = tmp_path / f"{folders.TMP_PREFIX}{folders.new_version('ease')}"
    shutil.copytree(tmp_path / versions[0], tmp)
    (tmp_path / "stray-file").write_text("")
    assert folders.complete_versions(tmp_path) == versions == sorted(versions)
    assert folders.complete_versions(tmp_path / "missing") == []
    folders.remove_version(tmp_path, versions[1])
    assert folders.complete_versions(tmp_path) == [versions[0], versions[2]]


def test_new_versions_sort_by_creation_and_are_unique():
    made = [folders.new_version("itemknn") for _ in range(50)]
    assert made == sorted(made) and len(set(made)) == 50


def test_clean_temporaries_removes_only_temporaries(tmp_path):
    keep = write(tmp_path).name
    for n in range(2):
        (tmp_path / f"{folders.TMP_PREFIX}{n}").mkdir()
    assert folders.clean_temporaries(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == [keep]
    assert folders.clean_temporaries(tmp_path / "missing") == 0


@pytest.mark.parametrize("damage", ["flip_byte", "delete_file", "bad_json", "no_checksums", "no_manifest"])
def test_damaged_folders_are_corrupt(tmp_path, damage):
    folder = write(tmp_path, model=fitted(ItemKNN))
    manifest_path = folder / "manifest.json"
    if damage == "flip_byte":
        target = folder / "popularity.npy"
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "delete_file":
        (folder / "items.json").unlink()
    elif damage == "bad_json":
        manifest_path.write_text('{"version": ')
    elif damage == "no_checksums":
        manifest_path.write_text(json.dumps({"version": folder.name}))
    else:
        manifest_path.unlink()
    with pytest.raises(folders.CorruptModel, match=folder.name):
        folders.load_folder(folder)
    with pytest.raises(folders.CorruptModel):
        ActiveModel.from_folder(folder)


# --- what a (re)started app serves ----------------------------------------------------------------


def incomplete_copy(models_dir: Path, version: str) -> str:
    """A newer folder with all the weights but no finished manifest (a write cut short)."""
    newer = folders.new_version(version.split("-")[1])
    shutil.copytree(models_dir / version, models_dir / newer)
    (models_dir / newer / "manifest.json").rename(models_dir / newer / "manifest.json.part")
    return newer


def restart(settings_overrides: dict):
    app = create_app(settings_overrides)
    return app, app.test_client()


@pytest.fixture
def trained(client, settings_overrides):
    ingest(client, planted(units=60)[0])
    first = train(client)["model_version"]
    return Path(settings_overrides["models_dir"]), first


@pytest.mark.parametrize("pointer", ["none", "incomplete"])
def test_folder_without_complete_manifest_is_ignored_at_load(trained, settings_overrides, pointer):
    models_dir, first = trained
    newer = incomplete_copy(models_dir, first)
    with database.connection_context():
        leases.set_active_version(None if pointer == "none" else newer)
    _, client = restart(settings_overrides)
    assert served_model.active is not None and served_model.active.version == first
    assert recommend(client, ["g0-i0"], k=3)["model_version"] == first
    assert client.get("/readyz").get_json()["model_version"] == first


def test_without_pointer_the_newest_complete_model_is_loaded(client, trained, settings_overrides):
    models_dir, first = trained
    second = train(client)["model_version"]
    assert folders.complete_versions(models_dir) == [first, second]
    with database.connection_context():
        leases.set_active_version(None)
    restart(settings_overrides)
    assert served_model.active.version == second
    with database.connection_context():
        assert leases.get_active_version() == second


def test_the_pointer_wins_over_newer_folders(client, trained, settings_overrides):
    _, first = trained
    train(client)
    with database.connection_context():
        leases.set_active_version(first)
    restart(settings_overrides)
    assert served_model.active.version == first


def test_a_corrupt_pointed_version_is_refused_and_an_older_one_served(client, trained, settings_overrides):
    models_dir, first = trained
    second = train(client)["model_version"]
    (models_dir / second / "items.json").write_text('["tampered"]')
    restart(settings_overrides)
    assert served_model.active.version == first
    with database.connection_context():
        assert ModelVersion.get_by_id(second).status == "failed"
