"""Faults: the database missing at start-up, going away and coming back, a full disk, a failure in the
middle of a batch. Answers are 503 JSON with Retry-After, the process keeps running, and nothing is
half-stored."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from pathlib import Path

import peewee
import pytest

EMPTY = {"users": 0, "items": 0, "records": 0, "interactions": 0}
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _assert_unavailable(answer) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.get_data()[:200])
    assert answer.is_json and answer.get_json()["code"] == 503
    assert int(answer.headers["Retry-After"]) > 0


def _app(settings_overrides: dict, **extra):
    from airec.app import create_app

    return create_app({**settings_overrides, "model_poll_seconds": 0, **extra})


def _retry_at_once(app) -> None:
    gate = app.extensions["airec_schema"]
    gate.retry_seconds = gate._next_try = 0.0


def test_sqlite_directory_missing_at_start_then_created(settings_overrides, tmp_path: Path):
    """Start with an unreachable database: alive, not ready, 503s; then it appears and all works."""
    where = tmp_path / "later"
    app = _app(settings_overrides, database_url=f"sqlite:///{where}/db.sqlite")
    _retry_at_once(app)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200  # the docs need no database
    assert client.get("/docs").status_code == 200
    _assert_unavailable(client.get("/readyz"))
    _assert_unavailable(client.get("/api/v1/stats"))
    _assert_unavailable(client.post("/api/v1/interactions", json={"items": ["a"]}))

    where.mkdir()
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/v1/interactions", json={"user": "u", "items": ["a", "b"]}).status_code == 201
    assert client.get("/api/v1/stats").get_json()["interactions"] == 2


class Gate:
    """A TCP forwarder to PostgreSQL that can be closed (connection refused, live connections cut)
    and opened again on the same port: the database "goes away" without touching the server."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def pg_database():
    """A throw-away PostgreSQL database; skips when the server is not there."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(PG_ADMIN_URL, connect_timeout=2)
    except psycopg2.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    admin.autocommit = True
    name = f"airec_faults_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield name
    from airec.db import database

    if database.obj is not None and not database.is_closed():
        database.close()
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.mark.postgres
def test_postgres_down_at_start_then_up_then_down_then_up(settings_overrides, pg_database):
    gate = Gate(("127.0.0.1", 5432))
    url = f"postgresql://postgres@127.0.0.1:{gate.port}/{pg_database}?connect_timeout=2"
    app = _app(settings_overrides, database_url=url)  # the port is closed: nothing listens yet
    _retry_at_once(app)
    client = app.test_client()
    try:
        assert client.get("/healthz").status_code == 200
        _assert_unavailable(client.get("/readyz"))
        _assert_unavailable(client.post("/api/v1/interactions", json={"items": ["a"]}))

        gate.open()  # the database "returns": migrations run on the next request
        assert client.get("/readyz").status_code == 200
        assert client.post("/api/v1/interactions", json={"user": "u", "items": ["a", "b"]}).status_code == 201

        gate.close()  # it goes away again, with connections cut
        _assert_unavailable(client.get("/api/v1/stats"))
        _assert_unavailable(client.post("/api/v1/interactions", json={"items": ["lost?"]}))
        assert client.get("/healthz").status_code == 200

        gate.open()
        counts = client.get("/api/v1/stats").get_json()
        assert counts == {"users": 1, "items": 2, "records": 1, "interactions": 2}
    finally:
        gate.close()


def test_disk_full_is_503_and_stores_nothing(settings_overrides):
    from airec.db import database

    app = _app(settings_overrides)
    client = app.test_client()
    assert client.post("/api/v1/interactions", json={"items": ["seed"]}).status_code == 201
    before = client.get("/api/v1/stats").get_json()
    database.obj._pragmas = [*database.obj._pragmas, ("max_page_count", 12)]  # a tiny "disk"
    database.obj.close_idle()  # pragmas apply to new connections: none may come from the pool
    try:
        pad = "x" * 100
        records = [{"user": f"user-{i:05d}-{pad}", "items": [f"item-{i}-{pad}"]} for i in range(2000)]
        answer = client.post("/api/v1/interactions", json={"records": records})
        _assert_unavailable(answer)
        assert client.get("/api/v1/stats").get_json() == before
    finally:
        database.obj._pragmas = [p for p in database.obj._pragmas if p[0] != "max_page_count"]
        database.obj.close_idle()
    assert client.post("/api/v1/interactions", json={"records": records[:10]}).status_code == 201


@pytest.mark.parametrize(
    "error, status", [(peewee.OperationalError("disk I/O error"), 503), (RuntimeError("boom"), 500)]
)
def test_failure_midway_through_a_batch_leaves_nothing(client, monkeypatch, error, status):
    """The interactions insert fails after users, items and records were inserted: all rolled back."""
    from airec.ingestion import service

    real = service._insert_values
    calls = []

    def failing(model, columns, rows, **kwargs):
        calls.append(model.__name__)
        if model.__name__ == "Interaction":
            real(model, columns, rows[: len(rows) // 2], **kwargs)  # half the pairs reach the database
            raise error
        return real(model, columns, rows, **kwargs)

    monkeypatch.setattr(service, "_insert_values", failing)
    records = [{"user": f"u{i}", "items": ["a", f"b{i}"]} for i in range(300)]
    answer = client.post("/api/v1/interactions", json={"records": records})
    assert answer.status_code == status and answer.is_json
    assert "Interaction" in calls and "User" in calls and "Item" in calls
    monkeypatch.setattr(service, "_insert_values", real)
    assert client.get("/api/v1/stats").get_json() == EMPTY
    assert client.post("/api/v1/interactions", json={"records": records}).status_code == 201
    assert client.get("/api/v1/stats").get_json()["interactions"] == 600


def test_locked_database_is_retried_not_a_500(settings_overrides, tmp_path):
    """Another process holds the write lock longer than busy_timeout: the write waits and retries."""
    import sqlite3

    from airec.db import SQLITE_PRAGMAS

    app = _app(settings_overrides)
    client = app.test_client()
    holder = sqlite3.connect(tmp_path / "t.db", timeout=1, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.6, lambda: holder.execute("COMMIT"))
    old = SQLITE_PRAGMAS["busy_timeout"]
    from airec.db import database

    database.obj._pragmas = [(k, 200 if k == "busy_timeout" else v) for k, v in database.obj._pragmas]
    try:
        release.start()
        answer = client.post("/api/v1/interactions", json={"items": ["a", "b"]})
    finally:
        release.join()
        database.obj._pragmas = [(k, old if k == "busy_timeout" else v) for k, v in database.obj._pragmas]
        holder.close()
    assert answer.status_code == 201, answer.get_json()
    assert client.get("/api/v1/stats").get_json()["interactions"] == 2


@pytest.mark.gunicorn
def test_gunicorn_master_survives_an_unreachable_database(monkeypatch):
    """on_starting runs migrations; with no database it logs and lets workers retry later."""
    import runpy

    monkeypatch.setenv("AIREC_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")
    config = runpy.run_path(str(Path(__file__).resolve().parents[1] / "gunicorn.conf.py"))
    errors = []

    class Log:
        def error(self, *args):
            errors.append(args)

    config["on_starting"](type("Server", (), {"log": Log()})())
    assert errors and "unreachable" in errors[0][0]
    assert os.environ["AIREC_DATABASE_URL"].endswith("connect_timeout=1")
