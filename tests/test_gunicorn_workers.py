"""Four real gunicorn workers: one trainer at a time, every worker follows activation and rollback."""

from __future__ import annotations

import threading

import pytest

from tests.gunicorn_helpers import planted_records, serve, versions_seen, wait_until

pytestmark = pytest.mark.gunicorn

TRAIN = "/api/v1/training"
#: An autoencoder run long enough (a couple of seconds) that the second request surely overlaps it.
SLOW_RUN = {"algorithm": "autoencoder", "params": {"epochs": 40, "patience": 40, "hidden": 64, "latent": 16}}


def ask_all_at_once(server, n: int, body: dict) -> list:
    """n clients POST the same training request at the same instant; their responses."""
    barrier = threading.Barrier(n)
    answers: list = []

    def ask() -> None:
        barrier.wait()
        answers.append(server.post(TRAIN, json=body))

    threads = [threading.Thread(target=ask) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def assert_one_run_at_a_time(server, answers: list) -> dict:
    """Each request got a run (202) or a 409 naming the run then in flight, and the runs that happened
    never overlapped (usually one run and a 409; a run so quick that it ended before the other request
    arrived gives two runs, one after the other). Returns the last run, finished."""
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {202, 409} and 202 in statuses, [r.text for r in answers]
    accepted = [r.json()["run"]["id"] for r in answers if r.status_code == 202]
    for refused in (r.json() for r in answers if r.status_code == 409):
        assert refused["run"]["id"] in accepted  # the 409 names the run in flight
    runs = sorted((server.wait_run(run_id) for run_id in accepted), key=lambda run: run["started_at"])
    listed = server.get(f"{TRAIN}/runs").json()["runs"]
    assert sorted(r["id"] for r in listed) == sorted(accepted)  # no other run happened
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier["finished_at"] <= later["started_at"], (earlier, later)
    return runs[-1]


def test_four_workers_train_once_and_follow_activation_and_rollback(tmp_path):
    with serve(tmp_path, workers=4, env={"AIREC_ACTIVATE": "always"}) as server:  # every new model goes live
        assert len(server.worker_pids()) == 4
        response = server.post("/api/v1/interactions", json={"records": planted_records(users=300)})
        assert response.status_code == 201, response.text

        # Two clients ask to train at the same instant: one run at a time, whatever the timing.
        answers = ask_all_at_once(server, 2, SLOW_RUN)
        first = assert_one_run_at_a_time(server, answers)
        assert first["status"] == "succeeded", first
        assert first["history"] and "train_loss" in first["history"][-1]  # per-epoch progress

        v1 = first["model_version"]
        wait_until(lambda: set(versions_seen(server, 40)) == {v1}, timeout=10)
        assert set(versions_seen(server, 40)) == {v1}

        # A second model: every worker moves to it.
        second = server.wait_run(server.post(TRAIN, json={"algorithm": "itemknn"}).json()["run"]["id"])
        assert second["status"] == "succeeded", second
        v2 = second["model_version"]
        wait_until(lambda: set(versions_seen(server, 40)) == {v2}, timeout=10)
        assert set(versions_seen(server, 40)) == {v2}

        # Rollback through the API: every worker back on v1 within a few seconds.
        response = server.post(f"/api/v1/models/{v1}/activate")
        assert response.status_code == 200, response.text
        took = wait_until(lambda: set(versions_seen(server, 40)) == {v1}, timeout=10)
        assert set(versions_seen(server, 40)) == {v1}, f"rolled back after {took:.1f}s"
        listing = server.get("/api/v1/models").json()
        assert listing["active"] == v1
        assert {v["version"]: v["status"] for v in listing["versions"]} == {v1: "active", v2: "ready"}


@pytest.mark.postgres
def test_four_workers_on_postgresql_train_once_and_agree(tmp_path, postgres_url):
    with serve(tmp_path, workers=4, database_url=postgres_url) as server:
        response = server.post("/api/v1/interactions", json={"records": planted_records(users=300)})
        assert response.status_code == 201, response.text
        answers = ask_all_at_once(server, 4, SLOW_RUN)
        run = assert_one_run_at_a_time(server, answers)
        assert run["status"] == "succeeded", run
        wait_until(lambda: set(versions_seen(server, 20)) == {run["model_version"]}, timeout=5)
