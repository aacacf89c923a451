"""The runs and models listings dashboards poll are answered fast yet always fresh: a write by another
worker, host or the CLI shows on the very next call, and a listing with nothing to fix writes nothing.
Two apps over one database stand for two workers."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from tests.synthetic import ingest, planted, train

RUNS = "/api/v1/training/runs"
MODELS = "/api/v1/models"


@pytest.fixture
def workers(settings_overrides, make_app):
    return make_app(settings_overrides).test_client(), make_app(settings_overrides).test_client()


def versions_by_name(client) -> dict:
    body = client.get(MODELS).get_json()
    return {"body": body, **{v["version"]: v for v in body["versions"]}}


def test_an_activation_through_one_worker_shows_on_the_others_very_next_listing(workers):
    a, b = workers
    ingest(a, planted(units=160, seed=1)[0])
    first = train(a, {"algorithm": "itemknn"})["model_version"]
    second = train(a, {"algorithm": "popularity"})["model_version"]
    seen = versions_by_name(b)  # b has listed (and read the pointers) before the switch
    assert seen["body"]["active"] == second and seen["body"]["pinned"] is None
    assert seen[first]["status"] == "ready" and not seen[second]["pinned"]

    assert a.post(f"{MODELS}/{first}/activate").status_code == 200
    seen = versions_by_name(b)
    assert seen["body"]["active"] == first and seen["body"]["pinned"] == first
    assert seen[first]["status"] == "active" and seen[first]["pinned"] is True
    assert seen[second]["status"] == "ready" and seen[second]["pinned"] is False
    one = b.get(f"{MODELS}/{first}").get_json()
    assert one["status"] == "active" and one["pinned"] is True

    assert a.post(f"{MODELS}/unpin").status_code == 200
    seen = versions_by_name(b)
    assert seen["body"]["active"] == first and seen["body"]["pinned"] is None
    assert seen[first]["pinned"] is False


def test_an_activation_from_the_command_line_shows_on_the_next_listing(client):
    from airec.db import database
    from airec.versions import service

    ingest(client, planted(units=160, seed=2)[0])
    first = train(client, {"algorithm": "itemknn"})["model_version"]
    second = train(client, {"algorithm": "popularity"})["model_version"]
    assert client.get(MODELS).get_json()["active"] == second
    with database.connection_context():  # outside any request, as `airec models activate` runs
        service.activate(first)
    assert client.get(MODELS).get_json()["active"] == first


def an_hour_ago() -> dt.datetime:
    from airec.tables import utcnow

    return utcnow() - dt.timedelta(hours=1)


def add_run(**fields):
    from airec.db import database
    from airec.tables import TrainingRun

    with database.connection_context():
        return TrainingRun.create(algorithm="itemknn", **fields).id


def test_a_run_left_running_by_a_dead_owner_shows_failed_and_a_live_one_stays(client, app):
    from airec import leases

    long_ago = an_hour_ago()
    other_host = "otherhost:4242:0123456789ab:cafe"  # never known dead: only its silence counts
    silent = add_run(status="running", owner=other_host, heartbeat_at=long_ago, created_at=long_ago)
    gone = add_run(status="running", owner=leases.new_owner())  # this process, holding no lease: dead
    live = add_run(status="running", owner="otherhost:4243:0123456789ab:beef")  # beats as we speak
    runs = {run["id"]: run for run in client.get(RUNS).get_json()["runs"]}
    assert runs[silent]["status"] == "failed" and "interrupted" in runs[silent]["error"]
    assert runs[gone]["status"] == "failed" and "interrupted" in runs[gone]["error"]
    assert runs[live]["status"] == "running" and runs[live]["error"] is None
    assert client.get(f"{RUNS}/{live}").get_json()["run"]["status"] == "running"


@pytest.fixture
def statements(app, monkeypatch) -> list[str]:
    """Every statement and transaction the app's database runs, in order ('BEGIN ...' included)."""
    db = app.extensions["airec_scope"].database
    seen: list[str] = []
    execute_sql, begin = db.execute_sql, db.begin

    def recording_execute(sql, params=None):
        seen.append(sql)
        return execute_sql(sql, params)

    def recording_begin(*args, **kwargs):
        seen.append(" ".join(["BEGIN", *map(str, args)]))
        return begin(*args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", recording_execute)
    monkeypatch.setattr(db, "begin", recording_begin)
    return seen


def test_listing_runs_with_nothing_in_flight_writes_nothing(client, statements):
    add_run(status="succeeded", owner="otherhost:4242:0123456789ab:cafe")
    add_run(status="failed")
    statements.clear()
    for _ in range(3):
        assert len(client.get(RUNS).get_json()["runs"]) == 2
    assert statements and all(sql.lstrip().upper().startswith("SELECT") for sql in statements), statements

    long_ago = an_hour_ago()
    add_run(
        status="running", owner="otherhost:1:0123456789ab:f00d", heartbeat_at=long_ago, created_at=long_ago
    )
    statements.clear()
    assert client.get(RUNS).get_json()["runs"][0]["status"] == "failed"
    assert [sql for sql in statements if sql.upper().startswith("UPDATE")], statements  # the hook sees writes


def test_a_model_folder_copied_in_by_hand_appears_on_the_next_listing(client, settings_overrides):
    from airec.modelstore import folders

    ingest(client, planted(units=160, seed=3)[0])
    trained = train(client, {"algorithm": "popularity"})["model_version"]
    assert [v["version"] for v in client.get(MODELS).get_json()["versions"]] == [trained]
    models_dir = Path(settings_overrides["models_dir"])
    copied = folders.new_version("popularity")
    shutil.copytree(
        models_dir / trained, models_dir / copied, ignore=shutil.ignore_patterns(folders.MANIFEST)
    )
    listed = [v["version"] for v in client.get(MODELS).get_json()["versions"]]
    assert listed == [trained]  # still being copied: no manifest yet
    manifest = json.loads((models_dir / trained / folders.MANIFEST).read_text())
    (models_dir / copied / folders.MANIFEST).write_text(json.dumps({**manifest, "version": copied}))
    listed = {v["version"]: v for v in client.get(MODELS).get_json()["versions"]}
    assert set(listed) == {trained, copied}
    assert listed[copied]["status"] == "ready" and listed[copied]["on_disk"] is True
    assert client.get(f"{MODELS}/{copied}").get_json()["version"] == copied


@pytest.mark.postgres
def test_sqlite_and_postgresql_apps_in_one_process_each_list_with_their_own_sql(
    settings_overrides, postgres_url
):
    """The compiled text of a hot read is kept per database: '?' placeholders for SQLite, '%s' for
    PostgreSQL."""
    from airec.app import create_app, stop_background

    lite_app = create_app(settings_overrides)
    pg_app = create_app({**settings_overrides, "database_url": postgres_url})
    lite, pg = lite_app.test_client(), pg_app.test_client()
    try:
        for _ in range(2):
            for client in (lite, pg, lite):
                assert client.get(f"{RUNS}?limit=5").get_json() == {"runs": []}
                body = client.get(MODELS).get_json()
                assert body["versions"] == [] and body["active"] is None and body["pinned"] is None
        add_run(status="succeeded")  # the fallback database: PostgreSQL, bound last
        assert len(pg.get(f"{RUNS}?limit=5").get_json()["runs"]) == 1
        assert lite.get(f"{RUNS}?limit=5").get_json()["runs"] == []
    finally:
        stop_background(pg_app)
        stop_background(lite_app)


def test_listed_runs_and_versions_read_as_their_own_pages_do(client):
    """The listings convert rows themselves (airec.db.fetch): each entry matches the one-item answer,
    which peewee reads the ordinary way (the run's page adds its history)."""
    ingest(client, planted(units=160, seed=4)[0])
    run = train(client, {"algorithm": "itemknn", "params": {"n_neighbors": 20}})
    listed = client.get(RUNS).get_json()["runs"]
    page = client.get(f"{RUNS}/{run['id']}").get_json()["run"]
    assert page.pop("history") is not None and listed == [page]
    assert listed[0]["params"]["params"] == {"n_neighbors": 20} and listed[0]["finished_at"]
    versions = client.get(MODELS).get_json()["versions"]
    assert versions == [client.get(f"{MODELS}/{run['model_version']}").get_json()]
