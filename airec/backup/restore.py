"""`airec restore`: a dump into an empty database (or, with force, in place of everything), all or
nothing, primary keys kept and sequences moved past them.

Order: open the file and read its manifest; refuse a newer schema; read every member whole and check
its checksum; check that the database is empty (unless force) and has every table and column the dump
names. Only then one transaction: the ids lock (airec.ingestion.service.ids_commit_in_order), the old
rows removed (force), each table loaded with its indexes and foreign keys set aside
(airec.backup.bulk), sequences reset, commit. Model files, if the dump holds them, are written after
the commit into folders that do not exist yet, each through a temporary folder renamed into place.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import peewee
from tqdm import tqdm

from airec.backup.archive import DumpRefused, open_for_reading, verify_member
from airec.backup.bulk import load_bare, sqlite_foreign_keys_off
from airec.backup.history import lock_in_writers_order
from airec.backup.tables import Kind, Table, code_schema, data_tables, line_decoder, schema_number
from airec.catalogue.service import start_new_history
from airec.db import database, is_sqlite
from airec.modelstore.folders import TMP_PREFIX
from airec.modelstore.names import child, safe_relative

ROWS_PER_INSERT = 20_000


class DatabaseNotEmpty(DumpRefused):
    """The target database holds rows and force was not given."""


def restore(
    path: str | os.PathLike, *, force: bool = False, models_dir: str | None = None, progress: bool = True
) -> dict:
    """Restore the dump at `path`; returns {"tables": {name: rows}, "models": [versions written]}.
    Raises DumpRefused (the database untouched) for a damaged, altered or newer dump, or a database
    that is not empty without `force`. Needs an open database connection."""
    archive, manifest = open_for_reading(path)
    with archive:
        _check_schema(manifest)
        total = sum(t["rows"] for t in manifest["tables"].values())
        with tqdm(total=total, unit="row", unit_scale=True, desc="verify", disable=not progress) as bar:
            for entry in manifest["tables"].values():
                verify_member(archive, entry["member"], entry, bar.update)
            for files in manifest.get("models", {}).values():
                for entry in files.values():
                    verify_member(archive, entry["member"], entry)
        db = database.obj
        targets = _matching_tables(db, manifest)
        if not force:
            _require_empty(db, list(targets.values()))
        with tqdm(total=total, unit="row", unit_scale=True, desc="restore", disable=not progress) as bar:
            loaded = _load_all(db, archive, manifest, targets, force, bar.update)
        written = _write_models(archive, manifest.get("models", {}), models_dir) if models_dir else []
    _analyze(db)
    return {"tables": loaded, "models": written, "schema_version": manifest.get("schema_version")}


def _check_schema(manifest: dict) -> None:
    theirs, ours = manifest.get("schema_version") or "", code_schema()
    if schema_number(theirs) > schema_number(ours):
        raise DumpRefused(
            f"the dump's schema {theirs} is newer than this airec's latest migration {ours}; "
            "restore it with an airec at least as new as the one that wrote it"
        )


def _matching_tables(db: peewee.Database, manifest: dict) -> dict[str, Table]:
    """The database's table for each table of the dump; every column the dump names must exist."""
    ours = {t.name: t for t in data_tables(db)}
    for name, entry in manifest["tables"].items():
        if name not in ours:
            raise DumpRefused(f"the dump holds table {name!r}, which this database does not have")
        missing = [column for column, _ in entry["columns"] if column not in dict(ours[name].columns)]
        if missing:
            raise DumpRefused(f"the dump's table {name!r} has columns {missing} this database does not have")
    return ours


