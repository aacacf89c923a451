"""AIREC_TRAINER=worker: web processes queue runs, `airec worker` processes claim and execute them,
one at a time across all of them; a dead worker's run fails once its lease lapses."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg2
import pytest

from airec import leases
from airec.app import create_app, stop_background
from airec.config import Settings
from airec.db import database, init_db, migrate
from airec.tables import State, TrainingRun
from airec.training import service
from airec.training.worker import Worker, claim_next
from tests.pg_helpers import fresh_database
from tests.synthetic import TRAINING, ingest, planted


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/worker.db"
    else:
        with fresh_database("airec_worker") as url:
            yield url


@pytest.fixture
def worker_settings(tmp_path, database_url) -> Settings:
    return Settings.from_env(
        {
            "database_url": database_url,
            "models_dir": str(tmp_path / "models"),
            "trainer": "worker",
            "scheduler": False,
            "auth": False,
            "log_json": False,
            "activate": "always",
            "model_poll_seconds": 0,
            "train_lease_seconds": 5,
        }
    )


@pytest.fixture
def db(worker_settings):
    database = init_db(worker_settings.database_url)
    database.connect()
    migrate(database)
    yield database
    database.close()


def backdate(seconds: int) -> None:
    """Age every lease and run heartbeat on the database clock, as a dead worker's would age."""
    if database.obj.__class__.__name__.startswith("Sqlite"):
        shift = f"datetime(updated_at, '-{seconds} seconds')"
        database.execute_sql(f"UPDATE state SET updated_at = {shift}")
        database.execute_sql(
            f"UPDATE training_runs SET heartbeat_at = datetime(heartbeat_at, '-{seconds} seconds'), "
            f"created_at = datetime(created_at, '-{seconds} seconds')"
        )
    else:
        database.execute_sql(f"UPDATE state SET updated_at = updated_at - interval '{seconds} seconds'")
        database.execute_sql(
            f"UPDATE training_runs SET heartbeat_at = heartbeat_at - interval '{seconds} seconds', "
            f"created_at = created_at - interval '{seconds} seconds'"
        )


def test_web_queues_a_run_with_202_and_a_worker_executes_it(worker_settings, database_url):
    app = create_app(worker_settings)
    client = app.test_client()
    records, _ = planted(units=200)
    ingest(client, records)
    response = client.post(TRAINING, json={"algorithm": "itemknn"})
    assert response.status_code == 202, response.get_json()
    queued = response.get_json()["run"]
    assert queued["status"] == "queued" and queued["started_at"] is None
    assert not [t for t in threading.enumerate() if t.name.startswith("airec-train-")]  # no thread here
    second = client.post(TRAINING, json={"algorithm": "itemknn"})
    assert second.status_code == 409 and second.get_json()["run"]["id"] == queued["id"]

    assert Worker(worker_settings).step() == queued["id"]

    run = client.get(f"{TRAINING}/runs/{queued['id']}").get_json()["run"]
    assert run["status"] == "succeeded", run
    with database.connection_context():
        assert leases.get_active_version() == run["model_version"]
        assert leases.holder(service.TRAINING_LEASE) is None  # released after the run
        assert TrainingRun.get_by_id(queued["id"]).owner is not None
    assert Worker(worker_settings).step() is None  # nothing queued any more


def test_bad_parameters_are_refused_before_anything_is_queued(worker_settings):
    client = create_app(worker_settings).test_client()
    response = client.post(TRAINING, json={"algorithm": "itemknn", "params": {"bogus": 1}})
    assert response.status_code == 422 and "bogus" in response.get_json()["message"]
    with database.connection_context():
        assert TrainingRun.select().count() == 0


def test_one_run_at_a_time_across_workers(worker_settings, db):
    first = service.queue_run(algorithm="itemknn", params={}, warm_start=False, trigger="api")
    a, b = leases.new_owner(), leases.new_owner()
    assert claim_next(worker_settings, a) == first.id
    claimed = TrainingRun.get_by_id(first.id)
    assert (claimed.status, claimed.owner) == ("running", a)
    # A run queued meanwhile (say, by an older version of the web side) waits: A holds the lease.
    second = TrainingRun.create(algorithm="itemknn", params={}, status="queued")
    assert claim_next(worker_settings, b) is None
    assert TrainingRun.get_by_id(second.id).status == "queued"
    assert leases.holder(service.TRAINING_LEASE) == a

    TrainingRun.update(status="succeeded").where(TrainingRun.id == first.id).execute()
    leases.release(service.TRAINING_LEASE, a)
    assert claim_next(worker_settings, b) == second.id
    assert TrainingRun.get_by_id(second.id).owner == b


def test_a_second_queue_request_is_a_conflict_while_one_is_queued(worker_settings, db):
    first = service.queue_run(algorithm="itemknn", params={}, warm_start=False, trigger="api")
    with pytest.raises(service.TrainingConflict) as conflict:
        service.queue_run(algorithm="ease", params={}, warm_start=False, trigger="api")
    assert conflict.value.run.id == first.id
    assert TrainingRun.select().count() == 1


