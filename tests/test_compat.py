"""The original system's routes: same validation and JSON errors as /api/v1."""

from __future__ import annotations

import pytest


def counts(client) -> dict:
    return client.get("/api/v1/stats").get_json()


def test_record_interaction_and_listings(client):
    father = {"user": "father", "items": ["beer", "diapers", "beer"]}
    response = client.post("/recordInteraction", json=father)
    assert response.status_code == 201
    assert response.get_json() == {"records": 1, "interactions": 2}
    client.post("/recordInteraction", json={"user": "mother", "items": ["diapers"]})
    client.post("/recordInteraction", json={"items": ["chips"]})

    assert client.get("/listUserCount").get_json() == {"count": 2}
    assert client.get("/listItemCount").get_json() == {"count": 3}
    assert client.get("/listItems").get_json() == {"items": ["diapers", "beer", "chips"]}


def test_record_interaction_reads_json_without_content_type(client):
    response = client.post("/recordInteraction", data='{"user": "u", "items": ["a"]}')
    assert response.status_code == 201


@pytest.mark.parametrize(
    "kwargs, status, needle",
    [
        ({"data": "not json"}, 400, "JSON"),
        ({"json": {"user": "u"}}, 422, "items:"),
        ({"json": {"items": []}}, 422, "items:"),
        ({"json": {"items": [1]}}, 422, "items.0:"),
        ({"json": {"items": ["a"], "k": 3}}, 422, "k:"),
        ({"json": {"records": [{"items": ["a"]}]}}, 422, "records:"),
        ({"json": ["a"]}, 422, "JSON object"),
    ],
)
def test_record_interaction_bad_input(client, kwargs, status, needle):
    response = client.post("/recordInteraction", **kwargs)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == status and needle in body["message"], body
    assert counts(client)["records"] == 0


def test_propose_interaction_validates_input(client):
    cases = [({"k": 3}, "items:"), ({"items": ["a"], "k": 0}, "k:"), ({"items": [""]}, "items.0:")]
    for body, needle in cases:
        response = client.post("/proposeInteraction", json=body)
        assert response.status_code == 422
        assert needle in response.get_json()["message"]


def test_propose_interaction_answers_in_the_old_shape(client):
    client.post("/recordInteraction", json={"user": "u1", "items": ["beer", "diapers", "chips"]})
    client.post("/recordInteraction", json={"user": "u2", "items": ["beer", "diapers"]})
    response = client.post("/proposeInteraction", json={"items": ["beer"], "k": 2})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    # the old keys, and only gained ones (issue 20: the answer's id, variant and model version)
    assert set(body) == {"items", "scores", "filtered", "recommendation_id", "variant", "model_version"}
    assert len(body["items"]) == len(body["scores"]) <= 2
    assert all(isinstance(name, str) for name in body["items"])