def _require_empty(db: peewee.Database, tables: list[Table]) -> None:
    held = {}
    for table in tables:
        if db.execute_sql(f'SELECT 1 FROM "{table.name}" LIMIT 1').fetchone() is not None:
            held[table.name] = db.execute_sql(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
    if held:
        listing = ", ".join(f"{name}: {rows} rows" for name, rows in sorted(held.items()))
        raise DatabaseNotEmpty(
            f"the database is not empty ({listing}); restore into an empty database, or give --force "
            "to replace everything in it"
        )


def _load_all(db, archive, manifest: dict, targets: dict[str, Table], force: bool, advance) -> dict:
    names = [t.name for t in targets.values()]  # parents before children
    dumped = [name for name in names if name in manifest["tables"]]

    def load() -> dict:
        return {name: _load_table(db, archive, name, manifest["tables"][name], advance) for name in dumped}

    def transaction() -> dict:
        lock_in_writers_order(
            db, names
        )  # restore writes interactions: it orders its commit like every writer
        if force:
            _remove_everything(db, names)
        loaded = load_bare(db, names, load)
        _reset_sequences(db, [targets[name] for name in dumped])
        start_new_history()  # the workers' masks were not built from this catalogue: rebuild, not catch up
        return loaded

    if is_sqlite():
        with sqlite_foreign_keys_off(db), db.atomic("IMMEDIATE"):
            return transaction()
    with db.atomic():
        return transaction()


def _remove_everything(db: peewee.Database, names: list[str]) -> None:
    if is_sqlite():
        for name in reversed(names):  # children first
            db.execute_sql(f'DELETE FROM "{name}"')
    else:
        db.execute_sql("TRUNCATE " + ", ".join(f'"{name}"' for name in names))


def _load_table(db, archive: zipfile.ZipFile, name: str, entry: dict, advance: Callable) -> int:
    columns = [column for column, _ in entry["columns"]]
    listed = ", ".join(f'"{column}"' for column in columns)
    with archive.open(entry["member"]) as member:
        if not is_sqlite():
            db.cursor().copy_expert(
                f'COPY "{name}" ({listed}) FROM STDIN', _Counting(member, advance), 1 << 20
            )
            return entry["rows"]
        kinds = [Kind(kind) for _, kind in entry["columns"]]
        decode = line_decoder(kinds)
        integers = all(kind is Kind.INT for kind in kinds)
        sql = f'INSERT INTO "{name}" ({listed}) VALUES ({", ".join("?" * len(columns))})'
        cursor = db.cursor()
        rows = 0
        while chunk := _whole_lines(member):
            if integers and "\\N" not in chunk:  # integer columns turn the digits into integers themselves
                batch = [line.split("\t") for line in chunk.splitlines()]
            else:
                batch = [decode(line) for line in chunk.split("\n")[:-1]]
            cursor.executemany(sql, batch)
            rows += len(batch)
            advance(len(batch))
        return rows


def _whole_lines(member, size: int = 1 << 22) -> str:
    """About `size` bytes of the member, ending at a line's end ('' at the end of the member)."""
    data = member.read(size)
    if data and not data.endswith(b"\n"):
        data += member.readline()
    return data.decode("utf-8")


class _Counting:
    """A member read by COPY FROM STDIN, advancing the progress bar by the lines read."""

    def __init__(self, raw, advance: Callable):
        self.raw, self.advance = raw, advance

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.advance(data.count(b"\n"))
        return data

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def _reset_sequences(db: peewee.Database, tables: list[Table]) -> None:
    """Next ids come after the restored ones, so `last_interaction_id` marks and cursors stay valid.
    SQLite's INTEGER PRIMARY KEY takes max(rowid) + 1 by itself; AUTOINCREMENT tables keep a counter."""
    serial = [table for table in tables if table.serial is not None]
    if not is_sqlite():
        for table in serial:
            db.execute_sql(
                f'SELECT setval(pg_get_serial_sequence(%s, %s), max("{table.serial}"))'
                f' FROM "{table.name}" HAVING count(*) > 0',
                (f'"{table.name}"', table.serial),
            )
        return
    if "sqlite_sequence" not in db.get_tables():
        return
    for table in serial:
        db.execute_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table.name,))
        db.execute_sql(
            f'INSERT INTO sqlite_sequence (name, seq) SELECT ?, max("{table.serial}") FROM "{table.name}"'
            " HAVING count(*) > 0",
            (table.name,),
        )


def _analyze(db: peewee.Database) -> None:
    db.execute_sql("PRAGMA optimize" if is_sqlite() else "ANALYZE")


def _write_models(archive: zipfile.ZipFile, models: dict, models_dir: str) -> list[str]:
    """Each dumped model folder that `models_dir` does not have yet, written whole then renamed."""
    written = []
    for version, files in sorted(models.items()):
        folder = child(models_dir, version)
        if folder.exists():
            continue
        staging = Path(models_dir) / f"{TMP_PREFIX}restore-{version}"
        shutil.rmtree(staging, ignore_errors=True)
        for relative, entry in files.items():
            target = staging / safe_relative(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry["member"]) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
        os.replace(staging, folder)
        written.append(version)
    return written
