"""Every answer obeys the catalogue: hidden and out-of-window items never, filters by category and
label, k filled from further down, `filtered` counted; through the real app and a real itemknn fit."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from airec.catalogue import masks
from tests.synthetic import ingest, recommend


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


@pytest.fixture
def every_request_reads_the_version(monkeypatch):
    monkeypatch.setattr(masks, "POLL_SECONDS", 0.0)


pytestmark = pytest.mark.usefixtures("fresh_popularity_cache", "every_request_reads_the_version")


@pytest.fixture
def trained(planted_itemknn):
    return planted_itemknn


def names(answer: dict) -> list[str]:
    return [entry["item"] for entry in answer["items"]]


def describe(client, **items: dict) -> None:
    body = {"items": [{"item": name, **fields} for name, fields in items.items()]}
    assert client.post("/api/v1/items", json=body).status_code == 200


BASKET = ["g2-i0", "g2-i1"]


def test_hidden_items_are_replaced_from_further_down_and_counted(client, trained):
    before = names(recommend(client, BASKET, k=6))
    assert client.patch(f"/api/v1/items/{before[0]}", json={"hidden": True}).status_code == 200
    assert client.patch(f"/api/v1/items/{before[2]}", json={"hidden": True}).status_code == 200
    after = recommend(client, BASKET, k=6)
    assert names(after) == [n for n in before if n not in (before[0], before[2])] + names(after)[4:]
    assert len(after["items"]) == 6 and after["filtered"] == 2
    assert recommend(client, BASKET, k=6, exclude=[before[1]])["filtered"] == 3  # exclude counts too
    client.patch(f"/api/v1/items/{before[0]}", json={"hidden": False})
    assert names(recommend(client, BASKET, k=6))[0] == before[0]


def test_categories_labels_and_exclude_labels_restrict_every_answer(client, trained):
    describe(
        client,
        **{
            "g2-i2": {"categories": ["shoes/running"], "labels": ["sale", "acme"]},
            "g2-i3": {"categories": ["shoes"], "labels": ["acme"]},
            "g2-i4": {"categories": ["shoestring"], "labels": ["sale", "acme", "adult"]},
            "g5-i0": {"categories": ["shoes/walking"], "labels": ["sale"]},
        },
    )
    shoes = recommend(client, BASKET, k=10, categories=["shoes"])
    assert set(names(shoes)) == {"g2-i2", "g2-i3", "g5-i0"}  # sub-paths, not name prefixes
    assert shoes["filtered"] > 0
    either = recommend(client, BASKET, k=10, categories=["shoes/running", "shoestring"])
    assert set(names(either)) == {"g2-i2", "g2-i4"}
    assert set(names(recommend(client, BASKET, k=10, labels=["sale", "acme"]))) == {"g2-i2", "g2-i4"}
    excluded = names(recommend(client, BASKET, k=10, labels=["acme"], exclude_labels=["adult"]))
    assert set(excluded) == {"g2-i2", "g2-i3"}
    unknown = client.post("/api/v1/recommendations", json={"items": BASKET, "categories": ["nothing"]})
    assert unknown.status_code == 200 and unknown.json["items"] == []

    user = client.get("/api/v1/users/u2/recommendations?k=10&categories=shoes&exclude_labels=sale")
    assert user.status_code == 200 and set(names(user.json)) <= {"g2-i3"}
    similar = client.get("/api/v1/items/g2-i0/similar?k=10&labels=acme&labels=sale")
    assert similar.status_code == 200 and set(names(similar.json)) == {"g2-i2", "g2-i4"}
    proposed = client.post("/proposeInteraction", json={"items": BASKET, "k": 10, "categories": ["shoes"]})
    assert set(proposed.json["items"]) == {"g2-i2", "g2-i3", "g5-i0"} and proposed.json["filtered"] > 0


def test_the_popularity_fallback_obeys_the_same_rules(client, trained):
    first = recommend(client, ["ghost"], k=3)
    popular = names(first)
    client.patch(f"/api/v1/items/{popular[0]}", json={"hidden": True})
    answer = recommend(client, ["ghost"], k=3)
    assert answer["fallback"] == "popularity" and popular[0] not in names(answer)
    scores = [entry["score"] for entry in answer["items"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and answer["filtered"] == 1
    assert scores[:2] == [entry["score"] for entry in first["items"][1:]]  # ties may swap names, not ranks
    describe(client, **{popular[2]: {"categories": ["hats"]}})
    assert names(recommend(client, [], k=3, categories=["hats"])) == [popular[2]]


def test_without_a_model_the_database_popularity_obeys_the_rules(client):
    ingest(client, [{"items": ["a", "b", "c"]}, {"items": ["a", "b"]}, {"items": ["a", "d"]}])
    describe(client, a={"hidden": True}, c={"labels": ["sale"]}, d={"labels": ["sale"]})
    answer = recommend(client, [], k=2)
    assert names(answer) == ["b", "c"] and answer["filtered"] == 1
    on_sale = recommend(client, [], k=5, labels=["sale"])
    assert names(on_sale) == ["c", "d"] and on_sale["filtered"] == 2


def test_a_window_opens_and_closes_without_anyone_calling_the_api(client, trained):
    before = names(recommend(client, BASKET, k=3))
    now = dt.datetime.now(dt.UTC)
    opens = (now + dt.timedelta(seconds=1.5)).isoformat()
    closes = (now + dt.timedelta(seconds=1.5)).isoformat()
    describe(client, **{before[0]: {"available_from": opens}, before[1]: {"available_until": closes}})
    assert before[0] not in names(recommend(client, BASKET, k=3))
    assert before[1] in names(recommend(client, BASKET, k=3))
    time.sleep(1.7)
    later = names(recommend(client, BASKET, k=3))
    assert before[0] in later and before[1] not in later


def test_a_described_item_without_interactions_is_never_recommended(client, trained):
    describe(client, brand_new={"categories": ["shoes"]})
    assert names(recommend(client, BASKET, k=10, categories=["shoes"])) == []
    assert names(recommend(client, [], k=10, categories=["shoes"])) == []


def test_filter_lists_are_validated(client, trained):
    for body in (
        {"items": BASKET, "categories": [""]},
        {"items": BASKET, "labels": "sale"},
        {"items": BASKET, "exclude_labels": ["x"] * 101},
    ):
        answer = client.post("/api/v1/recommendations", json=body)
        assert answer.status_code == 422 and next(iter(set(body) - {"items"})) in answer.json["message"]


@pytest.mark.slow
def test_a_million_described_items_load_in_under_30s_and_500mb(db):
    """Masks over a 1M-item index from 1M described items (60 categories with sub-paths, 500 brands)."""
    import json

    from airec.catalogue.masks import CatalogueMasks, Rules

    rows = [
        (
            f"item-{i}",
            json.dumps([f"c{i % 60}", f"c{i % 60}/s{i % 7}"]),
            json.dumps([f"brand{i % 500}", "sale"] if i % 3 else [f"brand{i % 500}"]),
            i % 100 == 0,
            "2999-01-01 00:00:00" if i % 1000 == 0 else None,
        )
        for i in range(1_000_000)
    ]
    with db.atomic():
        db.cursor().executemany(
            "INSERT INTO item_catalogue (name, categories, labels, hidden, available_from, properties, "
            "updated_at) VALUES (?, ?, ?, ?, ?, '{}', '2026-01-01 00:00:00')",
            rows,
        )
    del rows
    index = {f"item-{i}": i for i in range(1_000_000)}
    started = time.perf_counter()
    built = CatalogueMasks.build(index, "v1", "some-version")
    seconds = time.perf_counter() - started
    held = (
        sum(a.nbytes for a in (built.hidden, built.starts, built.ends) if a is not None)
        + sum(a.nbytes for postings in (built.by_category, built.by_label) for a in postings.values())
        + sum(k.starts.nbytes + k.key_ids.nbytes for k in (built.category_keys_of, built.label_keys_of))
    )
    print(f"1M described items: masks built in {seconds:.1f}s, {held / 2**20:.0f} MiB of arrays")
    assert seconds < 30 and held < 500 * 2**20
    blocked = built.blocked(Rules.of(["c0"]), now=time.time())
    c0_shown = [i for i in range(0, 1_000_000, 60) if i % 100 and i % 1000]  # less hidden and not-yet ones
    assert np.flatnonzero(~blocked).tolist() == c0_shown
