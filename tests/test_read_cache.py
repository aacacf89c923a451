"""Dashboard reads (stats, items, runs, models) are answered from each worker's memory for
AIREC_READ_CACHE_SECONDS: another worker's write shows within that time, this worker's at once, and
access control still runs on every request. Two apps over one database stand for two workers; each
cache's clock is driven by the test."""

from __future__ import annotations

import pytest

from tests.synthetic import ingest


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workers(settings_overrides):
    from airec.app import create_app

    apps = [create_app({**settings_overrides, "read_cache_seconds": 1.0}) for _ in range(2)]
    clocks = []
    for app in apps:
        clocks.append(Clock())
        app.extensions["airec_read_cache"].clock = clocks[-1]
    return apps[0].test_client(), apps[1].test_client(), clocks[1]


def test_another_workers_write_shows_within_the_cache_time(workers):
    a, b, clock_b = workers
    assert b.get("/api/v1/stats").json["interactions"] == 0
    assert b.get("/api/v1/items").json == []
    ingest(a, [{"user": "u1", "items": ["x", "y"]}])
    assert a.get("/api/v1/stats").json["interactions"] == 2  # the writing worker: at once
    clock_b.now += 0.9
    assert b.get("/api/v1/stats").json["interactions"] == 0  # the other: its answer of 0.9 s ago
    assert b.get("/api/v1/items").json == []
    clock_b.now += 0.1
    assert b.get("/api/v1/stats").json["interactions"] == 2
    items = b.get("/api/v1/items")
    assert [row["item"] for row in items.json] == ["x", "y"]
    assert "X-Pagination" in items.headers  # headers are kept with the body


def test_a_write_through_this_worker_is_seen_at_once(workers):
    a, _, _ = workers
    assert a.get("/api/v1/stats").json["records"] == 0
    ingest(a, [{"items": ["x"]}])
    assert a.get("/api/v1/stats").json["records"] == 1
    assert a.get("/api/v1/training/runs").json["runs"] == []


def test_query_strings_are_cached_apart(workers):
    a, _, _ = workers
    ingest(a, [{"user": f"u{i}", "items": [f"i{i}"]} for i in range(3)])
    assert len(a.get("/api/v1/items?page_size=1").json) == 1
    assert len(a.get("/api/v1/items?page_size=2").json) == 2


def test_a_cached_answer_still_needs_a_key(settings_overrides):
    from airec.app import create_app
    from airec.auth.service import create_key
    from airec.db import database

    app = create_app({**settings_overrides, "auth": True, "read_cache_seconds": 30.0})
    with database.connection_context():
        _, read = create_key(name="dash", role="read")
        _, ingest_key = create_key(name="feed", role="ingest")
    client = app.test_client()
    assert client.get("/api/v1/stats", headers={"Authorization": f"Bearer {read}"}).status_code == 200
    assert client.get("/api/v1/stats").status_code == 401  # cached, yet refused without a key
    assert client.get("/api/v1/stats", headers={"Authorization": f"Bearer {ingest_key}"}).status_code == 403


def test_zero_turns_the_cache_off(settings_overrides):
    from airec.app import create_app

    a = create_app({**settings_overrides, "read_cache_seconds": 0}).test_client()
    b = create_app({**settings_overrides, "read_cache_seconds": 0}).test_client()
    assert b.get("/api/v1/stats").json["interactions"] == 0
    ingest(a, [{"items": ["x"]}])
    assert b.get("/api/v1/stats").json["interactions"] == 1
