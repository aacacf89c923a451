"""Issue 17.4: a model folder whose name differs from the version in its manifest (copied or renamed by
hand) is refused with one log line, listed as failed with the reason, never loaded, and never tried
again until the folder changes."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from airec import leases
from airec.db import database
from airec.modelstore import folders
from airec.serving import active
from airec.serving.served import served_model
from tests.synthetic import ingest, planted, train

MODELS = "/api/v1/models"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def errors():
    handler = Collect()
    logger = logging.getLogger("airec.serving.served")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """The folders ActiveModel.from_folder tried to read, in order."""
    tried: list[str] = []
    real = active.load_folder

    def counting(folder: Path):
        tried.append(folder.name)
        return real(folder)

    monkeypatch.setattr(active, "load_folder", counting)
    return tried


def test_a_folder_named_unlike_its_manifest_is_refused_once_until_it_changes(
    client, settings_overrides, errors, loads
):
    ingest(client, planted(units=60)[0])
    trained = train(client)["model_version"]
    models_dir = Path(settings_overrides["models_dir"])
    copied = folders.new_version("itemknn")
    shutil.copytree(models_dir / trained, models_dir / copied)  # its manifest still says `trained`

    for _ in range(3):  # an operator (or another host) points at the copy, poll after poll
        with database.connection_context():
            leases.set_active_version(copied)
            served_model.sync()
        assert served_model.active.version == trained
    assert loads.count(copied) == 1  # tried once, then left alone
    refusals = [line for line in errors if line.startswith(f"refusing model {copied}")]
    assert len(refusals) == 1 and "manifest" in refusals[0] and trained in refusals[0], errors

    listed = {v["version"]: v for v in client.get(MODELS).get_json()["versions"]}
    assert listed[copied]["status"] == "failed"
    assert "differs from the version in its manifest" in listed[copied]["error"]
    assert listed[trained]["status"] == "active" and listed[trained]["error"] is None
    answer = client.post(f"{MODELS}/{copied}/activate")
    assert answer.status_code == 422 and "manifest" in answer.get_json()["message"]

    manifest_path = models_dir / copied / folders.MANIFEST  # the operator mends the folder
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "version": copied}))
    with database.connection_context():
        leases.set_active_version(copied)
        served_model.sync()
    assert served_model.active.version == copied
    assert loads.count(copied) >= 2  # tried again once it changed


def test_a_folder_copied_by_hand_is_listed_failed_before_anything_loads_it(client, settings_overrides):
    ingest(client, planted(units=60)[0])
    trained = train(client)["model_version"]
    models_dir = Path(settings_overrides["models_dir"])
    renamed = folders.new_version("itemknn")
    shutil.copytree(models_dir / trained, models_dir / renamed)
    listed = {v["version"]: v for v in client.get(MODELS).get_json()["versions"]}
    assert listed[renamed]["status"] == "failed" and trained in listed[renamed]["error"]
    with pytest.raises(folders.CorruptModel, match="manifest"):
        folders.load_folder(models_dir / renamed)
