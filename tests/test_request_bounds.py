"""Bounded requests: a user's history is scored from its most recent AIREC_MAX_HISTORY items, explain
covers the 50 most recent inputs, baskets over the limit are a 422, and one request's scoring memory
does not grow with the square of anything."""

from __future__ import annotations

import datetime as dt
import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from airec.recsys.algorithms import EASE, ItemKNN
from airec.serving import EXPLAIN_INPUTS
from airec.serving.active import ActiveModel
from tests.synthetic import RECOMMEND, ingest, train

CATALOGUE = 10_100
HISTORY = 10_000


def item(i: int) -> str:
    return f"i{i:05d}"


UNOWNED = 100  # items i00000 .. i00099: the heavy user has every other one


def catalogue_baskets() -> list[dict]:
    """Small anonymous baskets that cover all 10,100 items: overlapping windows (i .. i+4 at stride 4),
    random groups of five, and each item the heavy user lacks beside two of its 50 newest (i00100 ..
    i00149), so that what is proposed has something recent to be explained by."""
    rng = np.random.default_rng(7)
    windows = [[item((s + j) % CATALOGUE) for j in range(5)] for s in range(0, CATALOGUE, 4)]
    order = rng.permutation(CATALOGUE)
    groups = [[item(int(i)) for i in order[s : s + 5]] for s in range(0, CATALOGUE, 5)]
    recent = [[item(j), item(UNOWNED + j % 50), item(UNOWNED + (j + 1) % 50)] for j in range(UNOWNED)]
    return [{"items": basket} for basket in windows + groups + recent]


@pytest.fixture
def heavy_user(client) -> dict[str, list[str]]:
    """An item-kNN model on a 10k-item catalogue (trained on small baskets), then a user who has
    10,000 of its items: the 50 newest in one record, the 450 next in another, the 9,500 oldest in 19
    more. Stored newest first, so insertion order and recency disagree."""
    ingest(client, catalogue_baskets())
    train(client, {"algorithm": "itemknn", "params": {"n_neighbors": 50}})
    newest = [item(i) for i in range(UNOWNED, UNOWNED + 50)]
    rest = [item(UNOWNED + 50 + int(i)) for i in np.random.default_rng(11).permutation(HISTORY - 50)]
    next_450, oldest = rest[:450], rest[450:]

    def day(n: int) -> str:
        return (dt.datetime(2024, 1, 1) + dt.timedelta(days=n)).isoformat()

    records = [
        {"user": "heavy", "items": newest, "timestamp": day(30)},
        {"user": "heavy", "items": next_450, "timestamp": day(29)},
    ]
    for n, chunk in enumerate(range(0, len(oldest), 500)):
        records.append({"user": "heavy", "items": oldest[chunk : chunk + 500], "timestamp": day(n)})
    ingest(client, records)
    return {"newest": newest, "recent": newest + next_450, "oldest": oldest}


def test_a_user_with_10k_items_is_answered_from_the_500_most_recent_within_a_second(app, client, heavy_user):
    url = "/api/v1/users/heavy/recommendations"
    query = {"k": 10, "explain": "true"}
    client.get(url, query_string=query)  # warm: the model is loaded, the first query planned

    started = time.perf_counter()
    response = client.get(url, query_string=query)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_json()
    assert elapsed < 1.0, f"one request took {elapsed:.2f}s"

    body = response.get_json()
    assert body["history_size"] == HISTORY and body["history_used"] == 500
    assert len(body["items"]) == 10 and body["fallback"] is None
    history = set(heavy_user["recent"]) | set(heavy_user["oldest"])
    explained = set(heavy_user["newest"])
    for entry in body["items"]:
        assert entry["item"] not in history  # older items are still never proposed
        assert entry["because"], entry
        assert {b["item"] for b in entry["because"]} <= explained  # only the 50 most recent explain

    # Scored from exactly the 500 most recent: the same answer as that basket, with the rest excluded.
    basket = client.post(
        RECOMMEND, json={"items": heavy_user["recent"], "exclude": heavy_user["oldest"], "k": 10}
    ).get_json()
    assert [(e["item"], e["score"]) for e in basket["items"]] == [
        (e["item"], e["score"]) for e in body["items"]
    ]

    tracemalloc.start()
    try:
        assert client.get(url, query_string=query).status_code == 200
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"one request peaked at {peak / 2**20:.1f} MiB"

    # AIREC_MAX_HISTORY sets the window.
    app.config["AIREC"].max_history = 50
    body = client.get(url, query_string={"k": 5}).get_json()
    assert body["history_size"] == HISTORY and body["history_used"] == 50
    older = heavy_user["recent"][50:] + heavy_user["oldest"]
    basket = client.post(RECOMMEND, json={"items": heavy_user["newest"], "exclude": older, "k": 5}).get_json()
    assert basket["items"] == body["items"]


