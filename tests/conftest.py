"""Shared fixtures: the real app (Flask test client) over a fresh SQLite file per test.

The repository is importable through setup.cfg's `pythonpath = .` (no sys.path edits here). Markers
(setup.cfg, `--strict-markers`) say what a test needs: `postgres`, `redis`, `gunicorn`, `browser`,
`datasets`, and `slow` (deselected by default).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import built_apps, marks

ROOT = Path(__file__).resolve().parents[1]

#: The PostgreSQL on this machine (trust auth); tests create and drop their own databases on it.
PG_ADMIN = {"dbname": "test", "host": "127.0.0.1", "port": 5432, "user": "postgres"}

#: Real public datasets, read in place (never copied): `../shared/datasets` beside the repository, or
#: AIREC_DATASETS. Tests that read them skip when the folder is absent.
DATASETS = Path(os.environ.get("AIREC_DATASETS") or ROOT.parent / "shared" / "datasets")

#: Threads a test's app may leave behind (training runs, mask rebuilds): teardown waits this long.
THREAD_GRACE_SECONDS = 60.0


def pytest_runtest_setup(item: pytest.Item) -> None:
    marks.current[0] = item  # helpers check that a test using PostgreSQL or gunicorn says so


def pytest_runtest_teardown(item: pytest.Item) -> None:
    marks.current[0] = None


@pytest.fixture(autouse=True)
def _stop_the_apps_a_test_built(monkeypatch) -> Iterator[None]:
    """Every app a test builds stops its threads when the test ends (tests/built_apps.py says why);
    a PostgreSQL fixture stops them earlier, before it drops its database."""
    import airec.app as app_module

    real_build = app_module._build

    def recording(app, *args, **kwargs):
        built_apps.built.append(app)
        return real_build(app, *args, **kwargs)

    monkeypatch.setattr(app_module, "_build", recording)
    yield
    built_apps.stop_all()


def shut_down(app) -> None:
    """Stop what `create_app` started and close what it opened, while the test's folder still exists:
    its poller and scheduler, training runs and mask rebuilds still in flight, pending key-use stamps,
    and the database connections (pooled ones included)."""
    from airec.app import stop_background
    from airec.auth.cache import last_used

    app_scope = app.extensions["airec_scope"]
    if "airec_threads_pid" in app.extensions:
        stop_background(app)
    for thread in list(app_scope.threads) + _app_threads():
        thread.join(THREAD_GRACE_SECONDS)
    last_used.flush()
    db = app_scope.database
    if not db.is_closed():
        db.close()
    getattr(db, "close_all", lambda: None)()  # a pool's idle connections (and their file handles)


def _app_threads() -> list[threading.Thread]:
    """Threads an app started for one piece of work (tests run one at a time: they are this test's)."""
    prefixes = ("airec-train-", "airec-catalogue-masks")
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(prefixes) and t is not threading.current_thread()
    ]


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict:
    """Settings for a quiet, self-contained app: own database and model dir, no scheduler, no auth, and
    every trained model activated (tests of AIREC_ACTIVATE=if-better, the default, set it themselves)."""
    return {
        "database_url": f"sqlite:///{tmp_path}/t.db",
        "models_dir": str(tmp_path / "models"),
        "train_every": "off",
        "scheduler": False,
        "auth": False,
        "log_json": False,
        "activate": "always",
    }


@pytest.fixture
def app(settings_overrides: dict) -> Iterator:
    from airec.app import create_app

    app = create_app(settings_overrides)
    yield app
    shut_down(app)


@pytest.fixture
def make_app() -> Iterator:
    """`make_app(config)`: more apps for one test (workers, hosts, restarts), each shut down afterwards."""
    from airec.app import create_app

    made = []

    def make(config: dict):
        made.append(create_app(config))
        return made[-1]

    yield make
    for app in reversed(made):
        shut_down(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def datasets() -> Path:
    """The shared real datasets (read in place, never copied); skips the test when absent."""
    marks.require("datasets", "the shared datasets")
    if not DATASETS.is_dir():
        pytest.skip(f"{DATASETS} is not available (set AIREC_DATASETS to their folder)")
    return DATASETS


@pytest.fixture
def db(tmp_path: Path) -> Iterator:
    """Only the database (migrated, connected), for service-level tests that need no app."""
    from airec.db import init_db, migrate

    database = init_db(f"sqlite:///{tmp_path}/service.db")
    database.connect()
    migrate(database)
    yield database
    database.close()


@pytest.fixture
def auth_app(settings_overrides: dict) -> Iterator:
    """The app with authentication on (as in production)."""
    from airec.app import create_app

    app = create_app({**settings_overrides, "auth": True})
    yield app
    shut_down(app)


@pytest.fixture
def auth_client(auth_app):
    return auth_app.test_client()


@pytest.fixture
def keys(auth_app) -> dict[str, str]:
    """One fresh API key per role: {"ingest": "airec_...", "read": ..., "admin": ...}."""
    from airec.auth.service import create_key
    from airec.db import database

    out = {}
    with database.connection_context():
        for role in ("ingest", "read", "admin"):
            _, out[role] = create_key(name=f"test-{role}", role=role)
    return out


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away database on the local PostgreSQL, dropped afterwards; skips when there is none."""
    from tests.pg_helpers import fresh_database

    with fresh_database() as url:
        yield url


@pytest.fixture
def planted_itemknn(client) -> dict:
    """The planted groups ingested and an item-kNN model trained on them; {item: group}."""
    from tests.synthetic import ingest, planted, train

    records, group_of = planted(units=160)
    ingest(client, records)
    train(client, {"algorithm": "itemknn"})
    return group_of


@pytest.fixture
def fresh_popularity_cache() -> Iterator[None]:
    """The no-model popularity answer is cached per database for a few seconds: start and end empty."""
    from airec.serving import service

    service.clear_cache()
    yield
    service.clear_cache()
