"""Where one client's ingest rate goes on SQLite: the same batches stored by calling the ingestion
service in this process (no HTTP, no JSON, no gunicorn), and the SQL that the service ran replayed
alone on a fresh database (SQLite's own time for the very same statements). The two rows under the
HTTP row say how much of a batch is the web stack, how much airec's Python, how much the database."""

from __future__ import annotations

import statistics
import tempfile
import time

from airec import scope
from airec.benchmarks.ingest_batches import make_batches


def _fresh(path: str):
    from airec.db import init_db, migrate

    db = init_db(f"sqlite:///{path}")
    db.connect()
    migrate(db)
    return db


def measure(*, batches: int, records: int, items: int = 300, rounds: int = 3) -> dict[str, float]:
    """Median interactions/s over `rounds` rounds of `batches` batches each (new users every round):
    {"service": ingest_records in-process, "sql": its statements replayed through sqlite3 alone}."""
    from airec.ingestion.service import ingest_records

    service, sql = [], []
    with tempfile.TemporaryDirectory(prefix="airec-bench-floor-") as where:
        # Three databases fed the same batches: one timed through the service, one traced (untimed)
        # to capture the statements, one where the captured statements are replayed and timed.
        timed, traced, replay = (_fresh(f"{where}/{name}.db") for name in ("timed", "traced", "replay"))
        try:
            for round_ in range(rounds):
                work = make_batches(0, batches, records, items, tag=f"floor{round_}-")
                stored = sum(len(r["items"]) for batch in work for r in batch)
                with scope.entered(scope.AppScope(database=timed)):
                    started = time.perf_counter()
                    for batch in work:
                        ingest_records(batch)
                    service.append(stored / (time.perf_counter() - started))
                statements: list[str] = []
                with scope.entered(scope.AppScope(database=traced)):
                    traced.connection().set_trace_callback(statements.append)
                    for batch in work:
                        ingest_records(batch)
                    traced.connection().set_trace_callback(None)
                conn = replay.connection()
                started = time.perf_counter()
                for statement in statements:
                    conn.execute(statement).fetchall()
                sql.append(stored / (time.perf_counter() - started))
            counts = [
                db.execute_sql("SELECT COUNT(*) FROM interactions").fetchone()[0] for db in (timed, replay)
            ]
            if counts[0] != counts[1]:
                raise RuntimeError(f"the replay stored {counts[1]} interactions, the service {counts[0]}")
        finally:
            for db in (timed, traced, replay):
                db.close()
    return {"service": statistics.median(service), "sql": statistics.median(sql)}
