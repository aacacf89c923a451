"""The training lease: the database's clock, no guessing at deaths, fencing of a run that lost it, and
a reaper that never fails a run that has just started."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from airec import leases
from airec.db import database
from airec.serving.served import served_model
from airec.tables import State, TrainingRun
from airec.training import pipeline, service
from tests.synthetic import TRAINING, ingest, planted, train, wait_for_run

KEY = service.TRAINING_LEASE


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "train_lease_seconds": 2.0}


@pytest.fixture
def settings(app):
    return app.config["AIREC"]


def steal(owner: str = "other-host:1:abc:def") -> None:
    """Another trainer holds the lease now (ours lapsed and was taken over)."""
    with database.connection_context():
        leases.set_value(KEY, owner)


def test_lease_expiry_is_judged_on_the_database_clock(app, monkeypatch):
    """A host whose clock runs an hour fast must not think a fresh lease has lapsed."""
    with database.connection_context():
        assert leases.try_acquire(KEY, "first", 60)
        real = dt.datetime

        class FastClock(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return real.now(tz) + dt.timedelta(hours=1)

        monkeypatch.setattr(dt, "datetime", FastClock)
        assert not leases.try_acquire(KEY, "second", 60)
        assert leases.holder(KEY) == "first"


def test_a_missing_pid_on_a_host_of_the_same_name_is_no_proof_of_death(app):
    """Containers on host networking share a hostname, not a PID space: wait for the TTL."""
    elsewhere = f"{socket.gethostname()}:999999:0123456789ab:00"
    with database.connection_context():
        assert leases.try_acquire(KEY, elsewhere, 1.0)
        assert not leases.try_acquire(KEY, "mine", 1.0)
        deadline = time.monotonic() + 10
        while not leases.try_acquire(KEY, "mine", 1.0):  # the TTL, on the database clock
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_an_owner_of_this_very_process_that_no_longer_runs_is_certainly_dead(app):
    with database.connection_context():
        gone = leases.new_owner()
        assert leases.try_acquire(KEY, gone, 600)
        leases._live_owners.discard(gone)  # as when its thread died without releasing
        assert leases.owner_is_dead(gone) and not leases.owner_is_dead(f"host:{os.getpid()}:other:1")
        assert leases.try_acquire(KEY, leases.new_owner(), 600)


def test_a_lease_just_taken_by_another_thread_of_this_process_is_not_taken_over(app, monkeypatch):
    """Two request threads of one worker ask to train at once: the second reads the row the moment the
    first's UPDATE committed, before the first returned. Its owner (this process's) must count as
    live, not as certainly dead, or both would train (seen as two overlapping runs on PostgreSQL)."""
    first, second = leases.new_owner(), leases.new_owner()
    real = leases.atomic_write
    answers, raced = [], []

    def commit_then_race(fn):
        taken = real(fn)
        if not raced:  # right after the first owner's commit, the other thread asks (once)
            raced.append(True)
            answers.append(leases.try_acquire(KEY, second, 600))
        return taken

    monkeypatch.setattr(leases, "atomic_write", commit_then_race)
    with database.connection_context():
        assert leases.try_acquire(KEY, first, 600)
        assert answers == [False] and leases.holder(KEY) == first
        assert not leases.owner_is_dead(first) and second not in leases._live_owners


def test_the_reaper_fails_stale_runs_and_runs_of_a_certainly_dead_owner_only(app, settings):
    with database.connection_context():
        owner = leases.new_owner()
        assert leases.try_acquire(KEY, owner, 60)
        live = TrainingRun.create(algorithm="ease", owner=owner, heartbeat_at=leases_now())
        other = "other-host:7:abc:1"
        elsewhere = TrainingRun.create(algorithm="ease", owner=other, heartbeat_at=leases_now())
        stale = TrainingRun.create(
            algorithm="ease", owner=owner, heartbeat_at=dt.datetime(2000, 1, 1), status="running"
        )
        gone = leases.new_owner()  # this process's, and no thread here holds it any more
        dead = TrainingRun.create(algorithm="ease", owner=gone, heartbeat_at=leases_now())
        assert service.reap_stale_runs(settings) == 2
        status = {r.id: r.status for r in TrainingRun.select()}
        assert status == {live.id: "queued", elsewhere.id: "queued", stale.id: "failed", dead.id: "failed"}


def leases_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_the_reaper_never_fails_a_run_created_after_it_looked(app, settings, monkeypatch):
    """Another process takes the lease and creates its run while the reaper works: one statement sees
    both the new holder and the new run, so the run is not taken for an orphan."""
    with database.connection_context():
        real_holder = leases.holder

        def holder_then_new_run(key):
            seen = real_holder(key)
            newcomer = "newcomer:1:abc:1"
            leases.set_value(KEY, newcomer)
            TrainingRun.create(algorithm="ease", owner=newcomer, heartbeat_at=leases_now())
            return seen

        monkeypatch.setattr(leases, "holder", holder_then_new_run)
        leases.set_value(KEY, None)
        leases.set_value(KEY, "newcomer:1:abc:1")
        TrainingRun.create(algorithm="ease", owner="newcomer:1:abc:1", heartbeat_at=leases_now())
        assert service.reap_stale_runs(settings) == 0
        assert [r.status for r in TrainingRun.select()] == ["queued"]


@pytest.fixture
def gate(monkeypatch):
    """Hold every run just before it reads its data, until the test opens the gate."""
    opened, entered = threading.Event(), threading.Event()
    real = pipeline.train_and_publish

    def held(**kwargs):
        entered.set()
        assert opened.wait(30)
        return real(**kwargs)

    monkeypatch.setattr(pipeline, "train_and_publish", held)
    opened.entered = entered
    yield opened
    opened.set()


def test_a_run_whose_lease_was_taken_over_publishes_nothing(client, app, gate):
    ingest(client, planted(units=80)[0])
    gate.set()
    before = train(client, {"algorithm": "itemknn"})["model_version"]
    gate.clear()
    run_id = client.post(TRAINING, json={"algorithm": "ease"}).get_json()["run"]["id"]
    assert gate.entered.wait(10)
    steal()  # e.g. this host stalled past the TTL and another trainer took over
    gate.set()
    run = wait_for_run(client, run_id)
    # the heartbeat's failed renewal or the fenced publish, whichever notices first, stops it
    assert run["status"] == "failed" and "no longer holds the training lease" in run["error"]
    assert "nothing was published" in run["error"]
    listing = client.get("/api/v1/models").get_json()
    assert listing["active"] == before == served_model.active.version
    assert [v["version"] for v in listing["versions"]] == [before]
    folders = [p.name for p in Path(app.config["AIREC"].models_dir).iterdir() if not p.name.startswith(".")]
    assert folders == [before]  # the lost run's folder was removed


def test_a_run_that_cannot_renew_its_lease_is_stopped_mid_fit(client):
    ingest(client, planted(units=80)[0])
    long = {"epochs": 10000, "patience": 10000, "max_updates": 10**6, "latent": 8}
    body = {"algorithm": "autoencoder", "params": long}
    run_id = client.post(TRAINING, json=body).get_json()["run"]["id"]
    deadline = time.monotonic() + 30
    while client.get(f"{TRAINING}/runs/{run_id}").get_json()["run"]["progress"]["epoch"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    steal()
    run = wait_for_run(client, run_id, timeout=20)  # the heartbeat (every 0.25 s) notices, the fit is killed
    assert run["status"] == "failed" and "process was stopped" in run["error"]
    assert "no longer holds the training lease; nothing was published" in run["error"]
    assert client.get("/api/v1/models").get_json()["versions"] == []


def test_state_rows_are_written_on_the_database_clock(app):
    with database.connection_context():
        leases.set_value("probe", "x")
        written = State.get_by_id("probe").updated_at
    assert abs((written - leases_now()).total_seconds()) < 5


def test_several_state_rows_are_read_in_one_call(app):
    with database.connection_context():
        leases.set_value("first", "1")
        leases.set_value("second", None)
        values = leases.get_values("second", "first", "absent")
        assert values == {"second": None, "first": "1", "absent": None}
