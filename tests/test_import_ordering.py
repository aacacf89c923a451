"""Issue 17.1: every writer of interaction rows (API ingest, `airec import`, `airec restore`) commits its
ids in the order it drew them, so a reader paging by id on PostgreSQL sees every row exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import closing

import pytest

from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.postgres

psycopg2 = pytest.importorskip("psycopg2")

#: The advisory lock the test holds while the import's first batch is stalled (after it stored its rows).
STALL_LOCK = 4242


@pytest.fixture
def h11_pg_app(settings_overrides, monkeypatch):
    from airec.app import create_app
    from tests.pg_helpers import fresh_database

    with fresh_database("airec_h11") as url:
        monkeypatch.setenv("AIREC_DB_POOL_SIZE", "4")
        app = create_app({**settings_overrides, "database_url": url, "model_poll_seconds": 0})
        yield app, url


def _plant_stall(url: str) -> None:
    """A statement trigger on interactions that, in a session that set airec.stall, waits for the test's
    advisory lock: the import's transaction then sits between storing its rows and its commit."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION h11_stall() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF current_setting('airec.stall', true) = 'on' THEN
                PERFORM set_config('airec.stall', 'off', false);
                PERFORM pg_advisory_xact_lock_shared(%s);
              END IF;
              RETURN NULL;
            END $$;
            CREATE TRIGGER h11_stall AFTER INSERT ON interactions
              FOR EACH STATEMENT EXECUTE FUNCTION h11_stall();
            """,
            (STALL_LOCK,),
        )
        conn.commit()


def _waiting(url: str, who: str) -> bool:
    """Whether a session of the test database waits on an advisory lock (who='any') or on the stall's."""
    with closing(psycopg2.connect(**PG_ADMIN)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE a.datname = %s AND NOT l.granted AND l.locktype = 'advisory'"
            " AND (%s = 'any' OR l.objid = %s)",
            (url.rsplit("/", 1)[1], who, STALL_LOCK),
        )
        return cursor.fetchone()[0] > 0


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_reader_paging_by_id_sees_every_row_once_while_import_and_ingest_run(h11_pg_app, tmp_path):
    from airec.db import database
    from airec.imports import import_file

    app, url = h11_pg_app
    client = app.test_client()
    assert client.post("/api/v1/interactions", json={"user": "seed", "items": ["s1"]}).status_code == 201
    _plant_stall(url)
    csv_path = tmp_path / "history.csv"
    csv_path.write_text("user,item\n" + "".join(f"imp{u},i{i}\n" for u in range(40) for i in range(5)))

    seen: list[int] = []
    done = threading.Event()
    cursor = {"after": 0}

    def page() -> None:
        answer = client.get(f"/api/v1/interactions?after={cursor['after']}&limit=50").get_json()
        rows = answer["interactions"]
        seen.extend(row["id"] for row in rows)
        if rows:
            cursor["after"] = rows[-1]["id"]

    def reader() -> None:
        while not done.is_set():
            page()
            time.sleep(0.005)

    results: dict = {}

    def importer() -> None:
        database.connect(reuse_if_open=True)
        database.execute_sql("SET airec.stall = 'on'")  # only this session's first batch stalls
        results["import"] = import_file(csv_path, "csv", batch_size=50, progress=False)
        database.close()

    def ingester() -> None:
        codes = [
            client.post("/api/v1/interactions", json={"user": f"api{n}", "items": ["x", "y"]}).status_code
            for n in range(10)
        ]
        results["api"] = codes

    with closing(psycopg2.connect(url)) as holder, holder.cursor() as lock_cursor:
        lock_cursor.execute("SELECT pg_advisory_lock(%s)", (STALL_LOCK,))
        imp = threading.Thread(target=importer)
        imp.start()
        _wait_for(lambda: _waiting(url, "stall"))  # the import's first batch stored its rows, uncommitted
        api = threading.Thread(target=ingester)
        api.start()
        _wait_for(lambda: not api.is_alive() or _api_waits(url))
        read = threading.Thread(target=reader)
        read.start()
        time.sleep(0.3)  # the reader pages while the import's batch is open
        lock_cursor.execute("SELECT pg_advisory_unlock(%s)", (STALL_LOCK,))
        imp.join(60)
        api.join(60)
        done.set()
        read.join(60)
    page()
    page()

    assert results["api"] == [201] * 10
    assert results["import"]["interactions"] == 200
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM interactions")
        stored = sorted(row[0] for row in cur.fetchall())
    assert len(stored) == 1 + 200 + 20
    counts = Counter(seen)
    assert [i for i, n in counts.items() if n > 1] == []  # nothing twice
    assert sorted(counts) == stored  # nothing skipped


def _api_waits(url: str) -> bool:
    """The API ingest waits on an advisory lock other than the stall (the ids lock), or already ended."""
    with closing(psycopg2.connect(**PG_ADMIN)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE a.datname = %s AND NOT l.granted AND l.locktype = 'advisory' AND l.objid <> %s",
            (url.rsplit("/", 1)[1], STALL_LOCK),
        )
        return cursor.fetchone()[0] > 0
