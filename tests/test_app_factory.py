"""The application factory is re-entrant (issue: the house): each app keeps its own database, served
model and threads; the ML core loads without Flask or peewee; threads start after gunicorn's fork."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from airec.app import create_app, stop_background
from tests.gunicorn_helpers import serve, versions_seen, wait_until
from tests.synthetic import ingest, planted, train


def test_the_ml_core_imports_neither_flask_nor_peewee():
    code = "import sys, airec.recsys.bench; print(sorted({'flask', 'peewee'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_second_app_leaves_the_first_ones_database_model_and_poller_alone(settings_overrides, tmp_path):
    first = create_app({**settings_overrides, "model_poll_seconds": 0.2})
    first_client = first.test_client()
    ingest(first_client, planted(units=60)[0])
    version = train(first_client, {"algorithm": "itemknn"})["model_version"]

    other = {"database_url": f"sqlite:///{tmp_path}/other.db", "models_dir": str(tmp_path / "other-models")}
    second = create_app({**settings_overrides, **other, "model_poll_seconds": 0.2})
    second_client = second.test_client()
    try:
        # The first app still reads and writes its own file, and serves its own model.
        assert first_client.get("/api/v1/stats").get_json()["interactions"] > 0
        assert second_client.get("/api/v1/stats").get_json()["interactions"] == 0
        ingest(second_client, [{"user": "only-in-second", "items": ["x", "y"]}])
        unknown = first_client.get("/api/v1/users/only-in-second/recommendations")
        assert unknown.status_code == 404 and "'only-in-second'" in unknown.get_json()["message"]
        answer = first_client.post("/api/v1/recommendations", json={"items": ["g0-i0"], "k": 3}).get_json()
        assert answer["model_version"] == version
        assert (
            second_client.post("/api/v1/recommendations", json={"items": ["g0-i0"]}).get_json()[
                "model_version"
            ]
            is None
        )
        # Both pollers run; each follows its own pointer.
        polls = [t for t in threading.enumerate() if t.name == "airec-model-poll" and t.is_alive()]
        assert first.extensions["airec_scope"].served._thread in polls
        assert second.extensions["airec_scope"].served._thread in polls
    finally:
        stop_background(first)
        stop_background(second)


@pytest.mark.gunicorn
def test_threads_start_after_the_fork_so_preload_is_safe(tmp_path):
    """With --preload the master builds the app once; each worker must still poll the pointer itself."""
    env = {"GUNICORN_CMD_ARGS": "--preload", "AIREC_ACTIVATE": "always"}
    with serve(tmp_path, workers=2, env=env) as server:
        assert server.log_path.read_text().count("ready (database") == 1  # built once, in the master
        assert server.post("/api/v1/interactions", json={"records": planted(units=80)[0]}).status_code == 201
        run = server.post("/api/v1/training", json={"algorithm": "itemknn"}).json()["run"]
        version = server.wait_run(run["id"])["model_version"]
        # The worker that trained swaps at once; the other learns of it only from its own poller.
        wait_until(lambda: set(versions_seen(server, 30)) == {version}, timeout=15)


def test_each_app_documents_its_own_api(settings_overrides, tmp_path):
    """A second app with rate limits on adds its 429 to its own OpenAPI document, not the first's."""
    plain = create_app(settings_overrides)
    other = {"database_url": f"sqlite:///{tmp_path}/limited.db", "models_dir": str(tmp_path / "lm")}
    limited = create_app({**settings_overrides, **other, "rate_limit": "100/second"})
    assert '"429"' in limited.test_client().get("/openapi.json").get_data(as_text=True)
    assert '"429"' not in plain.test_client().get("/openapi.json").get_data(as_text=True)
