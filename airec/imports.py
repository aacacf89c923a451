"""Bulk import of interaction files, streamed and stored in batches through ingest_records().

Formats:
  movielens  u.data (tab separated: user item rating timestamp, no header), ratings.csv (header
             userId,movieId,rating,timestamp) or ratings.dat (user::item::rating::timestamp).
  csv        a header with user and item columns, optional timestamp (ISO 8601 or Unix seconds)
             and rating; comma, tab or semicolon separated.
  baskets    one basket per line, no user; comma separated (quotes honoured), or whitespace
             separated for FIMI .dat files and files whose first 100 lines hold no comma.
  jsonl      one record per line in the API shape: {"user": ..., "items": [...], "timestamp": ...}.

On PostgreSQL each batch is loaded with COPY (airec.ingestion.copying.copy_records), on SQLite with multi-row
INSERTs (airec.ingestion.service.ingest_records); both check records the same way.

Consecutive rows of the same user become one record (up to max_items_per_record items), whose
timestamp is the earliest of its rows. Each batch of about `batch_size` interactions is one
transaction: a bad line stops the import with its line number, and earlier batches stay stored.
Importing a file twice stores its records twice. Into an empty database the whole file is one
transaction instead, with indexes and foreign keys built after the load (airec.backup.history): a bad
line then stores nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import marshmallow as ma
from tqdm import tqdm

from airec.backup.history import BadRecord, is_empty, load_into_empty
from airec.db import database, is_sqlite
from airec.errors import describe_validation
from airec.ingestion.copying import copy_records
from airec.ingestion.service import (
    DEFAULT_MAX_ITEMS_PER_RECORD,
    IngestError,
    ingest_records,
    to_utc_naive,
)

log = logging.getLogger(__name__)

FORMATS = ("movielens", "csv", "baskets", "jsonl")
RATED_FORMATS = {"movielens", "csv"}

USER_COLUMNS = {"user", "userid", "user_id"}
ITEM_COLUMNS = {"item", "itemid", "item_id", "movieid", "movie_id"}
TIMESTAMP_COLUMNS = {"timestamp", "ts", "time"}
RATING_COLUMNS = {"rating"}


class ImportFormatError(ValueError):
    """A line that cannot be read or stored; the message starts with file:line."""


@dataclass(slots=True)
class Row:
    """One parsed line: a user's single item (rating formats) or a whole basket/record."""

    line: int
    user: str | None
    items: list[str]
    timestamp: dt.datetime | None = None
    rating: float | None = None
    whole: bool = False  # a complete record (baskets, jsonl): never merged with its neighbours


@dataclass
class _Pending:
    records: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    interactions: int = 0


