"""From SQLite to PostgreSQL: `airec export` writes every record as JSON lines, `airec import --format
jsonl` reads them back (on PostgreSQL through COPY), and the data arrives whole and in order."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from airec.db import database, init_db, migrate
from airec.exports import export_records
from airec.imports import ImportFormatError, import_file
from airec.ingestion.service import ingest_records
from airec.tables import Interaction, Record
from tests.pg_helpers import fresh_database

RECORDS = [
    {"user": "ann", "items": ["wine", "cheese", "olives"], "timestamp": dt.datetime(2024, 5, 1, 18, 30)},
    {"items": ["beer", "chips"]},  # a basket without a user
    {"user": "bob", "items": ["bread"]},
    {"user": "ann", "items": ["bread", "wine"], "timestamp": dt.datetime(2024, 5, 2, 9, 0, 0, 123000)},
    {"user": "zoë", "items": ["crème brûlée", "wine"]},
]


def export_text() -> str:
    out = io.StringIO()
    export_records(out)
    return out.getvalue()


@pytest.mark.postgres
def test_export_then_import_moves_sqlite_data_to_postgresql(tmp_path, monkeypatch):
    monkeypatch.setattr("airec.exports.PAGE", 2)  # several pages, and a record split from its items
    sqlite = init_db(f"sqlite:///{tmp_path}/old.db")
    sqlite.connect()
    migrate(sqlite)
    ingest_records(RECORDS)
    exported = export_text()
    sqlite.close()
    path = tmp_path / "export.jsonl"
    path.write_text(exported, encoding="utf-8")
    assert len(exported.splitlines()) == len(RECORDS)

    with fresh_database("airec_export") as url:
        pg = init_db(url)
        pg.connect()
        migrate(pg)
        result = import_file(path, "jsonl", batch_size=3, progress=False)
        assert result == {"rows": 5, "skipped": 0, "records": 5, "interactions": 10}
        assert export_text() == exported  # same records, users, items, timestamps and order
        assert Interaction.select().count() == 10 and Record.select().count() == 5
        # The planner knows the new rows at once (a first training read must not wait for autovacuum).
        analysed = dict(
            pg.execute_sql(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relname IN ('users', 'items', 'records', 'interactions')"
            ).fetchall()
        )
        assert analysed == {"users": True, "items": True, "records": True, "interactions": True}
        pg.close()


@pytest.mark.postgres
def test_a_bad_line_on_postgresql_keeps_earlier_batches_and_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,item\nu1,a\nu1,b\nu2,a\nu3,c\nu4," + "x" * 300 + "\n", encoding="utf-8")
    with fresh_database("airec_copy") as url:
        pg = init_db(url)
        pg.connect()
        migrate(pg)
        with pytest.raises(ImportFormatError, match=r"bad.csv:6: .*256"):
            import_file(path, "csv", batch_size=2, progress=False)
        assert Record.select().count() == 3  # u1's, u2's and u3's batches committed before line 6
        assert database.obj is pg
        pg.close()
