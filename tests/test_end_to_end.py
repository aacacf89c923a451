"""The whole seed system through the real stack: ingest planted data, train, propose, evaluate."""

from __future__ import annotations

import pytest

from airec.serving.served import served_model
from tests.synthetic import ingest, partners, planted, recommend, train

EVALUATION = "/api/v1/evaluation"


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


def assert_learned_groups(client, group_of: dict[str, int], model_version: str) -> None:
    """For every group, a two-item basket's top-3 proposals are its planted partners."""
    for group in sorted(set(group_of.values())):
        basket = [name for name, g in group_of.items() if g == group][:2]
        answer = recommend(client, basket, k=3)
        proposed = [entry["item"] for entry in answer["items"]]
        assert answer["model_version"] == model_version
        assert answer["fallback"] is None
        assert len(proposed) == 3
        assert set(proposed) <= partners(basket[0], group_of), (basket, proposed)


def test_autoencoder_proposes_planted_partners(client):
    records, group_of = planted()
    ingest(client, records)
    run = train(client, {"algorithm": "autoencoder", "params": {"epochs": 20}})
    assert run["algorithm"] == "autoencoder"
    assert served_model.active.algorithm == "autoencoder"
    assert served_model.active.manifest["params"]["epochs"] == 20
    assert_learned_groups(client, group_of, run["model_version"])


def test_anonymous_baskets_train_too(client):
    records, group_of = planted(users=False, seed=3)
    ingest(client, records)
    run = train(client, {"algorithm": "itemknn"})
    assert served_model.active.manifest["data"]["baskets"] == len(records)
    assert served_model.active.manifest["data"]["users"] == 0
    assert_learned_groups(client, group_of, run["model_version"])


def test_auto_keeps_the_best_candidate_and_lists_all_scores(client):
    records, group_of = planted(seed=1)
    ingest(client, records)
    run = train(client, {"algorithm": "auto"})
    manifest = served_model.active.manifest
    assert manifest["requested_algorithm"] == "auto"
    candidates = manifest["candidates"]
    assert set(candidates) == {"autoencoder", "ease", "itemknn", "popularity"}
    scores = {name: next(iter(c["validation"].values())) for name, c in candidates.items()}
    assert manifest["algorithm"] == max(scores, key=scores.get)
    assert scores[manifest["algorithm"]] > scores["popularity"]
    assert run["model_version"].split("-")[1] == manifest["algorithm"]
    assert_learned_groups(client, group_of, run["model_version"])


def test_evaluation_beats_popularity_and_matches_the_manifest(client):
    untrained = client.post(EVALUATION, json={"k": 10})  # nothing trained yet
    assert untrained.status_code == 409 and "train one first" in untrained.get_json()["message"]
    records, _ = planted(seed=2)
    ingest(client, records)
    train(client, {"algorithm": "itemknn"})
    # Data arriving after training must not change the held-out split of the trained model.
    ingest(client, planted(seed=9, units=50, prefix="late-")[0])

    saved = served_model.active.manifest["evaluation"]
    for k in (10, 20):
        response = client.post(EVALUATION, json={"k": k})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["k"] == k
        assert body["model_version"] == served_model.active.version
        assert body["units"] == saved["model"]["n_units"] > 0
        for side in ("model", "popularity"):
            assert set(body[side]) == {"hit_rate", "ndcg", "recall"}
            for metric, value in body[side].items():
                assert value == pytest.approx(saved[side][f"{metric}@{k}"], abs=1e-9), (side, metric, k)
        assert body["model"]["hit_rate"] > body["popularity"]["hit_rate"]
        assert body["model"]["ndcg"] > body["popularity"]["ndcg"]
        assert body["model"]["recall"] > body["popularity"]["recall"]


@pytest.mark.parametrize("body", [{"k": 0}, {"k": 1001}, {"k": "x"}, {"k": 10, "extra": 1}])
def test_evaluation_rejects_bad_input(client, body):
    response = client.post(EVALUATION, json=body)
    assert response.status_code == 422
    field = next(key for key in body if key != "k") if len(body) > 1 else "k"
    assert field in response.get_json()["errors"]["json"]


def test_evaluation_without_a_model_is_a_json_409(client):
    response = client.post(EVALUATION, json={"k": 10})
    assert response.status_code == 409
    assert response.get_json() == {
        "code": 409,
        "status": "Conflict",
        "message": "no model is active yet: train one first (POST /api/v1/training)",
    }
    assert "train" in response.get_json()["message"]