def import_file(
    path: str | os.PathLike,
    fmt: str,
    *,
    min_rating: float | None = None,
    batch_size: int = 5000,
    progress: bool = True,
    max_items_per_record: int = DEFAULT_MAX_ITEMS_PER_RECORD,
    empty_fast: bool = True,
) -> dict:
    """Import `path` in format `fmt`; returns {"rows", "skipped", "records", "interactions"}.

    `min_rating` keeps only rows rated at least that much (movielens and csv only); `skipped`
    counts the rows it dropped. Into an empty database (and `empty_fast`) the whole file is one
    transaction loaded at disk speed (airec.backup.history); otherwise each batch is one.
    Needs an initialised database (airec.db.init_db).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if min_rating is not None and fmt not in RATED_FORMATS:
        raise ValueError(f"--min-rating needs rating data; format {fmt!r} has no ratings")
    path = os.fspath(path)
    totals = {"rows": 0, "skipped": 0, "records": 0, "interactions": 0}
    opened = database.is_closed()
    if opened:
        database.connect()
    try:
        with (
            open(path, "rb") as handle,
            tqdm(
                total=os.path.getsize(path),
                unit="B",
                unit_scale=True,
                desc=os.path.basename(path),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            lines = _decoded_lines(handle, path, bar)
            rows = _filter(_PARSERS[fmt](lines, path), min_rating, totals, path)
            batches = _batches(_records(rows, max_items_per_record), batch_size)
            stored = _into_empty(batches, path, max_items_per_record) if empty_fast and is_empty() else None
            if stored is not None:
                totals.update(stored)
            for pending in batches:  # a live database (or one that got rows meanwhile): batch by batch
                _flush(pending, totals, path, max_items_per_record)
        if totals["interactions"]:
            refresh_statistics()
    finally:
        if opened:
            database.close()
    log.info("imported %s (%s): %s", path, fmt, totals)
    return totals


def _batches(records: Iterable[tuple[dict, int]], batch_size: int) -> Iterator[_Pending]:
    """Records (with their first lines) in batches of about `batch_size` interactions."""
    pending = _Pending()
    for record, line in records:
        pending.records.append(record)
        pending.lines.append(line)
        pending.interactions += len(record["items"])
        if pending.interactions >= batch_size:
            yield pending
            pending = _Pending()
    if pending.records:
        yield pending


def _into_empty(batches: Iterator[_Pending], path: str, max_items: int) -> dict | None:
    """The whole file into an empty database in one transaction; None when it was not empty after all
    (then nothing was read from `batches`). A bad line is reported as batch by batch: the batches
    before it are stored."""
    try:
        return load_into_empty(((p.records, p.lines) for p in batches), max_items=max_items)
    except BadRecord as exc:
        raise ImportFormatError(
            f"{path}:{exc.line}: {exc.message} ({exc.stored['records']} records stored before this batch)"
        ) from exc


def refresh_statistics() -> None:
    """Tell the query planner what a bulk load added. Right after a large import PostgreSQL's
    autovacuum may not have analysed the tables yet, and without statistics the training read's keyset
    query (id > after ORDER BY id LIMIT n) was planned as a scan of the whole table per batch: reading
    10M imported interactions took over 8 minutes instead of about one and a half."""
    if is_sqlite():
        database.execute_sql("PRAGMA optimize")
    else:
        database.execute_sql('ANALYZE "users", "items", "records", "interactions"')


def _flush(pending: _Pending, totals: dict, path: str, max_items: int) -> None:
    if not pending.records:
        return
    try:
        if is_sqlite():
            stored = ingest_records(pending.records, max_items_per_record=max_items)
        else:
            stored = copy_records(pending.records, max_items_per_record=max_items)
    except IngestError as exc:
        index = int(exc.field.split(".")[1])
        raise ImportFormatError(
            f"{path}:{pending.lines[index]}: {exc.message} "
            f"({totals['records']} records stored before this batch)"
        ) from exc
    totals["records"] += stored["records"]
    totals["interactions"] += stored["interactions"]


def _decoded_lines(handle, path: str, bar: tqdm, block: int = 1 << 20) -> Iterator[str]:
    """UTF-8 lines (a leading BOM dropped, line ends \\n or \\r\\n), advancing the progress bar by bytes
    read. Decoded a block of whole lines at a time (per line, decoding and the bar's update took a
    third of an import's parsing); a block that is not valid UTF-8 is decoded again line by line, to
    name the line."""
    number = 0
    first = True
    while data := handle.read(block):
        if not data.endswith(b"\n"):
            data += handle.readline()
        bar.update(len(data))
        try:
            text = data.decode("utf-8-sig" if first else "utf-8")
        except UnicodeDecodeError:
            _name_bad_line(data, number, path, first)
        first = False
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if "\r" in text:
            lines = [line.rstrip("\r") for line in lines]
        number += len(lines)
        yield from lines


def _name_bad_line(data: bytes, before: int, path: str, first: bool) -> None:
    """Raise ImportFormatError naming the first line of `data` that is not valid UTF-8."""
    for offset, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8-sig" if first and offset == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(f"{path}:{before + offset}: not valid UTF-8 ({exc.reason})") from exc
    raise AssertionError("a block that failed to decode has a line that fails")


def _filter(rows: Iterable[Row], min_rating: float | None, totals: dict, path: str) -> Iterator[Row]:
    for row in rows:
        totals["rows"] += 1
        if min_rating is not None:
            if row.rating is None:
                raise ImportFormatError(f"{path}:{row.line}: no rating to compare with --min-rating")
            if row.rating < min_rating:
                totals["skipped"] += 1
                continue
        yield row


def _records(rows: Iterable[Row], max_items: int) -> Iterator[tuple[dict, int]]:
    """Merge consecutive single-item rows of one user into records; baskets pass through."""
    current: dict | None = None
    seen: set[str] = set()
    first_line = 0
    for row in rows:
        if row.whole:
            if current is not None:
                yield current, first_line
                current = None
            yield _record(row.user, row.items, row.timestamp), row.line
            continue
        item = row.items[0]
        same = current is not None and current.get("user") == row.user
        if same and (item in seen or len(seen) < max_items):
            if item not in seen:
                current["items"].append(item)
                seen.add(item)
            if row.timestamp is not None:
                earlier = current.get("timestamp")
                current["timestamp"] = row.timestamp if earlier is None else min(earlier, row.timestamp)
            continue
        if current is not None:
            yield current, first_line
        current, seen, first_line = _record(row.user, [item], row.timestamp), {item}, row.line
    if current is not None:
        yield current, first_line


def _record(user: str | None, items: list[str], timestamp: dt.datetime | None) -> dict:
    record: dict = {"items": list(items)}
    if user is not None:
        record["user"] = user
    if timestamp is not None:
        record["timestamp"] = timestamp
    return record


# --- parsers --------------------------------------------------------------------------------------


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    return enumerate(lines, start=1)


def _parse_time(text: str, where: str) -> dt.datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return to_utc_naive(dt.datetime.fromtimestamp(float(text), tz=dt.UTC))
        return to_utc_naive(dt.datetime.fromisoformat(text))
    except (ValueError, OverflowError, OSError) as exc:
        raise ImportFormatError(f"{where}: bad timestamp {text!r}") from exc


def _parse_rating(text: str, where: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise ImportFormatError(f"{where}: bad rating {text!r}") from exc


def parse_movielens(lines: Iterable[str], path: str) -> Iterator[Row]:
    """u.data / ratings.dat / ratings.csv: user, item, rating, timestamp."""
    numbered = _numbered(lines)
    for number, line in numbered:
        if not line.strip():
            continue
        if line.lower().startswith("userid"):
            yield from _parse_table(_chain([(number, line)], numbered), path)
            return
        yield from _parse_plain_ratings(_chain([(number, line)], numbered), path)
        return


def _parse_plain_ratings(numbered: Iterable[tuple[int, str]], path: str) -> Iterator[Row]:
    for number, line in numbered:
        if not line.strip():
            continue
        parts = line.split("::") if "::" in line else line.split()
        where = f"{path}:{number}"
        if len(parts) < 3:
            raise ImportFormatError(f"{where}: expected user, item, rating[, timestamp]; got {line!r}")
        timestamp = _parse_time(parts[3], where) if len(parts) > 3 else None
        yield Row(number, parts[0], [parts[1]], timestamp, _parse_rating(parts[2], where))


def parse_csv(lines: Iterable[str], path: str) -> Iterator[Row]:
    """A table with a header naming user and item columns (and optionally timestamp, rating)."""
    yield from _parse_table(_numbered(lines), path)


def _parse_table(numbered: Iterable[tuple[int, str]], path: str) -> Iterator[Row]:
    numbered = iter(numbered)
    header_line = next(((n, line) for n, line in numbered if line.strip()), None)
    if header_line is None:
        return
    number, header = header_line
    delimiter = max(",\t;", key=header.count)
    columns = [name.strip().lower() for name in next(csv.reader([header], delimiter=delimiter))]

    def find(names: set[str], required: bool) -> int | None:
        for index, name in enumerate(columns):
            if name in names:
                return index
        if required:
            raise ImportFormatError(
                f"{path}:{number}: header needs a column named one of {sorted(names)}; got {columns}"
            )
        return None

    user_col, item_col = find(USER_COLUMNS, True), find(ITEM_COLUMNS, True)
    time_col, rating_col = find(TIMESTAMP_COLUMNS, False), find(RATING_COLUMNS, False)
    current = [0]  # the number of the line csv.reader is on (only the last one: a list grew per row)

    def body() -> Iterator[str]:
        for n, line in numbered:
            if line.strip():
                current[0] = n
                yield line

    width, timestamp, rating = len(columns), None, None
    for fields in csv.reader(body(), delimiter=delimiter):
        if len(fields) != width:
            raise ImportFormatError(f"{path}:{current[0]}: expected {width} columns, got {len(fields)}")
        if time_col is not None:
            timestamp = _parse_time(fields[time_col], f"{path}:{current[0]}")
        if rating_col is not None:
            rating = _parse_rating(fields[rating_col], f"{path}:{current[0]}")
        yield Row(current[0], fields[user_col], [fields[item_col]], timestamp, rating)


def parse_baskets(lines: Iterable[str], path: str) -> Iterator[Row]:
    """One basket per line, separated by whitespace for .dat files (FIMI) and for files whose first
    100 non-empty lines hold no comma; otherwise by commas (so "whole milk" stays one item)."""
    numbered = _numbered(lines)
    head: list[tuple[int, str]] = []
    for number, line in numbered:
        if line.strip():
            head.append((number, line))
            if len(head) == 100:
                break
    commas = not path.lower().endswith(".dat") and any("," in line for _, line in head)
    for number, line in _chain(head, numbered):
        if not line.strip():
            continue
        if commas:
            items = [item.strip() for item in next(csv.reader([line])) if item.strip()]
        else:
            items = line.split()
        yield Row(number, None, items, whole=True)


def parse_jsonl(lines: Iterable[str], path: str) -> Iterator[Row]:
    """One API-shaped record per line, checked by the same schema as POST /api/v1/interactions."""
    from airec.ingestion.schemas import RecordSchema

    schema = RecordSchema()
    for number, line in _numbered(lines):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = schema.load(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"{where}: not JSON ({exc.msg})") from exc
        except ma.ValidationError as exc:
            raise ImportFormatError(f"{where}: {describe_validation(exc.messages)}") from exc
        yield Row(number, record.get("user"), record["items"], record.get("timestamp"), whole=True)


def _chain(first: list, rest: Iterable) -> Iterator:
    yield from first
    yield from rest


_PARSERS = {"movielens": parse_movielens, "csv": parse_csv, "baskets": parse_baskets, "jsonl": parse_jsonl}
