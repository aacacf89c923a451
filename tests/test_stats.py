"""GET /api/v1/stats, /api/v1/items (paginated popularity), /api/v1/interactions (keyset export)."""

from __future__ import annotations

import json

import pytest

from airec.ingestion.service import ingest_records
from airec.stats.service import export_interactions, item_popularity


def post(client, records: list[dict]) -> None:
    response = client.post("/api/v1/interactions", json={"records": records})
    assert response.status_code == 201, response.get_json()


def test_counts(client):
    assert client.get("/api/v1/stats").get_json() == {"users": 0, "items": 0, "records": 0, "interactions": 0}
    post(client, [{"user": "a", "items": ["x", "y"]}, {"user": "b", "items": ["x"]}, {"items": ["z"]}])
    assert client.get("/api/v1/stats").get_json() == {"users": 2, "items": 3, "records": 3, "interactions": 4}


def test_items_most_popular_first_ties_by_name_and_paginated(client):
    post(
        client,
        [
            {"items": ["pear", "apple", "fig"]},
            {"items": ["pear", "apple"]},
            {"items": ["pear", "kiwi"]},
        ],
    )
    first = client.get("/api/v1/items?page=1&page_size=2")
    assert first.status_code == 200
    assert first.get_json() == [{"item": "pear", "count": 3}, {"item": "apple", "count": 2}]
    header = json.loads(first.headers["X-Pagination"])
    assert header["total"] == 4 and header["total_pages"] == 2 and header["next_page"] == 2

    second = client.get("/api/v1/items?page=2&page_size=2").get_json()
    assert second == [{"item": "fig", "count": 1}, {"item": "kiwi", "count": 1}]


@pytest.mark.parametrize(
    "query, field", [("page=0", "page"), ("page_size=5000", "page_size"), ("page=x", "page")]
)
def test_items_bad_pagination(client, query, field):
    response = client.get(f"/api/v1/items?{query}")
    assert response.status_code == 422
    assert f"{field}:" in response.get_json()["message"]


def test_export_pages_through_everything_exactly_once(client):
    post(client, [{"user": f"u{i % 7}", "items": [f"i{i}", f"i{i + 1}", f"i{i + 2}"]} for i in range(400)])
    seen: list[int] = []
    after, pages = 0, 0
    while True:
        response = client.get(f"/api/v1/interactions?after={after}&limit=170")
        assert response.status_code == 200
        page = response.get_json()
        seen.extend(row["id"] for row in page["interactions"])
        pages += 1
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["interactions"][-1]["id"]
        after = page["next_after"]
    assert len(seen) == 1200 == len(set(seen))
    assert seen == sorted(seen)
    assert pages == 8  # 7 full pages of 170 and one of 10

    first = client.get("/api/v1/interactions?limit=1").get_json()["interactions"][0]
    assert set(first) == {"id", "record", "user", "item", "timestamp"}
    assert (first["user"], first["item"], first["timestamp"]) == ("u0", "i0", None)


def test_export_exact_multiple_and_past_the_end(client):
    post(client, [{"items": ["a", "b"]}, {"items": ["c", "d"]}])
    page = client.get("/api/v1/interactions?limit=4").get_json()
    assert len(page["interactions"]) == 4 and page["next_after"] is None
    assert client.get("/api/v1/interactions?after=4").get_json() == {"interactions": [], "next_after": None}


@pytest.mark.parametrize(
    "query, field",
    [("limit=0", "limit"), ("limit=10001", "limit"), ("after=-1", "after"), ("after=abc", "after")],
)
def test_export_bad_query(client, query, field):
    response = client.get(f"/api/v1/interactions?{query}")
    assert response.status_code == 422
    assert f"{field}:" in response.get_json()["message"]


def test_item_popularity_service(db):
    assert item_popularity() == []
    ingest_records([{"items": ["b", "a"]}, {"items": ["a", "c"]}, {"items": ["c"]}])
    assert item_popularity() == [("a", 2), ("c", 2), ("b", 1)]
    assert item_popularity(limit=1) == [("a", 2)]
    assert export_interactions(after=0, limit=2)["next_after"] == 2


def test_interactions_per_day_counts_each_utc_day_with_zeros(client):
    import datetime as dt

    from airec.db import database
    from airec.tables import Record

    post(client, [{"items": ["a", "b"]}, {"items": ["c"]}, {"items": ["d", "e", "f"]}])
    today = dt.datetime.now(dt.UTC).date()
    with database.connection_context():  # the first record arrived two days ago, the third 40 days ago
        Record.update(created_at=dt.datetime.combine(today - dt.timedelta(days=2), dt.time(23, 59))).where(
            Record.id == 1
        ).execute()
        Record.update(created_at=dt.datetime.combine(today, dt.time()) - dt.timedelta(days=40)).where(
            Record.id == 3
        ).execute()
    days = client.get("/api/v1/stats/daily?days=3").get_json()["days"]
    assert days == [
        {"date": (today - dt.timedelta(days=2)).isoformat(), "interactions": 2},
        {"date": (today - dt.timedelta(days=1)).isoformat(), "interactions": 0},
        {"date": today.isoformat(), "interactions": 1},
    ]
    month = client.get("/api/v1/stats/daily").get_json()["days"]
    assert len(month) == 30 and sum(day["interactions"] for day in month) == 3
    assert sum(d["interactions"] for d in client.get("/api/v1/stats/daily?days=41").get_json()["days"]) == 6


@pytest.mark.parametrize("query", ["days=0", "days=367", "days=x"])
def test_interactions_per_day_bad_query(client, query):
    response = client.get(f"/api/v1/stats/daily?{query}")
    assert response.status_code == 422
    assert "days:" in response.get_json()["message"]
