"""A catalogue change reaches every gunicorn worker, and every host, within one second, without a
restart or a retrain."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest
import requests

from airec.benchmarks.server import Gunicorn
from airec.catalogue.service import record_change
from airec.db import atomic_write, init_db
from airec.imports import import_file
from tests.gunicorn_helpers import planted_records, serve, versions_seen, wait_until
from tests.pg_helpers import fresh_database

pytestmark = pytest.mark.gunicorn

BASKET = {"items": ["g0-i0", "g0-i1"], "k": 3}


def answers(server: Gunicorn, n: int = 30) -> list[tuple[list[str], int]]:
    """(items, worker pid) of n recommendation requests, each on a new connection."""
    out = []
    for _ in range(n):
        response = server.post("/api/v1/recommendations", json=BASKET)
        assert response.status_code == 200, response.text
        out.append([entry["item"] for entry in response.json()["items"]])
    return out


def patch(server: Gunicorn, item: str, body: dict) -> float:
    """PATCH the item; the moment the answer came back."""
    response = requests.patch(f"{server.url}/api/v1/items/{item}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return time.monotonic()


def train_and_serve_everywhere(hosts: list[Gunicorn]) -> None:
    first = hosts[0]
    assert first.post("/api/v1/interactions", json={"records": planted_records(users=300)}).status_code == 201
    run = first.wait_run(first.post("/api/v1/training", json={"algorithm": "itemknn"}).json()["run"]["id"])
    assert run["status"] == "succeeded", run
    for host in hosts:
        wait_until(lambda host=host: set(versions_seen(host, 20)) == {run["model_version"]}, timeout=15)


def check_hidden_within_a_second(hosts: list[Gunicorn]) -> None:
    top = answers(hosts[0], 1)[0][0]
    for host in hosts:
        assert all(items[0] == top for items in answers(host)), "every worker answers the same first"
    hidden_at = patch(hosts[0], top, {"hidden": True})
    time.sleep(max(0.0, hidden_at + 1.0 - time.monotonic()))
    for host in hosts:
        seen = answers(host, 40)
        assert all(top not in items and len(items) == 3 for items in seen), seen
    shown_at = patch(hosts[-1], top, {"hidden": False})
    time.sleep(max(0.0, shown_at + 1.0 - time.monotonic()))
    for host in hosts:
        assert all(items[0] == top for items in answers(host, 40))


@contextlib.contextmanager
def connected(url: str) -> Iterator[peewee.Database]:
    """This test process on the server's database (to load it the fastest way)."""
    db = init_db(url)
    db.connect()
    try:
        yield db
    finally:
        db.close()


def load_described_items(url: str, n: int) -> float:
    """`n` described items bulk-0... (categories, labels, every 100th hidden) written straight into the
    table in one transaction, the fastest path there is, with the change log told 'everything changed'
    as such a loader must."""
    started = time.perf_counter()
    rows = [
        (f"bulk-{i}", f'["c{i % 60}","c{i % 60}/s{i % 7}"]', f'["brand{i % 500}"]', i % 100 == 0)
        for i in range(n)
    ]

    def write() -> None:
        db.cursor().executemany(
            "INSERT INTO item_catalogue (name, categories, labels, hidden, properties, updated_at) "
            "VALUES (?, ?, ?, ?, '{}', '2026-01-01 00:00:00')",
            rows,
        )
        record_change(None)

    with connected(url) as db:
        atomic_write(write)
    return time.perf_counter() - started


def seconds_until_hidden_everywhere(server: Gunicorn, item: str, timeout: float) -> float:
    """PATCH `item` hidden; seconds from the PATCH's answer to the first of 40 answers in a row (both
    workers) that leave it out."""
    hidden_at = patch(server, item, {"hidden": True})
    clean_since, streak = None, 0
    while streak < 40:
        if time.monotonic() - hidden_at > timeout:
            raise AssertionError(f"{item} still answered {timeout}s after it was hidden")
        asked_at = time.monotonic()
        if item in answers(server, 1)[0]:
            clean_since, streak = None, 0
        else:
            clean_since, streak = clean_since or asked_at, streak + 1
    return clean_since - hidden_at


@contextlib.contextmanager
def serving_a_large_catalogue(tmp_path: Path, n: int) -> Iterator[Gunicorn]:
    """Two workers serving a popularity model over the planted items and `n` more items, every one of
    them described: each worker's full build of its masks reads and parses all `n` rows."""
    with serve(tmp_path, workers=2, env={"AIREC_ACTIVATE": "always"}) as server:
        url = server.env["AIREC_DATABASE_URL"]
        interactions = tmp_path / "bulk.csv"
        interactions.write_text("user,item\n" + "".join(f"b{i % 50_000},bulk-{i}\n" for i in range(n)))
        with connected(url):
            import_file(interactions, "csv", progress=False)
        assert (
            server.post("/api/v1/interactions", json={"records": planted_records(users=300)}).status_code
            == 201
        )
        run = server.wait_run(
            server.post("/api/v1/training", json={"algorithm": "popularity"}).json()["run"]["id"]
        )
        assert run["status"] == "succeeded", run
        load_described_items(url, n)
        wait_until(lambda: set(versions_seen(server, 20)) == {run["model_version"]}, timeout=120)
        yield server


@pytest.mark.slow
def test_on_a_large_catalogue_hiding_an_item_reaches_both_workers_within_a_second(tmp_path):
    """300k described items the model knows: a worker's full build of its masks takes seconds; a PATCH
    must not wait for one (each worker reads only the names changed since its masks)."""
    with serving_a_large_catalogue(tmp_path, 300_000) as server:
        top, second, _ = answers(server, 1)[0]
        seconds = [seconds_until_hidden_everywhere(server, top, timeout=60)]
        patch(server, top, {"hidden": False})
        seconds.append(seconds_until_hidden_everywhere(server, second, timeout=60))
        patch(server, second, {"hidden": False})
        print("PATCH to hidden on every worker:", ", ".join(f"{s:.2f}s" for s in seconds))
        assert max(seconds) < 1.0
        check_hidden_within_a_second([server])


def test_hiding_an_item_reaches_both_workers_within_a_second(tmp_path):
    with serve(tmp_path, workers=2, env={"AIREC_ACTIVATE": "always"}) as server:
        assert len(server.worker_pids()) == 2
        train_and_serve_everywhere([server])
        check_hidden_within_a_second([server])


ENV = {
    "AIREC_MODEL_STORE": "database",
    "AIREC_ACTIVATE": "always",
    "AIREC_AUTH": "off",
    "AIREC_MODEL_POLL_SECONDS": "0.5",
    "AIREC_LOG_JSON": "0",
}


@pytest.mark.postgres
@pytest.mark.slow
def test_hiding_an_item_reaches_both_hosts_within_a_second(tmp_path):
    with fresh_database("airec_catalogue_hosts") as url:
        host_a = Gunicorn(tmp_path / "host-a", workers=1, env=ENV, database_url=url)
        host_b = Gunicorn(tmp_path / "host-b", workers=1, env=ENV, database_url=url)
        with host_a, host_b:
            train_and_serve_everywhere([host_a, host_b])
            check_hidden_within_a_second([host_a, host_b])
