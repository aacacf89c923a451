"""Issue 20, part 3 in training and on the user route: event weights, negative types, and clients that
send no type training exactly as before."""

from __future__ import annotations

import numpy as np
import pytest

from airec.db import database
from airec.ingestion.service import ingest_records
from airec.training.dataset import load_dataset
from airec.training.feedback_weights import apply_feedback
from tests.synthetic import INTERACTIONS, ingest, planted, recommend, train


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


pytestmark = pytest.mark.usefixtures("fresh_popularity_cache")


def test_a_cell_takes_its_largest_weight_and_a_latest_negative_removes_it(db):
    records = [
        {"user": "ann", "items": ["a", "b"], "type": "view", "timestamp": "2026-01-01T00:00:00"},
        {"user": "ann", "items": ["a"], "type": "purchase", "timestamp": "2026-01-02T00:00:00"},
        {"user": "ann", "items": ["a"], "type": "view", "timestamp": "2026-01-03T00:00:00"},  # max stays 5
        {"user": "ann", "items": ["b"], "type": "dislike", "timestamp": "2026-01-04T00:00:00"},
        {"user": "bob", "items": ["b"], "type": "dislike", "timestamp": "2026-01-01T00:00:00"},
        {"user": "bob", "items": ["b", "c"], "type": "cart", "timestamp": "2026-01-02T00:00:00"},  # after
        {"items": ["c", "d"]},  # a basket of the default type
    ]
    import datetime as dt

    for record in records:
        if "timestamp" in record:
            record["timestamp"] = dt.datetime.fromisoformat(record["timestamp"])
    ingest_records(records)
    data = load_dataset()
    weights = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
    weighted = apply_feedback(data, weights=weights, negative={"dislike"})
    cell = {
        (unit, item): weighted.X[r, c]
        for r, unit in enumerate(weighted.units)
        for c, item in enumerate(weighted.items)
        if weighted.X[r, c]
    }
    basket = next(unit for unit in data.units if not isinstance(unit, str))
    assert cell == {
        ("ann", "a"): 5.0,
        ("bob", "b"): 3.0,
        ("bob", "c"): 3.0,
        (basket, "c"): 1.0,
        (basket, "d"): 1.0,
    }
    assert apply_feedback(data, weights={}, negative=set()) is data  # nothing set: as loaded


def _scores(client, baskets) -> list:
    return [[(e["item"], e["score"]) for e in recommend(client, basket, k=8)["items"]] for basket in baskets]


def test_clients_sending_no_type_train_exactly_as_before(settings_overrides, tmp_path):
    from airec.app import create_app

    records, _ = planted(units=160)
    baskets = [["g1-i0"], ["g2-i0", "g2-i3"], ["g5-i1", "g0-i2"]]
    answers, reports = [], []
    for name, extra in (
        ("plain", {}),
        ("typed", {"event_weights": "view:1,cart:3,purchase:5", "negative_types": "dislike"}),
    ):
        app = create_app(
            {
                **settings_overrides,
                "database_url": f"sqlite:///{tmp_path}/{name}.db",
                "models_dir": str(tmp_path / name),
                **extra,
            }
        )
        client = app.test_client()
        ingest(client, records)
        train(client, {"algorithm": "itemknn"})
        answers.append(_scores(client, baskets))
        report = client.post("/api/v1/evaluation", json={"k": 10})
        assert report.status_code == 200, report.get_json()
        reports.append(report.get_json())
    assert answers[0] == answers[1]
    assert reports[0]["model"] == reports[1]["model"]
    assert reports[0]["feedback"] == {"event_weights": {}, "negative_types": []}
    assert reports[1]["feedback"] == {
        "event_weights": {"cart": 3.0, "purchase": 5.0, "view": 1.0},
        "negative_types": ["dislike"],
    }


def test_weights_change_what_is_learned(settings_overrides, tmp_path):
    """The same events, with and without AIREC_EVENT_WEIGHTS: purchases weighing 20 pull their item up."""
    from airec.app import create_app

    records, _ = planted(units=160)
    typed = [{"user": f"p{i}", "items": ["g1-i0", "g3-i5"], "type": "purchase"} for i in range(3)]
    scores = []
    for name, extra in (("unweighted", {}), ("weighted", {"event_weights": "view:1,purchase:20"})):
        app = create_app(
            {
                **settings_overrides,
                "database_url": f"sqlite:///{tmp_path}/{name}.db",
                "models_dir": str(tmp_path / name),
                **extra,
            }
        )
        client = app.test_client()
        ingest(client, records + typed)
        train(client, {"algorithm": "itemknn"})
        scores.append(dict(_scores(client, [["g1-i0"]])[0]))
    assert scores[1].get("g3-i5", 0.0) > scores[0].get("g3-i5", 0.0)


def test_negative_items_stay_out_of_the_users_recommendations(settings_overrides):
    from airec.app import create_app

    app = create_app({**settings_overrides, "negative_types": "dislike"})
    client = app.test_client()
    ingest(client, planted(units=160)[0])
    train(client, {"algorithm": "itemknn"})
    events = [
        {"user": "z", "items": ["g4-i0", "g4-i1", "g4-i2"]},
        {"user": "z", "items": ["g4-i3"], "type": "dislike"},  # never had it: never proposed
        {"user": "z", "items": ["g4-i1"], "type": "dislike"},  # had it, then disliked: not scored either
    ]
    for event in events:
        assert client.post(INTERACTIONS, json=event).status_code == 201
    answer = client.get("/api/v1/users/z/recommendations?k=20").get_json()
    proposed = {e["item"] for e in answer["items"]}
    assert not proposed & {"g4-i0", "g4-i1", "g4-i2", "g4-i3"}
    assert answer["history_size"] == 4 and answer["history_used"] == 2
    # Liking it again afterwards makes it a positive once more (only the latest event counts).
    assert (
        client.post(INTERACTIONS, json={"user": "z", "items": ["g4-i1"], "type": "cart"}).status_code == 201
    )
    answer = client.get("/api/v1/users/z/recommendations?k=20").get_json()
    assert answer["history_used"] == 3
    with database.connection_context():
        assert np.isfinite(answer["items"][0]["score"])
