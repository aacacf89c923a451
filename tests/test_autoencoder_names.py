"""The autoencoder's linear weight has one name, `linear_weight` (given) / `chosen_linear_weight` (in use),
where it was `blend` / `alpha` before (issue 18.5): models saved under the old names still load and score
as they did, new manifests carry the new names only, and GET /api/v1/models answers both (clients
written against the old names keep working)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from airec.recsys.algorithms import AutoEncoder, load_model
from airec.recsys.base import read_manifest
from tests.synthetic import ingest, planted, train

#: A model folder written by the code before the rename (commit 7392f01): its manifest says `blend`
#: (null: chosen) and `alpha`; expected.json holds the scores that code gave for a few item sets.
SAVED_BEFORE = Path(__file__).parent / "fixtures" / "autoencoder_saved_before_rename"


def test_a_model_saved_with_the_old_names_loads_and_scores_as_before(tmp_path: Path):
    assert {"blend", "alpha"} <= set(read_manifest(SAVED_BEFORE)["params"])
    expected = json.loads((SAVED_BEFORE / "expected.json").read_text())
    model = load_model(SAVED_BEFORE)
    assert isinstance(model, AutoEncoder)
    assert model.linear_weight is None and model.chosen_linear_weight == pytest.approx(expected["alpha"])
    assert model.linear_model is not None
    for items, scores in zip(expected["queries"], expected["scores"], strict=True):
        np.testing.assert_allclose(model.score_items(items), scores, rtol=1e-6, atol=1e-6)

    model.save(tmp_path)  # written again: the new names only, and the same scores
    params = read_manifest(tmp_path)["params"]
    assert not {"blend", "alpha"} & set(params)
    assert params["linear_weight"] is None and params["chosen_linear_weight"] == model.chosen_linear_weight
    again = load_model(tmp_path)
    for items, scores in zip(expected["queries"], expected["scores"], strict=True):
        np.testing.assert_allclose(again.score_items(items), scores, rtol=1e-6, atol=1e-6)


def test_a_refit_keeps_the_chosen_linear_weight(tmp_path: Path):
    shutil.copytree(SAVED_BEFORE, tmp_path / "m")
    model = load_model(tmp_path / "m")
    copy = model.refit_copy()
    assert copy.linear_weight == model.chosen_linear_weight and copy.linear_lam == model.chosen_lam


def test_training_with_the_old_name_still_sets_the_linear_weight(client, app):
    """A client that still sends `blend` keeps working (no behaviour change): the request is accepted
    and the model is built with that value as its linear_weight; a truly unknown name stays a 422."""
    from airec.training.choices import build_model

    model = build_model("autoencoder", {"blend": 0.25}, app.config["AIREC"])
    assert model.linear_weight == 0.25
    response = client.post("/api/v1/training", json={"algorithm": "autoencoder", "params": {"blnd": 1.0}})
    assert response.status_code == 422, response.get_json()
    message = response.get_json()["message"]
    assert "unknown parameter(s) for autoencoder: blnd" in message and "linear_weight" in message
    assert client.get("/api/v1/training/runs").get_json()["runs"] == []


def test_models_api_shows_the_linear_weight_under_both_names(client):
    ingest(client, planted(units=120)[0])
    params = {"epochs": 2, "latent": 8, "linear_weight": 2.0, "linear_lam": 50.0}
    version = train(client, {"algorithm": "autoencoder", "params": params})["model_version"]
    response = client.get(f"/api/v1/models/{version}")
    assert response.status_code == 200, response.get_json()
    shown = response.get_json()["params"]
    assert shown["linear_weight"] == shown["blend"] == 2.0
    assert shown["chosen_linear_weight"] == shown["alpha"] == 2.0
