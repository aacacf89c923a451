"""Per-user recommendations from stored history, similar items, exclude lists and explanations."""

from __future__ import annotations

import pytest

from tests.synthetic import ingest, partners, planted, train

USERS = "/api/v1/users"
ITEMS = "/api/v1/items"


@pytest.fixture
def planted_model(client):
    records, group_of = planted(units=240, noise=0.0, seed=3)
    ingest(client, records)
    version = train(client, {"algorithm": "itemknn"})["model_version"]
    return records, group_of, version


def _history(records: list[dict], user: str) -> set[str]:
    return {item for r in records if r.get("user") == user for item in r["items"]}


def test_user_recommendations_come_from_stored_history(client, planted_model):
    records, group_of, version = planted_model
    user = next(r["user"] for r in records if len(r["items"]) == 3)  # three of its group's six missing
    history = _history(records, user)
    group = group_of[next(iter(history))]
    response = client.get(f"{USERS}/{user}/recommendations", query_string={"k": 3})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user"] == user and body["model_version"] == version
    assert body["history_size"] == len(history) and body["fallback"] is None
    proposed = [entry["item"] for entry in body["items"]]
    assert len(proposed) == 3
    assert not set(proposed) & history  # never what the user already has
    assert all(group_of[name] == group for name in proposed)  # the planted group's missing items


def test_user_recommendations_honour_exclude_and_explain(client, planted_model):
    records, group_of, _ = planted_model
    client.post("/api/v1/interactions", json={"user": "mixed", "items": ["g1-i0", "g1-i1", "g5-i0", "g5-i1"]})
    first = client.get(f"{USERS}/mixed/recommendations", query_string={"k": 3}).get_json()["items"][0]["item"]
    response = client.get(
        f"{USERS}/mixed/recommendations",
        query_string=[("k", "4"), ("exclude", first), ("exclude", "g1-i2"), ("explain", "true")],
    )
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    names = [entry["item"] for entry in items]
    assert first not in names and "g1-i2" not in names
    for entry in items:
        assert entry["because"], entry
        top = entry["because"][0]["item"]
        assert top in {"g1-i0", "g1-i1", "g5-i0", "g5-i1"}
        assert group_of[top] == group_of[entry["item"]], entry  # explained by its own planted group


def test_recommendations_explain_names_input_from_the_same_group(client, planted_model):
    _, group_of, _ = planted_model
    body = client.post(
        "/api/v1/recommendations", json={"items": ["g2-i0", "g6-i0"], "k": 6, "explain": True}
    ).get_json()
    for entry in body["items"]:
        assert entry["because"][0]["item"] in partners(entry["item"], group_of) | {"g2-i0", "g6-i0"}
        assert group_of[entry["because"][0]["item"]] == group_of[entry["item"]]
    without = client.post("/api/v1/recommendations", json={"items": ["g2-i0"], "k": 3}).get_json()
    assert all("because" not in entry for entry in without["items"])


def test_unknown_user_is_404_json(client, planted_model):
    response = client.get(f"{USERS}/nobody/recommendations")
    assert response.status_code == 404
    assert "nobody" in response.get_json()["message"]


def test_user_recommendations_bad_query_is_422(client, planted_model):
    for query in ({"k": 0}, {"k": "many"}, {"explain": "perhaps"}, {"exclude": ""}):
        response = client.get(f"{USERS}/u0/recommendations", query_string=query)
        assert response.status_code == 422, query
        assert response.get_json()["message"].startswith("Invalid input."), response.get_json()


def test_user_recommendations_without_model_fall_back_to_popularity(client):
    client.post(
        "/api/v1/interactions",
        json={
            "records": [
                {"user": "a", "items": ["x", "y"]},
                {"user": "b", "items": ["y", "z"]},
                {"user": "c", "items": ["y"]},
            ]
        },
    )
    body = client.get(f"{USERS}/a/recommendations").get_json()
    assert body["fallback"] == "popularity" and body["model_version"] is None
    assert [entry["item"] for entry in body["items"]] == ["z"]  # x and y are a's already


def test_similar_items(client, planted_model):
    _, group_of, version = planted_model
    response = client.get(f"{ITEMS}/g3-i0/similar", query_string={"k": 3})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["item"] == "g3-i0" and body["model_version"] == version
    names = [entry["item"] for entry in body["items"]]
    assert len(names) == 3 and "g3-i0" not in names
    assert set(names) <= partners("g3-i0", group_of)
    excluded = client.get(f"{ITEMS}/g3-i0/similar", query_string=[("k", "3"), ("exclude", names[0])])
    assert names[0] not in [entry["item"] for entry in excluded.get_json()["items"]]


def test_similar_items_errors(client, planted_model):
    missing = client.get(f"{ITEMS}/no-such-item/similar")
    assert missing.status_code == 404 and "no-such-item" in missing.get_json()["message"]
    bad = client.get(f"{ITEMS}/g3-i0/similar", query_string={"k": 100000})
    assert bad.status_code == 422 and "k" in bad.get_json()["message"]


def test_similar_items_without_model_is_409(client):
    client.post("/api/v1/interactions", json={"items": ["x", "y"]})
    response = client.get(f"{ITEMS}/x/similar")
    assert response.status_code == 409
    assert "train" in response.get_json()["message"]


def test_openapi_lists_query_endpoints_with_examples(client):
    spec = client.get("/openapi.json").get_json()
    user_path = spec["paths"]["/api/v1/users/{user}/recommendations"]["get"]
    similar_path = spec["paths"]["/api/v1/items/{item}/similar"]["get"]
    for operation in (user_path, similar_path):
        params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert "example" in params["k"] or "example" in params["k"].get("schema", {}), params["k"]
        assert "404" in operation["responses"]
    assert "409" in similar_path["responses"]
