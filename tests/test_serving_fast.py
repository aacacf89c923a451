"""Recommendations are written as JSON without a marshmallow dump: every answer must be exactly what
the documented schema's dump would give (same keys, same types), for each shape an answer can take."""

from __future__ import annotations

import pytest

from airec.serving.schemas import RecommendationSchema, SimilarItemsSchema, UserRecommendationSchema
from tests.synthetic import ingest, planted, train


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


pytestmark = pytest.mark.usefixtures("fresh_popularity_cache")


def same_as_schema_dump(body: dict, schema, keys: set[str]) -> None:
    assert set(body) == keys
    assert schema.dump(body) == body
    for entry in body["items"]:
        assert isinstance(entry["item"], str) and type(entry["score"]) is float
        for because in entry.get("because", []):
            assert isinstance(because["item"], str) and type(because["contribution"]) is float


KEYS = {"items", "model_version", "unknown_items", "fallback", "filtered", "recommendation_id", "variant"}


def test_every_answer_shape_matches_the_schema(client):
    records, _ = planted(units=120)
    ingest(client, records)
    schema = RecommendationSchema()
    # No model yet: the database's popularity.
    before = client.post("/api/v1/recommendations", json={"items": ["g1-i0"], "k": 3})
    assert before.status_code == 200 and before.content_type == "application/json"
    same_as_schema_dump(before.json, schema, KEYS)
    assert before.json["fallback"] == "popularity" and before.json["model_version"] is None

    train(client, {"algorithm": "itemknn"})
    for body in (
        {"items": ["g1-i0", "g1-i1"], "k": 5},
        {"items": ["g1-i0", "g1-i1", "ghost"], "k": 4, "exclude": ["g1-i2"], "explain": True},
        {"items": ["g1-i0"], "explain": True},
        {"items": ["ghost"], "k": 2},  # no known item: the model's popularity
        {"items": []},
    ):
        answer = client.post("/api/v1/recommendations", json=body)
        assert answer.status_code == 200, answer.json
        same_as_schema_dump(answer.json, schema, KEYS)
        assert answer.get_data(as_text=True).endswith("\n")

    user = client.get("/api/v1/users/u1/recommendations?k=3&explain=true")
    assert user.status_code == 200
    user_keys = (KEYS - {"unknown_items"}) | {"user", "history_size", "history_used"}
    same_as_schema_dump(user.json, UserRecommendationSchema(), user_keys)
    similar = client.get("/api/v1/items/g1-i0/similar?k=3")
    assert similar.status_code == 200
    same_as_schema_dump(
        similar.json,
        SimilarItemsSchema(),
        {"item", "items", "model_version", "filtered", "recommendation_id", "variant"},
    )


def test_names_are_written_verbatim_in_utf8(client):
    ingest(client, [{"user": f"ü{u}", "items": ["café", "naïve ☕"]} for u in range(2)])
    answer = client.post("/api/v1/recommendations", json={"items": ["café"], "k": 2})
    assert answer.status_code == 200
    assert "naïve ☕" in answer.get_data(as_text=True)  # raw UTF-8, not \\u escapes
    assert answer.json["items"][0]["item"] == "naïve ☕"


QUERIES = [
    {"items": ["a", "b"]},
    {"items": []},
    {"items": ["a"], "k": 3, "exclude": ["c"], "explain": True},
    {"items": ["a"], "k": 1000},
    {"items": ["a"], "k": 1001},
    {"items": ["a"], "k": 0},
    {"items": ["a"], "k": True},
    {"items": ["a"], "k": 3.0},
    {"items": ["a"], "k": "3"},
    {"items": ["a"], "explain": "true"},
    {"items": ["a"], "explain": 1},
    {"items": [""]},
    {"items": ["x" * 256]},
    {"items": ["x" * 257]},
    {"items": [1]},
    {"items": [None]},
    {"items": "a"},
    {"items": ["a"] * 6},
    {"items": ["a"] * 7},
    {"items": ["a"], "exclude": [""]},
    {"items": ["a"], "exclude": "b"},
    {"items": ["a"], "exclude": None},
    {"items": ["a"], "other": 1},
    {
        "items": ["a"],
        "categories": ["shoes", "shoes/running"],
        "labels": ["sale"],
        "exclude_labels": ["adult"],
    },
    {"items": ["a"], "categories": [""]},
    {"items": ["a"], "labels": "sale"},
    {"items": ["a"], "categories": None},
    {"items": ["a"], "exclude_labels": []},
    {"items": ["a"], "user": None, "exclude": []},
    {"items": ["a"], "exclude_labels": ["x"] * 101},
    {"k": 3},
    [],
    None,
]


@pytest.mark.parametrize("query", QUERIES, ids=[repr(q)[:40] for q in QUERIES])
def test_the_one_pass_query_check_loads_as_marshmallow_does(app, query):
    """The recommendation body's fast check gives marshmallow's result, or leaves the refusal to it,
    under the deployment's own limits (here AIREC_MAX_HISTORY=6)."""
    import marshmallow as ma

    from airec.serving.schemas import RecommendationQuerySchema

    app.config["AIREC"] = app.config["AIREC"].__class__(**{**vars(app.config["AIREC"]), "max_history": 6})

    def outcome(load):
        try:
            return "ok", load(query)
        except ma.ValidationError as exc:
            return "error", exc.messages

    schema = RecommendationQuerySchema()
    with app.app_context():
        fast = outcome(schema.load)
        slow = outcome(lambda data: ma.Schema.load(schema, data))
    assert fast == slow
    if query == {"items": ["a"] * 7}:
        assert fast[0] == "error"  # the deployment's limit applies to both paths


