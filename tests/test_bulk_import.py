"""`airec import` into an empty database (issue 21, bulk loading): the one-transaction load stores exactly
what the batch-by-batch import stores, leaves the same indexes and foreign keys, and the ids go on after
it; a populated database still goes batch by batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from airec.db import init_db, is_sqlite, migrate
from airec.imports import ImportFormatError, import_file


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def urls(request, tmp_path):
    """Two fresh databases of one engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/one.db", f"sqlite:///{tmp_path}/two.db"
        return
    from tests.pg_helpers import fresh_database

    with fresh_database("airec_h11") as one, fresh_database("airec_h11") as two:
        yield one, two


def _history(folder: Path) -> Path:
    """Users with runs of rows, a user seen again later, timestamps, a name with a backslash."""
    lines = ["user,item,timestamp"]
    for user in range(60):
        for k in range(7):
            lines.append(f"u{user},i{(user * 7 + k) % 53},{1_600_000_000 + user * 100 + k}")
    lines += ["u3,i0,1600000999", "back\\slash,odd\\item,1600001000"]
    path = folder / "history.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _open(url: str):
    db = init_db(url)
    db.connect()
    migrate(db)
    return db


def _contents(db) -> list[tuple]:
    return [
        tuple(str(v) for v in row)
        for row in db.execute_sql(
            "SELECT i.id, i.record_id, u.name, t.name, r.timestamp FROM interactions i"
            " JOIN users u ON u.id = i.user_id JOIN items t ON t.id = i.item_id"
            " JOIN records r ON r.id = i.record_id ORDER BY i.id"
        )
    ]


def _schema(db) -> list:
    if is_sqlite():
        return sorted(
            db.execute_sql("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        )
    return sorted(
        list(db.execute_sql("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"))
        + list(
            db.execute_sql(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace"
            )
        )
    )


def test_an_empty_database_gets_what_batch_by_batch_stores(urls, tmp_path):
    from airec.ingestion.service import ingest_records

    path = _history(tmp_path)
    fast_url, slow_url = urls
    slow = _open(slow_url)
    slow_result = import_file(path, "csv", batch_size=50, progress=False, empty_fast=False)
    slow_rows = _contents(slow)
    slow.close()

    fast = _open(fast_url)
    schema = _schema(fast)
    fast_result = import_file(path, "csv", batch_size=50, progress=False)
    assert fast_result == slow_result == {"rows": 422, "skipped": 0, "records": 62, "interactions": 422}
    assert _contents(fast) == slow_rows  # the same ids, records, names and times
    assert _schema(fast) == schema  # every index and foreign key built again
    ingest_records([{"user": "later", "items": ["i1"]}])
    (last,) = fast.execute_sql("SELECT max(id) FROM interactions").fetchone()
    assert last == 423  # the sequences go on after the loaded ids
    second = import_file(path, "csv", batch_size=50, progress=False)  # populated now: batch by batch
    assert second["interactions"] == 422
    (count,) = fast.execute_sql("SELECT count(*) FROM interactions").fetchone()
    assert count == 2 * 422 + 1
    fast.close()


def test_a_bad_line_in_an_empty_database_keeps_the_batches_before_it_and_names_the_line(urls, tmp_path):
    fast_url, _ = urls
    path = tmp_path / "bad.csv"
    rows = [f"u{n},i{n}" for n in range(30)] + ["u30,bad\x01item"] + [f"u{n},i{n}" for n in range(31, 40)]
    path.write_text("user,item\n" + "\n".join(rows) + "\n")
    db = _open(fast_url)
    with pytest.raises(ImportFormatError, match=r"bad.csv:32: Contains the control character U\+0001"):
        import_file(path, "csv", batch_size=10, progress=False)
    (users,) = db.execute_sql("SELECT count(*) FROM users").fetchone()
    (interactions,) = db.execute_sql("SELECT count(*) FROM interactions").fetchone()
    assert (users, interactions) == (30, 30)  # three whole batches of 10 stored, the fourth not
    db.close()


@pytest.mark.postgres
def test_bench_load_prints_old_and_new_rates_on_both_engines(tmp_path, capsys):
    """`airec bench load` runs every step at a tiny size and drops what it created."""
    import psycopg2

    from airec.cli import main
    from tests.conftest import PG_ADMIN

    try:
        psycopg2.connect(**PG_ADMIN, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1: {exc}")
    argv = ["bench", "load", "--rows", "3000", "--workdir", str(tmp_path), "--db-prefix", "airec_h11_bench"]
    assert main([*argv, "--admin-url", "postgresql://postgres@127.0.0.1:5432/test"]) == 0
    table = capsys.readouterr().out
    for engine in ("sqlite", "postgresql"):
        for step in ("import, before", "import into an empty database", "dump", "restore", "live database"):
            assert any(
                line.startswith(engine) and step in line and "3,000" in line for line in table.splitlines()
            )
    with psycopg2.connect(**PG_ADMIN) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'airec_h11_bench%'")
        assert cursor.fetchone() == (0,)
    assert list(tmp_path.iterdir()) == []
