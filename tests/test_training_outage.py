"""A database outage at a run's publish step (issue 17.3), on PostgreSQL: the database refuses
connections and ends the live ones just as the fitted model is being registered.

The rule: a run's outcome is what its one publishing transaction did. It did not commit: the run ends
`failed` and the folder it wrote is removed (nothing half-published can be activated). It committed
and only what follows failed (serving it here, the run row): the run ends `succeeded`. Either way the
row is written, and the lease released, as soon as the database answers again.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from airec import leases
from airec.app import create_app, stop_background
from airec.db import database
from airec.modelstore import folders
from airec.tables import ModelVersion
from airec.training import activation, publish
from airec.training.lease import TRAINING_LEASE
from tests.synthetic import TRAINING, ingest, planted, recommend, train, wait_for_run, without_id

pytestmark = pytest.mark.postgres

OUTAGE_SECONDS = 3.0


class Outage:
    """Takes a PostgreSQL database away (no new connections, live ones terminated) and back."""

    def __init__(self, admin, name: str) -> None:
        self.admin, self.name = admin, name
        self.over = threading.Event()

    def begin(self) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )
        threading.Timer(OUTAGE_SECONDS, self.end).start()

    def end(self) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")
        self.over.set()


@pytest.fixture
def outage(settings_overrides):
    """An app on a PostgreSQL database of its own (named after this branch), and its Outage."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(dbname="test", host="127.0.0.1", user="postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1: {exc}")
    admin.autocommit = True
    name = f"airec_h2_outage_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}?connect_timeout=2"
    app = create_app({**settings_overrides, "database_url": url, "model_poll_seconds": 0})
    gone = Outage(admin, name)
    gone.app = app
    yield gone
    gone.over.wait(OUTAGE_SECONDS * 3)
    stop_background(app)
    database.close()
    getattr(database.obj, "close_all", lambda: None)()
    with admin.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def start_run(client) -> int:
    response = client.post(TRAINING, json={"algorithm": "itemknn"})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["run"]["id"]


def pointer_and_lease(app) -> tuple[str | None, str | None]:
    with database.connection_context():
        return leases.get_active_version(), leases.holder(TRAINING_LEASE)


def test_outage_while_registering_fails_the_run_and_activates_nothing(outage, monkeypatch):
    app, client = outage.app, outage.app.test_client()
    ingest(client, planted(units=40)[0])
    first = train(client)["model_version"]
    served = without_id(recommend(client, ["g0-i0", "g0-i1"], k=3))
    written: dict = {}
    real = publish.register

    def register_during_an_outage(fitted: dict) -> None:
        written.update(fitted)
        outage.begin()
        return real(fitted)

    monkeypatch.setattr(publish, "register", register_during_an_outage)
    run_id = start_run(client)
    assert outage.over.wait(60), "the run never reached its publish step"
    run = wait_for_run(client, run_id)
    assert run["status"] == "failed" and run["model_version"] is None
    assert run["error"].startswith("the database became unreachable during the run"), run["error"]
    assert run["error"].endswith("nothing was published")
    assert written["version"] != first and not Path(written["folder"]).exists()
    assert written["version"] not in folders.complete_versions(app.config["AIREC"].models_dir)
    with database.connection_context():
        assert ModelVersion.get_or_none(ModelVersion.version == written["version"]) is None
    assert pointer_and_lease(app) == (first, None)
    assert without_id(recommend(client, ["g0-i0", "g0-i1"], k=3)) == served

    monkeypatch.undo()
    assert train(client)["model_version"] not in (None, first)  # the next run works as usual


def test_outage_after_the_model_was_published_finishes_the_run_once_the_database_is_back(outage, monkeypatch):
    app, client = outage.app, outage.app.test_client()
    ingest(client, planted(units=40)[0])
    first = train(client)["model_version"]

    def serve_during_an_outage(model) -> None:
        outage.begin()
        return real(model)

    real = activation.serve_here
    monkeypatch.setattr(activation, "serve_here", serve_during_an_outage)
    run_id = start_run(client)
    assert outage.over.wait(60), "the run never reached its activation step"
    run = wait_for_run(client, run_id)
    assert run["status"] == "succeeded" and run["error"] is None
    assert run["model_version"] not in (None, first) and run["activated"] is True
    assert pointer_and_lease(app) == (run["model_version"], None)
    assert run["model_version"] in folders.complete_versions(app.config["AIREC"].models_dir)