def test_a_plain_recommendation_body_takes_the_one_pass_check(client, monkeypatch):
    """The route really loads its body through the fast check (and a refused body through
    marshmallow, which words the 422)."""
    import airec.serving.schemas as schemas

    seen = []
    real = schemas._plain_query

    def counting(data):
        seen.append(real(data))
        return seen[-1]

    monkeypatch.setattr(schemas, "_plain_query", counting)
    answer = client.post("/api/v1/recommendations", json={"items": ["a"], "k": 2})
    assert answer.status_code == 200 and seen == [
        {
            "items": ["a"],
            "k": 2,
            "exclude": [],
            "explain": False,
            "categories": [],
            "labels": [],
            "exclude_labels": [],
        }
    ]
    refused = client.post("/api/v1/recommendations", json={"items": ["a"], "k": 0})
    assert refused.status_code == 422 and "k" in str(refused.get_json()) and seen[-1] is None


def test_top_k_is_the_full_sorts_first_k_with_ties_in_index_order():
    """top_k equals sorting every finite score (best first, equal scores by index) and keeping k, on
    catalogues with many ties (popularity counts, sparse similarities), masked items (-inf) and the
    odd +inf or NaN, which never count."""
    import numpy as np

    from airec.serving.active import top_k

    rng = np.random.default_rng(7)
    for trial in range(400):
        n = int(rng.integers(1, 3000 if trial % 10 == 0 else 80))
        scores = np.round(rng.standard_normal(n), int(rng.integers(0, 3)))
        scores[rng.random(n) < 0.3] = -np.inf
        if trial % 5 == 0:
            scores[rng.random(n) < 0.05] = rng.choice([np.inf, np.nan])
        k = int(rng.integers(0, 25))
        finite = [i for i in range(n) if np.isfinite(scores[i])]
        expected = sorted(finite, key=lambda i: (-scores[i], i))[:k]
        assert top_k(scores, k).tolist() == expected, (trial, k)


def test_top_k_on_a_catalogue_takes_the_sampled_bound_and_still_equals_the_full_sort():
    """On catalogue-sized scores top_k ranks only those at or above a bound sampled from every 16th
    score; that pick equals the full sort also when the sample is unrepresentative (sorted scores,
    the best in the unsampled places), with heavy ties, masked items and the odd +inf or NaN."""
    import numpy as np

    from airec.serving.active import SAMPLE_STRIDE, _above_sampled_bound, top_k

    rng = np.random.default_rng(11)
    sampled = 0
    for trial in range(120):
        n = int(rng.integers(500, 20000))
        scores = np.round(rng.standard_normal(n), int(rng.integers(0, 4)))
        scores[rng.random(n) < 0.2] = -np.inf
        shape = trial % 6
        if shape == 1:
            scores = np.sort(scores)  # the best at the end, after the sample's last place
        elif shape == 2:
            scores[np.arange(n) % SAMPLE_STRIDE != 0] += 3.0  # the best all outside the sample
        elif shape == 3:
            scores[rng.random(n) < 0.01] = rng.choice([np.inf, np.nan])
        if trial % 2:
            scores = scores.astype(np.float32)  # what the network and EASE score in
        k = int(rng.integers(1, 40))
        finite = np.flatnonzero(np.isfinite(scores))
        expected = finite[np.lexsort((finite, -scores[finite]))][:k].tolist()
        assert top_k(scores, k).tolist() == expected, (trial, k)
        sampled += _above_sampled_bound(scores, k) is not None
    assert sampled >= 60  # the fast pick answered most of these


def test_a_plain_body_skips_webargs_and_a_refused_one_takes_it(client, monkeypatch):
    """Blueprint.arguments hands a body its schema's one-pass check accepts straight to the view; a
    body it leaves to marshmallow goes through webargs (the parser runs) and gets the same 422. The
    route's documented request body is unchanged."""
    from airec.extensions import ParsedBodyParser

    parsed = []
    real = ParsedBodyParser.parse

    def counting(self, *args, **kwargs):
        parsed.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ParsedBodyParser, "parse", counting)
    answer = client.post("/api/v1/recommendations", json={"items": ["a"], "k": 2})
    assert answer.status_code == 200 and parsed == []
    refused = client.post("/api/v1/recommendations", json={"items": ["a"], "k": 0})
    assert refused.status_code == 422 and "k" in str(refused.get_json()) and len(parsed) == 1
    spec = client.get("/openapi.json").get_json()
    body = spec["paths"]["/api/v1/recommendations"]["post"]["requestBody"]
    assert (
        "RecommendationQuery" in str(body)
        and "422" in spec["paths"]["/api/v1/recommendations"]["post"]["responses"]
    )