def test_a_dead_workers_run_fails_once_its_lease_lapses_and_another_worker_takes_the_next(
    worker_settings, db
):
    run = service.queue_run(algorithm="itemknn", params={}, warm_start=False, trigger="api")
    dead = "otherhost:4242:0123456789ab:cafe"  # another process on another host: never known dead
    assert claim_next(worker_settings, dead) == run.id
    service.reap_stale_runs(worker_settings)
    assert TrainingRun.get_by_id(run.id).status == "running"  # within the lease, it is alive
    assert claim_next(worker_settings, leases.new_owner()) is None

    backdate(worker_settings.train_lease_seconds + 1)  # the dead worker renewed nothing since
    service.reap_stale_runs(worker_settings)
    failed = TrainingRun.get_by_id(run.id)
    assert failed.status == "failed" and "interrupted" in failed.error
    nxt = service.queue_run(algorithm="itemknn", params={}, warm_start=False, trigger="api")
    other = leases.new_owner()
    assert claim_next(worker_settings, other) == nxt.id
    assert leases.holder(service.TRAINING_LEASE) == other


def test_a_queued_run_waits_for_a_worker_however_long(worker_settings, db):
    run = service.queue_run(algorithm="itemknn", params={}, warm_start=False, trigger="api")
    backdate(10 * int(worker_settings.train_lease_seconds))
    service.reap_stale_runs(worker_settings)
    assert TrainingRun.get_by_id(run.id).status == "queued"
    # With in-process training (no worker will come), such a leftover is failed like any stale run.
    thread_settings = Settings.from_env({**vars(worker_settings), "trainer": "thread"})
    service.reap_stale_runs(thread_settings)
    assert TrainingRun.get_by_id(run.id).status == "failed"


@pytest.mark.postgres
def test_claim_skips_a_run_row_locked_by_another_transaction(tmp_path):
    with fresh_database("airec_skip") as url:
        settings = Settings.from_env(
            {"database_url": url, "models_dir": str(tmp_path / "m"), "trainer": "worker", "log_json": False}
        )
        db = init_db(url)
        db.connect()
        migrate(db)
        locked = TrainingRun.create(algorithm="itemknn", params={}, status="queued")
        free = TrainingRun.create(algorithm="itemknn", params={}, status="queued")
        other = psycopg2.connect(url)
        try:
            with other.cursor() as cursor:  # another worker's claim, mid-transaction
                cursor.execute("SELECT id FROM training_runs WHERE id = %s FOR UPDATE", (locked.id,))
            db.execute_sql("SET statement_timeout = 5000")  # waiting on the lock would fail, not hang
            assert claim_next(settings, leases.new_owner()) == free.id
            assert TrainingRun.get_by_id(locked.id).status == "queued"
        finally:
            other.rollback()
            other.close()
            db.close()


def test_web_processes_run_no_scheduler_in_worker_mode(worker_settings):
    settings = Settings.from_env({**vars(worker_settings), "scheduler": True, "train_every": "1h"})
    app = create_app(settings)
    threads = app.extensions["airec_scope"].threads
    assert "airec-scheduler" not in [t.name for t in threads]  # the worker ticks the schedule
    stop_background(app)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # queueing is tested on both above
def test_worker_ticks_the_schedule_and_executes_the_run_it_queued(worker_settings, db):
    from airec.ingestion.service import ingest_records

    records, _ = planted(units=120)
    ingest_records(records)
    db.close()
    settings = Settings.from_env({**vars(worker_settings), "scheduler": True, "train_every": "1h"})
    worker = Worker(settings)
    assert worker.step() is None  # the first pass only notes the current slot
    worker._slot -= 1  # an hour later
    with database.connection_context():
        State.delete().where(State.key == "schedule_slot").execute()
    run_id = worker.step()
    with database.connection_context():
        run = TrainingRun.get_by_id(run_id)
        assert (run.trigger, run.status) == ("schedule", "succeeded"), run.error


def test_a_running_worker_keeps_its_alive_file_fresh_for_health_checks(worker_settings, db):
    from airec.training.worker import ALIVE_FILE
    from tests.gunicorn_helpers import wait_until

    db.close()
    worker = Worker(worker_settings)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    alive = f"{worker_settings.models_dir}/{ALIVE_FILE}"
    try:
        wait_until(lambda: Path(alive).exists(), timeout=10)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.slow  # a real worker process and a real fit: ~20 s; kill -9 is in the default suite
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_stops_the_run_in_flight_fails_it_and_frees_the_lease(worker_settings, tmp_path):
    from airec.benchmarks.server import TrainingWorker
    from tests.gunicorn_helpers import wait_until

    app = create_app(worker_settings)
    client = app.test_client()
    ingest(client, planted(units=200)[0])
    body = {"algorithm": "autoencoder", "params": {"epochs": 10000, "patience": 10000, "max_updates": 10**6}}
    run_id = client.post(TRAINING, json=body).get_json()["run"]["id"]

    def run() -> dict:
        return client.get(f"{TRAINING}/runs/{run_id}").get_json()["run"]

    url = worker_settings.database_url
    worker = TrainingWorker(tmp_path / "w", database_url=url, env={"AIREC_LOG_JSON": "0"})
    with worker:
        wait_until(lambda: run()["progress"]["epoch"] >= 1, timeout=60)
        worker.stop()
        assert worker.process.returncode == 0
    stopped = run()
    assert stopped["status"] == "failed" and "shut down" in stopped["error"], stopped
    assert stopped["model_version"] is None
    with database.connection_context():
        assert leases.holder(service.TRAINING_LEASE) is None
        assert leases.get_active_version() is None
