"""AIREC_MODEL_STORE=database: model files in the database with their checksums, committed with the
version; each host's own folder is a verified copy; pruning and archiving reach the database copies."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from airec import leases
from airec.app import create_app
from airec.db import database
from airec.modelstore import database as dbstore
from airec.modelstore import folders
from airec.serving.served import served_model
from airec.tables import ModelFile, ModelFilePart, ModelVersion
from airec.training import pipeline, publish
from tests.synthetic import ingest, planted, recommend, train


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_store": "database", "model_poll_seconds": 0}


@pytest.fixture
def trained(client) -> str:
    records, _ = planted(units=160)
    ingest(client, records)
    return train(client)["model_version"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_file_of_a_published_model_is_in_the_database_with_its_checksum(trained, settings_overrides):
    folder = Path(settings_overrides["models_dir"]) / trained
    local = {str(p.relative_to(folder)): sha(p) for p in folder.rglob("*") if p.is_file()}
    with database.connection_context():
        rows = {f.name: f.sha256 for f in ModelFile.select().where(ModelFile.version == trained)}
        assert ModelVersion.get_by_id(trained).status == "ready"
    assert rows == local and folders.MANIFEST in rows


def test_a_host_started_later_fetches_the_active_model(trained, settings_overrides, tmp_path):
    other_dir = tmp_path / "host-b"
    app_b = create_app({**settings_overrides, "models_dir": str(other_dir)})
    assert served_model.active is not None and served_model.active.version == trained
    assert folders.verify(other_dir / trained)["version"] == trained
    answer = recommend(app_b.test_client(), ["g0-i0"], k=3)
    assert answer["model_version"] == trained and answer["fallback"] is None


def test_a_damaged_local_copy_is_replaced_from_the_database(trained, settings_overrides, tmp_path):
    other_dir = tmp_path / "host-b"
    create_app({**settings_overrides, "models_dir": str(other_dir)})
    weights = next(
        p for p in (other_dir / trained).iterdir() if p.name not in (folders.MANIFEST, folders.ITEMS)
    )
    weights.write_bytes(b"not the model")
    with database.connection_context():
        model = served_model.load(trained)
        expected = ModelFile.get((ModelFile.version == trained) & (ModelFile.name == weights.name)).sha256
    assert model.version == trained and sha(weights) == expected


def test_a_damaged_database_copy_is_refused_and_leaves_no_folder(trained, tmp_path):
    with database.connection_context():
        part = (
            ModelFilePart.select()
            .where((ModelFilePart.version == trained) & (ModelFilePart.name == folders.ITEMS))
            .get()
        )
        ModelFilePart.update(data=b'["tampered"]').where(
            (ModelFilePart.version == part.version) & (ModelFilePart.name == part.name)
        ).execute()
        with pytest.raises(folders.CorruptModel, match="checksum"):
            dbstore.DatabaseStore(tmp_path / "host-c").fetch(trained)
    assert folders.complete_versions(tmp_path / "host-c") == []
    assert not list((tmp_path / "host-c").iterdir())


def test_archiving_removes_the_database_copy(client, trained, settings_overrides):
    newer = train(client)["model_version"]
    assert client.delete(f"/api/v1/models/{trained}").status_code == 200
    with database.connection_context():
        assert dbstore.stored_versions() == [newer]
        assert not ModelFilePart.select().where(ModelFilePart.version == trained).exists()


def test_pruning_keeps_the_newest_versions_in_the_database_too(client, trained, settings_overrides):
    from airec.config import Settings

    versions = [trained] + [train(client)["model_version"] for _ in range(2)]
    settings = Settings.from_env({**settings_overrides, "keep_versions": 1})
    with database.connection_context():
        removed = publish.prune_versions(settings)
        assert removed == versions[:2]
        assert dbstore.stored_versions() == versions[2:]
        assert ModelVersion.get_by_id(versions[0]).status == "archived"


def test_a_host_drops_its_copies_of_versions_archived_elsewhere(
    client, trained, settings_overrides, tmp_path
):
    other_dir = tmp_path / "host-b"
    create_app({**settings_overrides, "models_dir": str(other_dir)})  # caches `trained`
    newer = train(client)["model_version"]
    with database.connection_context():
        ModelVersion.update(status="archived").where(ModelVersion.version == trained).execute()
        dbstore.delete(trained)
        served_model.configure(other_dir, "database")  # host B (this process shares one served_model) ...
        served_model.sync()  # ... follows the pointer to `newer`, and tidies up
    assert folders.complete_versions(other_dir) == [newer]


def test_registration_without_the_lease_stores_no_files(client, settings_overrides):
    from airec.config import Settings

    records, _ = planted(units=160)
    ingest(client, records)
    settings = Settings.from_env(settings_overrides)
    with database.connection_context(), pytest.raises(leases.LeaseLost):
        pipeline.train_and_publish(
            algorithm="itemknn",
            params={},
            warm_start=False,
            settings=settings,
            lease=("training", "nobody:1:000000000000:0000", 60),
        )
    with database.connection_context():
        assert ModelFile.select().count() == 0 and ModelVersion.select().count() == 0
    assert folders.complete_versions(settings_overrides["models_dir"]) == []


def test_with_the_files_store_nothing_goes_to_the_database(settings_overrides):
    app = create_app({**settings_overrides, "model_store": "files"})
    client = app.test_client()
    records, _ = planted(units=160)
    ingest(client, records)
    train(client)
    with database.connection_context():
        assert ModelFile.select().count() == 0


def test_activating_a_folder_copied_in_by_hand_puts_it_in_the_database(client, trained, settings_overrides):
    models_dir = Path(settings_overrides["models_dir"])
    copied = folders.new_version("itemknn")
    shutil.copytree(models_dir / trained, models_dir / copied)
    manifest = json.loads((models_dir / copied / folders.MANIFEST).read_text())
    (models_dir / copied / folders.MANIFEST).write_text(json.dumps({**manifest, "version": copied}))
    response = client.post(f"/api/v1/models/{copied}/activate")
    assert response.status_code == 200, response.get_json()
    with database.connection_context():
        assert copied in dbstore.stored_versions()
        assert leases.get_active_version() == copied
