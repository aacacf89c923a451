"""Two web hosts that share only PostgreSQL, and `airec worker` processes that train for them.

Each "host" is its own gunicorn master with its own AIREC_MODELS_DIR; no process reads another's
disk. Model files travel through the database (AIREC_MODEL_STORE=database).
"""

from __future__ import annotations

import signal

import pytest

from airec.benchmarks.server import Gunicorn, TrainingWorker, planted_records
from airec.modelstore import folders
from tests.gunicorn_helpers import versions_seen, wait_until
from tests.pg_helpers import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.gunicorn]

ENV = {
    "AIREC_TRAINER": "worker",
    "AIREC_MODEL_STORE": "database",
    "AIREC_ACTIVATE": "always",
    "AIREC_AUTH": "off",
    "AIREC_TRAIN_LEASE_SECONDS": "3",
    "AIREC_MODEL_POLL_SECONDS": "0.5",
    "AIREC_WORKER_POLL_SECONDS": "0.2",
    "AIREC_LOG_JSON": "0",
}
QUICK = {"algorithm": "autoencoder", "params": {"epochs": 3, "patience": 3, "hidden": 0, "latent": 16}}
SLOW = {"algorithm": "autoencoder", "params": {"epochs": 10000, "patience": 10000, "max_updates": 10**6}}


def queue(host: Gunicorn, body: dict) -> int:
    response = host.post("/api/v1/training", json=body)
    assert response.status_code == 202, response.text
    run = response.json()["run"]
    assert run["status"] == "queued", run  # the web host never trains
    return run["id"]


def serving(host: Gunicorn) -> set:
    return set(versions_seen(host, 3))


def run_of(host: Gunicorn, run_id: int) -> dict:
    return host.get(f"/api/v1/training/runs/{run_id}").json()["run"]


@pytest.fixture
def cluster(tmp_path):
    with fresh_database("airec_hosts") as url:
        host_a = Gunicorn(tmp_path / "host-a", workers=1, env=ENV, database_url=url)
        host_b = Gunicorn(tmp_path / "host-b", workers=1, env=ENV, database_url=url)
        with host_a, host_b:
            yield host_a, host_b, url


def test_two_hosts_one_worker_train_roll_back_and_survive_a_killed_worker(cluster, tmp_path):
    host_a, host_b, url = cluster
    response = host_a.post("/api/v1/interactions", json={"records": planted_records(users=300)})
    assert response.status_code == 201, response.text
    first_worker = TrainingWorker(tmp_path / "worker-1", database_url=url, env=ENV)
    with first_worker:
        # Ingest through A, train through B: within 10 s of the run's end both hosts answer from the
        # new version (the fit itself takes what it takes on a loaded machine).
        run_id = queue(host_b, QUICK)

        def finished() -> bool:
            run = run_of(host_a, run_id)
            assert run["status"] != "failed", run
            return run["status"] == "succeeded"

        wait_until(finished, timeout=90)
        published = run_of(host_a, run_id)["model_version"]
        assert wait_until(lambda: serving(host_a) == serving(host_b) == {published}, timeout=10) <= 10
        v1 = run_of(host_b, run_id)["model_version"]
        for folder in (tmp_path / "host-a" / "models", tmp_path / "host-b" / "models"):
            assert folders.verify(folder / v1)["version"] == v1  # each host has its own verified copy

        v2_run = queue(host_a, {"algorithm": "itemknn"})
        wait_until(lambda: run_of(host_b, v2_run)["status"] == "succeeded", timeout=30)
        v2 = run_of(host_b, v2_run)["model_version"]
        wait_until(lambda: serving(host_a) == serving(host_b) == {v2}, timeout=10)

        # A rollback on A reaches B.
        assert host_a.post(f"/api/v1/models/{v1}/activate").status_code == 200
        wait_until(lambda: serving(host_b) == {v1}, timeout=10)
        assert host_a.post("/api/v1/models/unpin").status_code == 200

        # kill -9 of the worker mid-run changes no model.
        slow = queue(host_b, SLOW)
        wait_until(lambda: (run_of(host_a, slow)["progress"]["epoch"] or 0) >= 2, timeout=60)
        first_worker.kill(signal.SIGKILL)
    versions_before = {v["version"] for v in host_a.get("/api/v1/models").json()["versions"]}
    assert versions_before == {v1, v2}
    wait_until(lambda: run_of(host_b, slow)["status"] == "failed", timeout=20)  # once the lease lapsed
    assert "interrupted" in run_of(host_b, slow)["error"]
    assert serving(host_a) == serving(host_b) == {v1}
    assert {v["version"] for v in host_a.get("/api/v1/models").json()["versions"]} == {v1, v2}
    assert folders.complete_versions(tmp_path / "worker-1" / "models") == [v1, v2]  # nothing half-published

    # A second worker trains the next run; with two workers up, each run is claimed by exactly one.
    second = TrainingWorker(tmp_path / "worker-2", database_url=url, env=ENV)
    third = TrainingWorker(tmp_path / "worker-3", database_url=url, env=ENV)
    with second, third:
        nxt = queue(host_a, {"algorithm": "itemknn"})
        wait_until(lambda: run_of(host_a, nxt)["status"] == "succeeded", timeout=30)
        v3 = run_of(host_a, nxt)["model_version"]
        assert v3 not in (v1, v2)
        wait_until(lambda: serving(host_a) == serving(host_b) == {v3}, timeout=10)
        last = queue(host_b, {"algorithm": "itemknn"})
        wait_until(lambda: run_of(host_a, last)["status"] == "succeeded", timeout=30)
    logs = [w.log_path.read_text() for w in (second, third)]
    for run_id in (nxt, last):
        claims = [log.count(f"claimed training run {run_id}\n") for log in logs]
        assert sorted(claims) == [0, 1], (run_id, claims)
