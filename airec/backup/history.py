"""`airec import` into an empty database: the whole file in one transaction, with the tables' indexes and
foreign keys set aside and built once at the end (airec.backup.bulk), users and items numbered in
memory instead of a get-or-create per batch, and ids assigned here instead of a sequence round trip.

The guarantees of the batched import stay: every record is checked exactly as API ingest checks it
(normalize_records), a bad one stops the import naming its line, and nothing is stored then (the one
transaction is the batch); the ids lock is taken first, so ids commit in order for keyset readers. On
PostgreSQL the interactions stream into COPY while the file is still being read, so the server stores
one chunk while Python parses the next. The tables are locked for the duration: readers of them wait
until the commit (it is an empty database, so nothing served depends on them yet).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

import peewee

from airec.backup.bulk import load_bare, sqlite_foreign_keys_off
from airec.db import database, is_sqlite
from airec.ingestion.service import IngestError, ids_commit_in_order, normalize_records
from airec.tables import utcnow

#: The tables an import writes; the load is taken only when all of them are empty.
TABLES = ["users", "items", "records", "interactions"]
COPY_CHUNK = 1 << 20
NULL = "\\N"


class BadRecord(ValueError):
    """A record that cannot be stored: `line` is its first line in the file."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def is_empty() -> bool:
    """No user, item, record or interaction yet."""
    db = database.obj
    return all(db.execute_sql(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() is None for name in TABLES)


class _Numbering:
    """Names and rows numbered in memory, first ids taken after whatever the sequences handed out."""

    def __init__(self, first: dict[str, int]):
        self.users: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self.first = first
        self.records: list[tuple[int, int | None, dt.datetime | None]] = []
        self.next_interaction = first["interactions"]
        self.interactions = 0

    def add(
        self, batch: list[dict], lines: list[int], max_items: int
    ) -> list[tuple[int, int | None, int, int]]:
        try:
            clean = normalize_records(batch, max_items_per_record=max_items)
        except IngestError as exc:
            raise BadRecord(lines[int(exc.field.split(".")[1])], exc.message) from exc
        users, items, first_user, first_item = (
            self.users,
            self.items,
            self.first["users"],
            self.first["items"],
        )
        rows = []
        interaction = self.next_interaction
        for user, names, timestamp in clean:
            record = self.first["records"] + len(self.records)
            user_id = None if user is None else users.setdefault(user, first_user + len(users))
            self.records.append((record, user_id, timestamp))
            for name in names:
                rows.append((interaction, record, user_id, items.setdefault(name, first_item + len(items))))
                interaction += 1
        self.interactions += interaction - self.next_interaction
        self.next_interaction = interaction
        return rows


def load_into_empty(batches: Iterable[tuple[list[dict], list[int]]], *, max_items: int) -> dict | None:
    """Store every batch of (records, their first lines) in one transaction; None (nothing read from
    `batches`) when the database is not empty once the tables are locked. A bad record or line stops
    the load at the batch before it: the batches before it are committed, as batch by batch they would
    be, then the error is raised (BadRecord, or the parser's own ValueError) with `stored` set."""
    db = database.obj
    failure: list[ValueError] = []
    if is_sqlite():
        with sqlite_foreign_keys_off(db), db.atomic("IMMEDIATE"):
            stored = _load(db, batches, max_items, failure)
    else:
        with db.atomic():
            stored = _load(db, batches, max_items, failure)
    if failure:
        failure[0].stored = stored  # type: ignore[attr-defined]
        raise failure[0]
    return stored


def _load(db: peewee.Database, batches, max_items: int, failure: list) -> dict | None:
    lock_in_writers_order(db, TABLES)
    if not is_empty():
        return None
    numbering = _Numbering(_first_ids(db))

    def chunks() -> Iterator[list[tuple]]:
        try:
            for records, lines in batches:
                yield numbering.add(records, lines, max_items)
        except ValueError as exc:  # numbering.add assigns nothing for the batch it refuses
            failure.append(exc)

    load_bare(db, TABLES, lambda: _store(db, numbering, chunks()))
    _move_sequences(db)
    return {"records": len(numbering.records), "interactions": numbering.interactions}


#: The tables a writer of interactions writes after taking the ids lock (the others it writes before).
AFTER_IDS_LOCK = ("records", "interactions")


def lock_in_writers_order(db: peewee.Database, tables: list[str]) -> None:
    """Lock `tables` against writers (readers go on until the indexes are set aside) and take the ids
    lock, in the order API ingest takes them: users and items (and any other table) first, the ids
    lock, then records and interactions. In any other order a concurrent ingest that holds one and
    waits for the other would deadlock with the load."""
    if not is_sqlite():
        before = [f'"{name}"' for name in tables if name not in AFTER_IDS_LOCK]
        if before:
            db.execute_sql(f"LOCK TABLE {', '.join(before)} IN EXCLUSIVE MODE")
    ids_commit_in_order()
    if not is_sqlite():
        after = [f'"{name}"' for name in tables if name in AFTER_IDS_LOCK]
        if after:
            db.execute_sql(f"LOCK TABLE {', '.join(after)} IN EXCLUSIVE MODE")


def _first_ids(db: peewee.Database) -> dict[str, int]:
    if is_sqlite():
        return dict.fromkeys(TABLES, 1)
    cursor = db.cursor()
    first = {}
    for name in TABLES:
        cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id'))")
        first[name] = cursor.fetchone()[0]
    return first


def _store(db: peewee.Database, numbering: _Numbering, chunks: Iterator[list[tuple]]) -> None:
    now = utcnow()
    if is_sqlite():
        cursor = db.cursor()
        for rows in chunks:
            cursor.executemany(
                "INSERT INTO interactions (id, record_id, user_id, item_id) VALUES (?, ?, ?, ?)", rows
            )
        cursor.executemany("INSERT INTO users (name, id) VALUES (?, ?)", numbering.users.items())
        cursor.executemany("INSERT INTO items (name, id) VALUES (?, ?)", numbering.items.items())
        cursor.executemany(
            'INSERT INTO records (id, user_id, "timestamp", created_at) VALUES (?, ?, ?, ?)',
            ((record, user, _sqlite_time(ts), str(now)) for record, user, ts in numbering.records),
        )
        return
    _copy(db, "interactions (id, record_id, user_id, item_id)", (_interaction_lines(rows) for rows in chunks))
    _copy(db, "users (name, id)", _name_lines(numbering.users))
    _copy(db, "items (name, id)", _name_lines(numbering.items))
    stamp = now.isoformat(sep=" ")
    records = (
        f"{record}\t{NULL if user is None else user}\t"
        f"{NULL if ts is None else ts.isoformat(sep=' ')}\t{stamp}\n"
        for record, user, ts in numbering.records
    )
    _copy(db, 'records (id, user_id, "timestamp", created_at)', _joined(records))


def _copy(db: peewee.Database, target: str, chunks: Iterator[str]) -> None:
    stream = _Stream(chunks)
    try:
        db.cursor().copy_expert(f"COPY {target} FROM STDIN", stream, COPY_CHUNK)
    except Exception:
        if stream.error is not None:  # a bad record, not the server's doing: say what it was
            raise stream.error from None
        raise


def _sqlite_time(value: dt.datetime | None) -> str | None:
    return None if value is None else str(value)


def _interaction_lines(rows: list[tuple]) -> str:
    return "".join([f"{i}\t{r}\t{NULL if u is None else u}\t{item}\n" for i, r, u, item in rows])


def _name_lines(ids: dict[str, int]) -> Iterator[str]:
    escaped = (name.replace("\\", "\\\\") for name in ids)
    return _joined(f"{name}\t{number}\n" for name, number in zip(escaped, ids.values(), strict=True))


def _joined(lines: Iterator[str], per_chunk: int = 10_000) -> Iterator[str]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == per_chunk:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


class _Stream:
    """A file for COPY FROM STDIN whose text is made while COPY reads it. An error raised while making
    it (a bad record) is kept and raised again after COPY, whatever psycopg2 made of it."""

    def __init__(self, chunks: Iterator[str]):
        self.chunks, self.buffer, self.error = chunks, b"", None

    def read(self, size: int = -1) -> bytes:
        try:
            while size < 0 or len(self.buffer) < size:
                chunk = next(self.chunks, None)
                if chunk is None:
                    break
                self.buffer += chunk.encode("utf-8")
        except BaseException as exc:
            self.error = exc
            raise
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    readline = read


def _move_sequences(db: peewee.Database) -> None:
    """Next ids after the loaded ones (PostgreSQL; SQLite's rowid follows max(id) by itself)."""
    if is_sqlite():
        return
    for name in TABLES:
        db.execute_sql(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) FROM {name} HAVING count(*) > 0"
        )
