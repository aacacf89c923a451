"""Scheduled retraining: only with new data, one tick per slot across workers, and the real thread."""

from __future__ import annotations

import threading
import time

import pytest

from airec import leases
from airec.app import create_app, stop_background
from airec.db import database
from airec.tables import TrainingRun
from airec.training import pipeline, scheduler
from tests.synthetic import ingest, planted, wait_for_run


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0, "algorithm": "itemknn"}


def tick(app, slot: int) -> str:
    with database.connection_context():
        return scheduler.tick(app.config["AIREC"], slot)


def started_id(outcome: str) -> int:
    assert outcome.startswith("started run "), outcome
    return int(outcome.rsplit(" ", 1)[1])


def test_tick_trains_only_on_new_data_and_once_per_slot(app, client):
    assert tick(app, 1) == "no new data"
    ingest(client, planted(units=40)[0])
    assert tick(app, 1) == "claimed elsewhere"  # slot 1 was used, even though it found nothing

    run = wait_for_run(client, started_id(tick(app, 2)))
    assert run["status"] == "succeeded" and run["trigger"] == "schedule"
    assert run["algorithm"] == "itemknn"
    assert tick(app, 2) == "claimed elsewhere"
    assert tick(app, 3) == "no new data"

    ingest(client, planted(units=12, seed=4)[0])
    assert tick(app, 2) == "claimed elsewhere"  # an older slot never runs late
    second = wait_for_run(client, started_id(tick(app, 4)))
    assert second["status"] == "succeeded"
    with database.connection_context():
        assert TrainingRun.select().count() == 2


def test_a_failed_run_does_not_count_as_trained(app, client):
    ingest(client, [{"user": "a", "items": ["x", "y"]}])  # too little: the run fails
    assert wait_for_run(client, started_id(tick(app, 1)))["status"] == "failed"
    assert started_id(tick(app, 2))  # the data is still untrained, so try again
    wait_for_run(client, client.get("/api/v1/training/runs").get_json()["runs"][0]["id"])


def test_tick_while_training_says_so(app, client, monkeypatch):
    ingest(client, planted(units=40)[0])
    gate, entered = threading.Event(), threading.Event()
    real = pipeline.train_and_publish

    def held(**kwargs):
        entered.set()
        gate.wait(30)
        return real(**kwargs)

    monkeypatch.setattr(pipeline, "train_and_publish", held)
    run_id = started_id(tick(app, 1))
    assert entered.wait(10)
    try:
        assert tick(app, 2) == "already training"
    finally:
        gate.set()
    assert wait_for_run(client, run_id)["status"] == "succeeded"


def test_claim_slot_has_one_winner_among_concurrent_workers(app):
    winners: list[int] = []
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        with database.connection_context():
            barrier.wait()
            if leases.claim_slot("schedule_slot", 7):
                winners.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_the_scheduler_thread_retrains_by_itself(settings_overrides):
    app = create_app({**settings_overrides, "scheduler": True, "train_every": "1s"})
    client = app.test_client()
    try:
        assert any(t.name == "airec-scheduler" for t in threading.enumerate())
        ingest(client, planted(units=40)[0])
        deadline = time.monotonic() + 15
        runs = []
        while not runs and time.monotonic() < deadline:
            time.sleep(0.2)
            runs = client.get("/api/v1/training/runs").get_json()["runs"]
        assert runs, "no scheduled run within 15 s"
        assert runs[-1]["trigger"] == "schedule"
        assert wait_for_run(client, runs[-1]["id"])["status"] == "succeeded"
    finally:
        stop_background(app)
    assert not scheduler_threads(join_seconds=10), "the scheduler loop did not stop"


def scheduler_threads(join_seconds: float = 0.0) -> list[threading.Thread]:
    """Scheduler threads still alive after waiting up to `join_seconds` for them to end."""
    deadline = time.monotonic() + join_seconds
    for thread in threading.enumerate():
        if thread.name == "airec-scheduler":
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t.name == "airec-scheduler" and t.is_alive()]


def test_no_scheduler_thread_when_off(settings_overrides):
    assert not scheduler_threads(join_seconds=10)
    create_app({**settings_overrides, "scheduler": True, "train_every": "off"})
    assert not scheduler_threads()
