"""`airec dump`: every table at one point in time into one file, while the service goes on ingesting.

One read transaction holds the snapshot: REPEATABLE READ on PostgreSQL (each table is read by COPY TO
STDOUT inside it), a deferred transaction on SQLite (in WAL mode its first read fixes what it sees until
it ends). Rows committed after that point are in no table of the dump; rows committed before are in all.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import peewee
from tqdm import tqdm

from airec import __version__
from airec.backup.archive import (
    FORMAT,
    FORMAT_VERSION,
    HashingWriter,
    member_writer,
    open_for_writing,
    table_member,
    write_manifest,
)
from airec.backup.tables import Kind, Table, applied_schema, data_tables, line_encoder
from airec.db import database, is_sqlite
from airec.modelstore.folders import complete_versions, sha256_of
from airec.modelstore.names import safe_relative

ROWS_PER_FETCH = 20_000


def dump(path: str | os.PathLike, *, models_dir: str | None = None, progress: bool = True) -> dict:
    """Write the dump to `path` (through a temporary file renamed at the end, so an interrupted dump
    leaves no file that looks whole). With `models_dir`, the complete model folders in it go too.
    Returns the manifest. Needs an open database connection."""
    db = database.obj
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    tables_manifest: dict[str, dict] = {}
    with open_for_writing(partial) as archive:
        with db.atomic():
            if not is_sqlite():
                _postgres_snapshot(db)
            tables = data_tables(db)
            schema = applied_schema(db)
            counts = {t.name: _count(db, t) for t in tables}
            with tqdm(total=sum(counts.values()), unit="row", unit_scale=True, disable=not progress) as bar:
                for table in tables:
                    bar.set_description(table.name)
                    with member_writer(archive, table_member(table.name)) as out:
                        _write_table(db, table, out, bar.update)
                    tables_manifest[table.name] = {
                        "columns": [[name, str(kind)] for name, kind in table.columns],
                        "order_by": table.order_by,
                        "serial": table.serial,
                        "member": table_member(table.name),
                        **out.summary(),
                    }
        models = _write_models(archive, Path(models_dir)) if models_dir else {}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": schema,
            "engine": "sqlite" if is_sqlite() else "postgresql",
            "airec_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "tables": tables_manifest,
            "models": models,
        }
        write_manifest(archive, manifest)
    os.replace(partial, path)
    return manifest


def _postgres_snapshot(db: peewee.Database) -> None:
    """The first statements of the transaction: one snapshot for every table, values in COPY's
    canonical text (ISO dates, hex bytes, floats that read back exactly)."""
    cursor = db.cursor()
    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cursor.execute("SET LOCAL DateStyle = 'ISO, YMD'")
    cursor.execute("SET LOCAL bytea_output = 'hex'")
    cursor.execute("SET LOCAL extra_float_digits = 1")
    cursor.execute("SET LOCAL client_encoding = 'UTF8'")


def _count(db: peewee.Database, table: Table) -> int:
    return db.execute_sql(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]


def _select(table: Table) -> str:
    columns = ", ".join(f'"{name}"' for name, _ in table.columns)
    order = ", ".join(f'"{name}"' for name in table.order_by)
    return f'SELECT {columns} FROM "{table.name}" ORDER BY {order}'


def _write_table(db: peewee.Database, table: Table, out: HashingWriter, advance: Callable) -> None:
    if not is_sqlite():
        counting = _Counting(out, advance)
        db.cursor().copy_expert(f"COPY ({_select(table)}) TO STDOUT", counting)
        counting.flush()
        return
    kinds = [kind for _, kind in table.columns]
    if set(kinds) <= {Kind.INT, Kind.TEXT}:  # SQLite writes the lines itself: no Python per value
        cursor = db.execute_sql(_select_lines(table))
        while rows := cursor.fetchmany(ROWS_PER_FETCH):
            out.write("".join([row[0] for row in rows]))
            advance(len(rows))
        return
    encode = line_encoder(kinds)
    cursor = db.execute_sql(_select(table))
    while rows := cursor.fetchmany(ROWS_PER_FETCH):
        out.write("".join(map(encode, rows)))
        advance(len(rows))


def _select_lines(table: Table) -> str:
    """SQLite: each row as its COPY text line (integers and escaped text only)."""
    parts = []
    for name, kind in table.columns:
        value = f'CAST("{name}" AS TEXT)'
        if kind is Kind.TEXT:
            for char, escape in (
                ("'\\'", "'\\\\'"),
                ("char(9)", "'\\t'"),
                ("char(10)", "'\\n'"),
                ("char(13)", "'\\r'"),
            ):
                value = f"replace({value}, {char}, {escape})"
        parts.append(f"coalesce({value}, '\\N')")
    order = ", ".join(f'"{name}"' for name in table.order_by)
    return f'SELECT {" || char(9) || ".join(parts)} || char(10) FROM "{table.name}" ORDER BY {order}'


class _Counting:
    """COPY's output into the member, advancing the progress bar by its lines. psycopg2 hands over one
    row per write; they are gathered into chunks of about a megabyte first (a hash, a line count and
    a compressor call per row cost more than the server spent producing them)."""

    def __init__(self, out: HashingWriter, advance: Callable, chunk: int = 1 << 20):
        self.out, self.advance, self.chunk = out, advance, chunk
        self.pending: list = []
        self.size = 0

    def write(self, data) -> int:
        self.pending.append(data)
        self.size += len(data)
        if self.size >= self.chunk:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self.pending:
            return
        joined = "".join(self.pending) if isinstance(self.pending[0], str) else b"".join(self.pending)
        before = self.out.lines
        self.out.write(joined)
        self.advance(self.out.lines - before)
        self.pending, self.size = [], 0


def _write_models(archive, models_dir: Path) -> dict:
    """Each complete model folder's files, with their checksums: {version: {file: {sha256, bytes}}}."""
    models: dict[str, dict] = {}
    for version in complete_versions(models_dir):
        folder = models_dir / version
        files = {}
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = safe_relative(file.relative_to(folder).as_posix())
            member = f"models/{version}/{relative}"
            archive.write(file, member)
            files[relative] = {"member": member, "sha256": sha256_of(file), "bytes": file.stat().st_size}
        models[version] = files
    return models
