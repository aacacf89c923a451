"""Shared fixtures: the real app (Flask test client) over a fresh SQLite file per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The PostgreSQL on this machine (trust auth); tests create and drop their own databases on it.
PG_ADMIN = {"dbname": "test", "host": "127.0.0.1", "port": 5432, "user": "postgres"}

#: Real public datasets, read (never copied) by tests marked slow; they skip when it is absent.
DATASETS = Path("/work/shared/datasets")


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
def app(settings_overrides: dict):
    from airec.app import create_app

    return create_app(settings_overrides)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def datasets() -> Path:
    """The shared real datasets (read in place, never copied); skips the test when absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"{DATASETS} is not available")
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
def auth_app(settings_overrides: dict):
    """The app with authentication on (as in production)."""
    from airec.app import create_app

    return create_app({**settings_overrides, "auth": True})


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
def fresh_popularity_cache() -> Iterator[None]:
    """The no-model popularity answer is cached per database for a few seconds: start and end empty."""
    from airec.serving import service

    service.clear_cache()
    yield
    service.clear_cache()
