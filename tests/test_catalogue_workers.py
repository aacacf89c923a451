"""A catalogue change reaches every gunicorn worker, and every host, within one second, without a
restart or a retrain."""

from __future__ import annotations

import time

import pytest
import requests

from airec.benchmarks.server import Gunicorn
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
