"""AIREC_TRAIN_REFIT: the configuration chosen on validation is fitted once more on every unit, so the
validation and test units (up to 30% of the data) are learned from too; off, the model is today's."""

from __future__ import annotations

import pytest

from airec.recsys.data import split_units
from airec.serving.served import served_model
from tests.synthetic import ingest, planted, recommend, train

SEED = 42  # the default AIREC_TRAIN_SEED
SMALL_AE = {"epochs": 8, "hidden": 0, "latent": 16}


def records_with_a_pair_only_held_out_units_hold() -> list[dict]:
    """Planted groups for 200 users u000..u199 (canonical order = name order); the units the split
    holds out for validation and test also buy the pair secret-a + secret-b, which no training unit has."""
    records, _ = planted(units=200, seed=3)
    for i, record in enumerate(records):
        record["user"] = f"u{i:03d}"
    _, validation, test = split_units(200, holdout_fraction=0.15, max_holdout=5000, seed=SEED)
    for i in [*validation, *test]:
        records[i]["items"] += ["secret-a", "secret-b"]
    return records


def top(client, items: list[str], k: int = 3) -> list[str]:
    return [entry["item"] for entry in recommend(client, items, k=k)["items"]]


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [("itemknn", {}), ("ease", {}), ("autoencoder", SMALL_AE), ("auto", {})],
)
def test_the_published_model_learned_from_the_held_out_units(client, algorithm, params):
    ingest(client, records_with_a_pair_only_held_out_units_hold())
    train(client, {"algorithm": algorithm, "params": params})
    manifest = served_model.active.manifest
    assert manifest["refit"]["units"] == manifest["data"]["units"] == 200
    assert manifest["data"]["train_units"] == 140 and manifest["refit"]["seconds"] >= 0
    assert "refitted" in manifest["evaluation"]["estimates"]
    listed = client.get(f"/api/v1/models/{served_model.active.version}").get_json()
    assert listed["refit"] == manifest["refit"]
    assert 0 < listed["training_cpu_seconds"] == manifest["training_cpu_seconds"]
    assert top(client, ["secret-a"], k=1) == ["secret-b"]


@pytest.mark.parametrize("algorithm", ["itemknn", "ease"])
def test_refit_off_publishes_the_model_fitted_on_the_training_units_alone(settings_overrides, algorithm):
    from airec.app import create_app

    client = create_app({**settings_overrides, "train_refit": False}).test_client()
    ingest(client, records_with_a_pair_only_held_out_units_hold())
    train(client, {"algorithm": algorithm})
    manifest = served_model.active.manifest
    assert manifest["refit"] is None and "estimates" not in manifest["evaluation"]
    assert "secret-b" not in top(client, ["secret-a"], k=3)  # never seen together in training


def test_popularity_counts_every_unit_after_the_refit(client):
    ingest(client, records_with_a_pair_only_held_out_units_hold())
    train(client, {"algorithm": "popularity"})
    counts = dict(zip(served_model.active.items, served_model.active.model.counts, strict=True))
    assert counts["secret-a"] == counts["secret-b"] == 60  # the 30 validation and 30 test units


def test_the_evaluation_endpoint_answers_the_stored_estimate(client):
    ingest(client, records_with_a_pair_only_held_out_units_hold())
    train(client, {"algorithm": "itemknn"})
    saved = served_model.active.manifest["evaluation"]
    body = client.post("/api/v1/evaluation", json={"k": 20}).get_json()
    assert body["refit"] == served_model.active.manifest["refit"]
    assert body["model"]["ndcg"] == saved["model"]["ndcg@20"]
    refused = client.post("/api/v1/evaluation", json={"k": 7})
    assert refused.status_code == 422 and "cut-offs" in str(refused.get_json()["errors"])
