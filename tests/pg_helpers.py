"""A throw-away database on the local PostgreSQL (127.0.0.1:5432, trust auth), for tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from tests import marks


@contextlib.contextmanager
def fresh_database(prefix: str = "airec_t") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it (skips the test with no PostgreSQL)."""
    marks.require("postgres", "PostgreSQL")
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(dbname="test", host="127.0.0.1", user="postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1: {exc}")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        from airec.db import database
        from tests.built_apps import stop_all

        stop_all()  # no app thread may outlive its database (tests/built_apps.py)
        if database.obj is not None:  # hand back, then end, the pooled connections to it
            database.close()
            getattr(database.obj, "close_all", lambda: None)()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
