"""POST /api/v1/recommendations: what is proposed, fallbacks, bounds, explanations, atomic swaps."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import peewee
import pytest
import scipy.sparse as sp

from airec.recsys.algorithms import Popularity
from airec.serving import service
from airec.serving.served import served_model
from tests.synthetic import RECOMMEND, ingest, partners, recommend


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


pytestmark = pytest.mark.usefixtures("fresh_popularity_cache")


@pytest.fixture
def trained(planted_itemknn):
    return planted_itemknn


def names(answer: dict) -> list[str]:
    return [entry["item"] for entry in answer["items"]]


def test_inputs_and_excluded_items_are_never_proposed(client, trained):
    basket = ["g2-i0", "g2-i1", "g5-i3"]
    exclude = ["g2-i2", "g2-i3", "g7-i0"]
    everything = recommend(client, basket, k=1000, exclude=exclude)
    proposed = names(everything)
    assert len(proposed) == len(set(proposed)) == len(trained) - len(basket) - len(exclude)
    assert not set(proposed) & (set(basket) | set(exclude))
    scores = [entry["score"] for entry in everything["items"]]
    assert scores == sorted(scores, reverse=True)

    top = names(recommend(client, ["g2-i0", "g2-i1"], k=2, exclude=["g2-i2", "g2-i3"]))
    assert set(top) == {"g2-i4", "g2-i5"}


def test_unknown_items_are_ignored_and_reported(client, trained):
    plain = recommend(client, ["g4-i0", "g4-i1"], k=5)
    mixed = recommend(client, ["ghost", "g4-i0", "g4-i1", "ghost", "phantom"], k=5)
    assert mixed["unknown_items"] == ["ghost", "phantom"]
    assert mixed["items"] == plain["items"] and mixed["fallback"] is None
    assert set(names(mixed)[:3]) <= partners("g4-i0", trained)


def test_no_model_falls_back_to_database_popularity(client):
    ingest(client, [{"items": ["a", "b", "c"]}, {"items": ["a", "b"]}, {"items": ["a", "d"]}])
    answer = recommend(client, [], k=3)
    assert answer.pop("variant") is None and answer.pop("recommendation_id")  # issue 20
    assert answer == {
        "items": [
            {"item": "a", "score": pytest.approx(3 / 7)},
            {"item": "b", "score": pytest.approx(2 / 7)},
            {"item": "c", "score": pytest.approx(1 / 7)},
        ],
        "model_version": None,
        "unknown_items": [],
        "fallback": "popularity",
        "filtered": 0,
    }
    answer = recommend(client, ["a"], k=5, exclude=["c"])
    assert names(answer) == ["b", "d"] and answer["fallback"] == "popularity"


def test_no_known_input_item_falls_back_to_the_models_popularity(client, trained):
    ingest(client, [{"items": ["g1-i0", "g1-i1"]} for _ in range(40)])  # after training: not counted
    for items in ([], ["nobody-knows"]):
        answer = recommend(client, items, k=5, exclude=["g0-i0"])
        assert answer["fallback"] == "popularity"
        assert answer["model_version"] == served_model.active.version
        assert answer["unknown_items"] == items
        assert "g0-i0" not in names(answer) and len(answer["items"]) == 5
        popularity = served_model.active.popularity
        counts = [popularity[served_model.active.index[name]] for name in names(answer)]
        assert counts == sorted(counts, reverse=True)
        assert counts[0] == max(popularity[i] for n, i in served_model.active.index.items() if n != "g0-i0")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"items": ["a"], "k": 0}, "k"),
        ({"items": ["a"], "k": 1001}, "k"),
        ({"items": ["a"], "k": "x"}, "k"),
        ({"items": "a"}, "items"),
        ({"items": [""]}, "items"),
        ({}, "items"),
        ({"items": ["a"], "exclude": "b"}, "exclude"),
        ({"items": ["a"], "explain": "perhaps"}, "explain"),
        ({"items": ["a"], "colour": "red"}, "colour"),
    ],
)
def test_bad_queries_are_422_naming_the_field(client, body, field):
    response = client.post(RECOMMEND, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("k", [1, 1000])
def test_k_bounds_are_inclusive(client, trained, k):
    answer = recommend(client, ["g0-i0"], k=k)
    assert len(answer["items"]) == min(k, len(trained) - 1)


def test_explain_names_the_contributing_input_items(client, trained):
    basket = ["g3-i0", "g3-i1", "g6-i0"]
    answer = recommend(client, basket, k=4, explain=True)
    for entry in answer["items"]:
        because = entry["because"]
        assert because, entry
        assert {b["item"] for b in because} <= set(basket)
        assert all(0 < b["contribution"] <= 1 for b in because)
        assert sum(b["contribution"] for b in because) <= 1.0 + 1e-6
        group = trained[entry["item"]]
        assert trained[because[0]["item"]] == group  # the strongest reason is from the same group
    single = recommend(client, ["g3-i0"], k=2, explain=True)
    assert all(e["because"] == [{"item": "g3-i0", "contribution": 1.0}] for e in single["items"])
    assert "because" not in recommend(client, basket, k=2)["items"][0]


def test_inference_never_touches_the_database(client, trained, monkeypatch):
    expected = recommend(client, ["g1-i0", "g1-i2"], k=3)

    def refuse(*args, **kwargs):
        raise AssertionError("the database was queried while answering")

    monkeypatch.setattr(peewee.Database, "execute_sql", refuse)
    direct = service.recommend(items=["g1-i0", "g1-i2", "unknown"], k=3, explain=True)
    assert names(direct) == names(expected) and direct["unknown_items"] == ["unknown"]
    assert service.recommend(items=[], k=3)["fallback"] == "popularity"
    again = recommend(client, ["g1-i0", "g1-i2"], k=3)  # through the whole request too
    assert again.pop("recommendation_id") != expected.pop("recommendation_id")  # each answer its own id
    assert again == expected


def test_a_request_sees_exactly_one_version_during_swaps(client, trained):
    first = served_model.active
    counts = sp.csr_matrix(np.eye(first.n_items, dtype=np.float32)[::-1].cumsum(axis=0))
    other_model = Popularity()
    other_model.fit(counts)  # a very different ranking: later columns first
    second = dataclasses.replace(first, version="other-version", model=other_model)
    basket = ["g0-i0", "g1-i0"]
    expected = {}
    for model in (first, second):
        served_model.swap(model)
        expected[model.version] = service.recommend(items=basket, k=5, explain=True)["items"]
    assert expected[first.version] != expected[second.version]

    stop = threading.Event()
    seen: dict[str, int] = {}
    errors: list[str] = []

    def swapper() -> None:
        while not stop.is_set():
            served_model.swap(second)
            served_model.swap(first)

    def reader() -> None:
        for _ in range(150):
            answer = service.recommend(items=basket, k=5, explain=True)
            version = answer["model_version"]
            seen[version] = seen.get(version, 0) + 1
            if answer["items"] != expected.get(version):
                errors.append(version)

    threads = [threading.Thread(target=swapper)] + [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join()
    stop.set()
    threads[0].join()
    served_model.swap(first)
    assert not errors, f"{len(errors)} answers mixed two versions"
    assert set(seen) == {first.version, second.version}, seen
