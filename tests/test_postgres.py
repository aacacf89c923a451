"""PostgreSQL under concurrency, on the real server and a throw-away database per test: requests share a
bounded pool of connections, overlapping batches in opposite orders neither deadlock nor lose or double
anything, and keyset reads never skip a row that committed late with a lower id."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from contextlib import closing

import pytest

from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.postgres

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
def pg_app(settings_overrides, postgres_url, monkeypatch, make_app):
    """The app on PostgreSQL with a pool of 3 connections and no poller (its connection would come and
    go). The pool size comes from the environment, as in production."""
    monkeypatch.setenv("AIREC_DB_POOL_SIZE", "3")
    return make_app({**settings_overrides, "database_url": postgres_url, "model_poll_seconds": 0})


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
    from airec.app import create_app
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


def test_a_pooled_connection_older_than_the_stale_timeout_is_replaced(
    settings_overrides, postgres_url, monkeypatch
):
    from airec.app import create_app

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


# --- 6. ingestion without deadlocks -----------------------------------------------------------------

CLIENTS, ROUNDS, USERS, PER_USER = 8, 3, 30, 20

#: A loaded server, made on purpose: every new user or item row costs 0.5 ms more to insert, so that
#: the clients' INSERTs overlap in time (in-process, the GIL otherwise staggers them) as they do
#: under real load.
SLOW_INSERTS = """
CREATE FUNCTION slow_insert() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.0005); RETURN NEW; END $$
LANGUAGE plpgsql;
CREATE TRIGGER slow_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION slow_insert();
CREATE TRIGGER slow_items BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION slow_insert();
"""


def _batch(round_: int, client: int) -> list[dict]:
    """The same fresh users and items for every client in a round: even clients send them in
    ascending order, odd ones in descending order."""
    step = 1 if client % 2 == 0 else -1
    return [
        {
            "user": f"r{round_}-user-{k:02d}",
            "items": [f"r{round_}-item-{k * PER_USER + j:04d}" for j in range(PER_USER)][::step],
        }
        for k in range(USERS)[::step]
    ]


def test_overlapping_batches_in_opposite_orders_neither_fail_nor_lose_nor_double(
    settings_overrides, postgres_url, monkeypatch, caplog
):
    from airec.app import create_app

    monkeypatch.setenv("AIREC_DB_POOL_SIZE", str(CLIENTS + 2))
    app = create_app({**settings_overrides, "database_url": postgres_url, "model_poll_seconds": 0})
    with closing(psycopg2.connect(postgres_url)) as conn, conn.cursor() as cursor:
        cursor.execute(SLOW_INSERTS)
        conn.commit()
    client = app.test_client()
    barrier = threading.Barrier(CLIENTS)
    answers: list[tuple[int, str]] = []

    def send(n: int) -> None:
        for round_ in range(ROUNDS):
            barrier.wait()  # every client posts the round's batch at the same instant
            answer = client.post("/api/v1/interactions", json={"records": _batch(round_, n)})
            answers.append((answer.status_code, answer.get_data(as_text=True)[:200]))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a for a in answers if a[0] != 201] == []
    assert len(answers) == CLIENTS * ROUNDS
    assert "deadlock" not in caplog.text  # the order prevents them; the retry is only the safety net
    assert _count(postgres_url, "users") == ROUNDS * USERS
    assert _count(postgres_url, "items") == ROUNDS * USERS * PER_USER
    assert _count(postgres_url, "records") == CLIENTS * ROUNDS * USERS
    assert _count(postgres_url, "interactions") == CLIENTS * ROUNDS * USERS * PER_USER
    with closing(psycopg2.connect(postgres_url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT u.name, i.name, count(*) FROM interactions x JOIN users u ON u.id = x.user_id "
            "JOIN items i ON i.id = x.item_id GROUP BY u.name, i.name"
        )
        pairs = {(user, item): n for user, item, n in cursor.fetchall()}
    assert pairs == {
        (f"r{r}-user-{k:02d}", f"r{r}-item-{k * PER_USER + j:04d}"): CLIENTS
        for r in range(ROUNDS)
        for k in range(USERS)
        for j in range(PER_USER)
    }


@pytest.fixture
def pg_db(postgres_url):
    """Only the database (migrated, pooled), for tests of the write path without the app."""
    from airec.db import init_db, migrate

    db = init_db(postgres_url, pool_size=4)
    with db.connection_context():
        migrate(db)
    yield db
    db.close_all()


def _bump(key: str) -> None:
    from airec.tables import State

    State.update(value=State.value.cast("int") + 1).where(State.key == key).execute()


def _values() -> dict[str, str]:
    from airec.tables import State

    return dict(State.select(State.key, State.value).tuples())


def _in_threads(*targets) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(target) -> None:
        try:
            target()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_deadlocked_transaction_is_run_again_whole(pg_db, caplog):
    """Two transactions update the same two rows in opposite orders, each waiting (on its first
    attempt) until the other holds its first row: PostgreSQL aborts one; it is run again from the start."""
    from airec.db import atomic_write
    from airec.tables import State

    with pg_db.connection_context():
        State.insert_many([{"key": "x", "value": "0"}, {"key": "y", "value": "0"}]).execute()
    both_hold_one = threading.Barrier(2)
    attempts: list[str] = []

    def client(first: str, second: str):
        def transaction() -> None:
            attempts.append(first)
            _bump(first)
            if attempts.count(first) == 1:
                both_hold_one.wait(30)
            _bump(second)

        def run() -> None:
            with pg_db.connection_context():
                atomic_write(transaction)

        return run

    assert _in_threads(client("x", "y"), client("y", "x")) == []
    assert len(attempts) == 3  # one of the two ran twice
    assert "deadlock, retrying the transaction" in caplog.text
    with pg_db.connection_context():
        assert _values() == {"x": "2", "y": "2"}  # both counted once: nothing lost or doubled


def test_a_serialization_failure_is_run_again_whole(pg_db, postgres_url, caplog):
    """A REPEATABLE READ transaction updates a row another one changed after its snapshot: PostgreSQL
    refuses it (40001); run again, with a new snapshot, it counts on top of the other's change."""
    from airec.db import atomic_write
    from airec.tables import State

    with pg_db.connection_context():
        State.insert(key="x", value="0").execute()
    other_holds_x, commit_other = threading.Event(), threading.Event()
    attempts: list[int] = []

    def other() -> None:
        with pg_db.connection_context(), pg_db.atomic():
            _bump("x")
            other_holds_x.set()
            assert commit_other.wait(30)

    def ours() -> None:
        def transaction() -> None:
            attempts.append(1)
            pg_db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            _bump("x")

        assert other_holds_x.wait(30)
        with pg_db.connection_context():
            atomic_write(transaction)

    def release_when_we_wait() -> None:
        _wait_for(lambda: _waiting_for_a_lock(postgres_url))
        commit_other.set()

    assert _in_threads(other, ours, release_when_we_wait) == []
    assert len(attempts) == 2
    assert "serialization failure, retrying the transaction" in caplog.text
    with pg_db.connection_context():
        assert _values() == {"x": "2"}


