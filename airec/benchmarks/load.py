"""`airec bench load`: how fast interactions go in and out, old path beside new, on SQLite and PostgreSQL.

Synthesizes interactions with ML-20M's shape (its users per interaction and its 20,000 items, the planted
structure of `airec bench scale`) scaled to --rows, writes them as a user,item CSV and measures, each in
a fresh database: `airec import` batch by batch into an empty database (the path every import took
before), `airec import` into an empty database (one transaction, indexes and foreign keys built after
the load), `airec import` of the same file again into that now populated database (the live path),
`airec dump` of it and `airec restore` of that dump into another empty database. Rows/s counts
interactions, by the wall clock and per CPU second of this process and its PostgreSQL server process
(parallel index builds are switched off for that, so the server's work is all in one process). Every
database it creates it drops (PostgreSQL) or deletes (SQLite).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from airec.benchmarks.scale import Size, synthesize, write_csv

ML20M_USERS, ML20M_ITEMS, ML20M_INTERACTIONS = 138_493, 20_000, 20_000_263
ENGINES = ("sqlite", "postgresql")


def ml20m_shape(rows: int) -> Size:
    users = max(1, round(ML20M_USERS * rows / ML20M_INTERACTIONS))
    return Size(f"ml20m-{rows}", users, ML20M_ITEMS, rows)


class Databases:
    """Fresh databases of one engine, dropped at the end."""

    def __init__(self, engine: str, folder: Path, admin_url: str, prefix: str):
        self.engine, self.folder, self.admin_url, self.prefix, self.made = (
            engine,
            folder,
            admin_url,
            prefix,
            [],
        )

    def new(self) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:10]}"
        self.made.append(name)
        if self.engine == "sqlite":
            return f"sqlite:///{self.folder / name}.db"
        import psycopg2

        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        conn.close()
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        from airec.db import database

        if database.obj is not None and not database.is_closed():
            database.close()
        if self.engine == "sqlite":
            for name in self.made:
                for path in self.folder.glob(f"{name}.db*"):
                    path.unlink()
            return
        import psycopg2

        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cursor:
            for name in self.made:
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


def _open(url: str):
    from airec.db import init_db, migrate

    db = init_db(url)
    db.connect()
    migrate(db)
    return db


class Clock:
    """Wall time, and CPU time of this process plus its PostgreSQL server process (read from /proc, the
    server being on this machine): on a shared machine the wall time measures the neighbours too, the
    CPU seconds only this work (what an idle machine would take, when client and server do not overlap)."""

    def __init__(self, db):
        from airec.db import is_sqlite

        self.server = None if is_sqlite() else db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        self.wall, self.client, self.cpu = time.perf_counter(), time.process_time(), self._server_cpu()

    def _server_cpu(self) -> float:
        if self.server is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.server}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict:
        client = time.process_time() - self.client
        server = self._server_cpu() - self.cpu
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": client + server,
            "client_cpu": client,
        }


def timed_import(url: str, csv_path: Path, *, empty_fast: bool, batch_size: int) -> dict:
    from airec.imports import import_file

    db = _open(url)
    clock = Clock(db)
    totals = import_file(csv_path, "csv", batch_size=batch_size, progress=False, empty_fast=empty_fast)
    measured = clock.stop()
    db.close()
    return {"rows": totals["interactions"], **measured}


def timed_dump(url: str, path: Path) -> dict:
    from airec.backup.dump import dump

    db = _open(url)
    clock = Clock(db)
    manifest = dump(path, progress=False)
    measured = clock.stop()
    db.close()
    return {"rows": manifest["tables"]["interactions"]["rows"], **measured, "bytes": path.stat().st_size}


def timed_restore(url: str, path: Path) -> dict:
    from airec.backup.restore import restore

    db = _open(url)
    clock = Clock(db)
    result = restore(path, progress=False)
    measured = clock.stop()
    db.close()
    return {"rows": result["tables"]["interactions"], **measured}


def bench_engine(engine: str, csv_path: Path, folder: Path, args: argparse.Namespace) -> dict:
    dbs = Databases(engine, folder, args.admin_url, args.db_prefix)
    out: dict[str, dict] = {}
    try:
        if not args.skip_old:
            out["import, before (batch by batch)"] = timed_import(
                dbs.new(), csv_path, empty_fast=False, batch_size=args.batch_size
            )
        populated = dbs.new()
        out["import into an empty database"] = timed_import(
            populated, csv_path, empty_fast=True, batch_size=args.batch_size
        )
        dump_path = folder / f"{engine}.airec"
        out["dump"] = timed_dump(populated, dump_path)
        out["restore"] = timed_restore(dbs.new(), dump_path)
        if not args.skip_live:
            out["import into a live database"] = timed_import(
                populated, csv_path, empty_fast=True, batch_size=args.batch_size
            )
        dump_path.unlink()
    finally:
        dbs.drop_all()
    return out


def print_table(results: dict[str, dict]) -> None:
    """rows/s by the wall clock and per CPU second (client + server), each beside the old import's."""
    print(
        f"{'engine':<12}{'step':<36}{'interactions':>13}{'seconds':>9}{'rows/s':>10}{'vs before':>10}"
        f"{'cpu s':>8}{'rows/cpu-s':>12}{'vs before':>10}"
    )
    for engine, steps in results.items():
        before = steps.get("import, before (batch by batch)")
        for step, m in steps.items():
            rate, cpu_rate = m["rows"] / m["seconds"], m["rows"] / max(m["cpu_seconds"], 1e-9)
            ratio = cpu_ratio = ""
            if before and step != "dump":
                ratio = f"{rate / (before['rows'] / before['seconds']):.1f}x"
                cpu_ratio = f"{cpu_rate / (before['rows'] / before['cpu_seconds']):.1f}x"
            print(
                f"{engine:<12}{step:<36}{m['rows']:>13,}{m['seconds']:>9.2f}{rate:>10,.0f}{ratio:>10}"
                f"{m['cpu_seconds']:>8.2f}{cpu_rate:>12,.0f}{cpu_ratio:>10}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="interactions (ML-20M's shape)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--batch-size", type=int, default=20000, help="interactions per import transaction")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--db-prefix", default="airec_bench_load", help="names of the databases it creates start with this"
    )
    if_invalid = "letters, digits and _ only"
    parser.add_argument("--skip-old", action="store_true", help="do not measure the batch-by-batch import")
    parser.add_argument("--skip-live", action="store_true", help="do not import into the populated database")
    parser.add_argument("--workdir", default=None, help="where the CSV, SQLite files and dumps go")
    parser.add_argument("--json", default=None, help="also write every measurement to this file")
    args = parser.parse_args(argv)
    if not args.db_prefix.replace("_", "").isalnum():
        parser.error(f"--db-prefix: {if_invalid}")
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    os.environ["PGOPTIONS"] = (
        "-c max_parallel_maintenance_workers=0"  # all of the server's CPU in one process
    )
    with tempfile.TemporaryDirectory(prefix="airec-load-", dir=args.workdir) as tmp:
        folder = Path(tmp)
        users, items = synthesize(ml20m_shape(args.rows))
        csv_path = folder / "interactions.csv"
        write_csv(csv_path, users, items)
        results = {engine: bench_engine(engine, csv_path, folder, args) for engine in engines}
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
