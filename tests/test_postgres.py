"""PostgreSQL under concurrency, on the real server and a throw-away database per test: requests share a
bounded pool of connections."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from contextlib import closing

import pytest

from tests.conftest import PG_ADMIN

psycopg2 = pytest.importorskip("psycopg2")


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _backends(url: str) -> set[tuple[int, str]]:
    """(pid, start time) of every server process connected to the test database (ours excluded)."""
    with closing(psycopg2.connect(**PG_ADMIN)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start::text FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (_dbname(url),),
        )
        return set(cursor.fetchall())


def _count(url: str, table: str) -> int:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


@pytest.fixture
def pg_app(settings_overrides, postgres_url, monkeypatch):
    """The app on PostgreSQL with a pool of 3 connections and no poller (its connection would come and
    go). The pool size comes from the environment, as in production."""
    from airec import create_app

    monkeypatch.setenv("AIREC_DB_POOL_SIZE", "3")
    return create_app({**settings_overrides, "database_url": postgres_url, "model_poll_seconds": 0})


# --- 5. a connection pool ---------------------------------------------------------------------------


def test_sequential_requests_reuse_one_server_connection(pg_app, postgres_url):
    client = pg_app.test_client()
    assert client.post("/api/v1/interactions", json={"user": "u", "items": ["a"]}).status_code == 201
    first = _backends(postgres_url)
    assert 1 <= len(first) <= 3, f"the pooled connection should stay open after a request: {first}"
    for n in range(30):
        answer = client.post("/api/v1/interactions", json={"user": f"u{n}", "items": ["a", "b"]})
        assert answer.status_code == 201
        assert client.get("/api/v1/stats").status_code == 200
    assert _backends(postgres_url) == first  # the same server process answered all 61 requests


def test_concurrent_requests_never_open_more_connections_than_the_pool(pg_app, postgres_url):
    """8 threads, 120 requests, a pool of 3: the threads wait for a free connection, none fails,
    and no more than 3 server processes ever exist for the database."""
    client = pg_app.test_client()
    seen: set[tuple[int, str]] = set()
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            now = _backends(postgres_url)
            seen.update(now)
            most = max(most, len(now))

    statuses: list[int] = []

    def work(n: int) -> None:
        for i in range(15):
            answer = client.post("/api/v1/interactions", json={"user": f"t{n}", "items": [f"i{i}"]})
            statuses.append(answer.status_code)

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    watcher.join()
    assert Counter(statuses) == {201: 120}
    assert _count(postgres_url, "interactions") == 120
    assert 1 <= most <= 3 and len(seen) <= 3, (most, len(seen))


def test_a_forked_process_never_uses_its_parents_pooled_connections(postgres_url):
    """gunicorn forks workers from a master that migrated the schema: a child must open its own
    connections, never talk on (or close) the parent's socket."""
    from airec.db import init_db

    db = init_db(postgres_url, pool_size=2)
    with db.connection_context():
        parent_pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            with db.connection_context():
                os.write(write, str(db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_pid = int(os.read(read, 64) or 0)
    os.waitpid(child, 0)
    assert child_pid and child_pid != parent_pid
    with db.connection_context():  # the parent's pooled connection still works
        assert db.execute_sql("SELECT pg_backend_pid()").fetchone()[0] == parent_pid
    db.close_all()


def test_a_request_that_finds_every_connection_busy_waits_then_answers_503(
    settings_overrides, postgres_url, monkeypatch
):
    from airec import create_app
    from airec.db import database

    monkeypatch.setenv("AIREC_DB_POOL_SIZE", "1")
    monkeypatch.setenv("AIREC_DB_POOL_WAIT_SECONDS", "0.3")
    app = create_app({**settings_overrides, "database_url": postgres_url, "model_poll_seconds": 0})
    client = app.test_client()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with database.connection_context():
            database.execute_sql("SELECT 1")
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    try:
        answer = client.get("/api/v1/stats")
        assert answer.status_code == 503
        assert "AIREC_DB_POOL_SIZE" in answer.get_json()["message"]
        assert int(answer.headers["Retry-After"]) > 0
    finally:
        release.set()
        holder.join()
    assert client.get("/api/v1/stats").status_code == 200  # the connection came back to the pool


def test_a_pooled_connection_older_than_the_stale_timeout_is_replaced(settings_overrides, postgres_url,
                                                                      monkeypatch):  # fmt: skip
    from airec import create_app

    monkeypatch.setenv("AIREC_DB_POOL_SIZE", "2")
    monkeypatch.setenv("AIREC_DB_POOL_STALE_SECONDS", "2")
    app = create_app({**settings_overrides, "database_url": postgres_url, "model_poll_seconds": 0})
    client = app.test_client()
    assert client.get("/api/v1/stats").status_code == 200
    first = _backends(postgres_url)
    assert client.get("/api/v1/stats").status_code == 200
    assert _backends(postgres_url) == first  # young: reused

    def replaced() -> bool:
        assert client.get("/api/v1/stats").status_code == 200
        now = _backends(postgres_url)
        return bool(now) and not now & first

    _wait_for(replaced, timeout=15)


def _waiting_for_a_lock(url: str) -> bool:
    with closing(psycopg2.connect(**PG_ADMIN)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            (_dbname(url),),
        )
        return cursor.fetchone()[0] > 0


def _wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