# --- 7. keyset reads never skip a row committed late with a lower id ---------------------------------


def test_keyset_reads_do_not_pass_a_lower_id_that_commits_late(pg_app, postgres_url, monkeypatch):
    """Transaction A draws its interaction ids and stalls before committing; transaction B starts after
    it. A read taken while A is open must not move past A's ids (else `after=` skips them for good),
    and reads resumed from that point see every row once both committed."""
    from airec.db import database
    from airec.ingestion import service
    from airec.tables import Interaction
    from airec.training.dataset import last_interaction_id, load_dataset

    client = pg_app.test_client()
    seed = client.post("/api/v1/interactions", json={"user": "seed", "items": ["s1", "s2"]})
    assert seed.status_code == 201

    a_drew_ids, release_a = threading.Event(), threading.Event()
    real = service._insert_values

    def stalling(model, columns, rows, **kwargs):
        real(model, columns, rows, **kwargs)
        if model is Interaction and threading.current_thread().name == "writer-a":
            a_drew_ids.set()
            assert release_a.wait(30)

    monkeypatch.setattr(service, "_insert_values", stalling)
    answers: dict[str, int] = {}

    def post(name: str, items: list[str]) -> None:
        answers[name] = client.post("/api/v1/interactions", json={"user": name, "items": items}).status_code

    a = threading.Thread(target=post, args=("writer-a", ["a1", "a2"]), name="writer-a")
    b = threading.Thread(target=post, args=("writer-b", ["b1", "b2"]), name="writer-b")
    a.start()
    assert a_drew_ids.wait(30)
    b.start()
    _wait_for(lambda: not b.is_alive() or _waiting_for_a_lock(postgres_url))

    page = client.get("/api/v1/interactions?after=0&limit=100").get_json()["interactions"]
    cursor = max(row["id"] for row in page)  # where this reader resumes
    with database.connection_context():
        read = load_dataset()  # what a training run would read now, and record as read

    release_a.set()
    a.join()
    b.join()
    assert answers == {"writer-a": 201, "writer-b": 201}

    later = client.get(f"/api/v1/interactions?after={cursor}&limit=100").get_json()["interactions"]
    assert Counter(row["user"] for row in page + later) == {"seed": 2, "writer-a": 2, "writer-b": 2}
    a_ids = [row["id"] for row in later if row["user"] == "writer-a"]
    assert cursor < min(a_ids) and read.last_interaction_id < min(a_ids)  # neither read passed A's ids
    with database.connection_context():
        # "New data since the last run": every row that run did not read lies above its mark.
        unread = Interaction.select().where(Interaction.id > read.last_interaction_id).count()
        assert unread == 6 - read.n_interactions
        assert last_interaction_id() > read.last_interaction_id


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