def test_a_basket_over_the_limit_is_a_422_that_names_it(app, client):
    items = [f"x{i}" for i in range(501)]
    response = client.post(RECOMMEND, json={"items": items})
    assert response.status_code == 422
    body = response.get_json()
    assert "items" in body["errors"]["json"] and "500" in body["message"]
    assert "AIREC_MAX_HISTORY" in body["message"]
    assert client.post(RECOMMEND, json={"items": items[:500]}).status_code == 200

    app.config["AIREC"].max_history = 20
    lowered = client.post(RECOMMEND, json={"items": items[:21]})
    assert lowered.status_code == 422 and "20" in lowered.get_json()["message"]
    assert client.post(RECOMMEND, json={"items": items[:20]}).status_code == 200


def test_the_original_propose_route_is_bounded_too(client):
    items = [f"x{i}" for i in range(501)]
    response = client.post("/proposeInteraction", json={"items": items})
    assert response.status_code == 422 and "AIREC_MAX_HISTORY" in response.get_json()["message"]
    assert client.post("/proposeInteraction", json={"items": items[:500]}).status_code == 200


# --- the scoring of one request, below the API ----------------------------------------------------


def _random_units(units: int, items: int, per_unit: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    cols = np.concatenate([rng.choice(items, size=per_unit, replace=False) for _ in range(units)])
    rows = np.repeat(np.arange(units), per_unit)
    return sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(units, items))


def _served(model, n_items: int) -> ActiveModel:
    names = tuple(f"m{i}" for i in range(n_items))
    return ActiveModel(
        version="v",
        algorithm=model.name,
        manifest={},
        items=names,
        popularity=np.ones(n_items, dtype=np.float32),
        model=model,
        index={name: i for i, name in enumerate(names)},
    )


@pytest.mark.parametrize("algorithm", ["itemknn", "ease"])
def test_explaining_500_inputs_costs_memory_for_50_rows_not_500(algorithm):
    n_items = 1500
    X = _random_units(2000, n_items, 8, seed=1)
    model = ItemKNN(n_neighbors=200) if algorithm == "itemknn" else EASE(lam=50.0)
    model.fit(X)
    served = _served(model, n_items)
    inputs = list(np.random.default_rng(2).choice(n_items, size=500, replace=False))
    served.rank(inputs, 10, explain=True)  # warm

    tracemalloc.start()
    try:
        served.rank(inputs, 10, explain=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A few rows of n_items floats; leave-one-out over all 500 inputs needs 500 rows (6 MB here).
    assert peak < 2 * EXPLAIN_INPUTS * n_items * 8, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("algorithm", ["itemknn", "ease"])
def test_linear_explanations_equal_leaving_each_input_out(algorithm):
    """Item-kNN and EASE score linearly, so removing input j lowers a score by exactly what j alone
    scores: the shortcut they use names the same inputs with the same contributions."""
    n_items = 300
    X = _random_units(600, n_items, 6, seed=3)
    model = ItemKNN(n_neighbors=40) if algorithm == "itemknn" else EASE(lam=20.0)
    model.fit(X)
    served = _served(model, n_items)
    inputs = [int(i) for i in np.random.default_rng(4).choice(n_items, size=30, replace=False)]
    scores = served.score_set(inputs)
    masked = scores.copy()
    masked[inputs] = -np.inf
    proposed = np.argsort(-masked)[:8]
    shortcut = served.explain(inputs, proposed, scores[proposed])
    left_out = served.explain_by_leaving_out(inputs, inputs, proposed, scores[proposed])
    assert len(shortcut) == len(left_out) == 8
    for fast, slow in zip(shortcut, left_out, strict=True):
        assert [b["item"] for b in fast] == [b["item"] for b in slow]
        assert [b["contribution"] for b in fast] == pytest.approx([b["contribution"] for b in slow], abs=2e-4)
