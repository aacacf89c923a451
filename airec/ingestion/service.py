"""Storing records: validation of names, bulk get-or-create of users and items, one transaction per batch.

Names are opaque UTF-8 strings stored exactly as sent: no trimming, no case folding, no escaping.
We reject only what cannot be a sensible identifier: non-strings, the empty string, strings longer
than the limit, and strings with control characters (tabs, newlines, NUL, ...) or lone surrogates,
which break exports, logs and PostgreSQL. Nothing is altered silently.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import peewee

from airec.db import atomic_write, database, is_sqlite
from airec.feedback.kinds import DEFAULT_TYPE
from airec.tables import Interaction, Item, Record, User, utcnow

#: The users.name / items.name columns are VARCHAR(256); longer names would fail on PostgreSQL.
NAME_COLUMN_LENGTH = 256
DEFAULT_MAX_ITEMS_PER_RECORD = 1000

#: Rows per statement, kept well under SQLite's old 999 bound-variable limit.
_VARIABLES_PER_STATEMENT = 900

#: Unicode categories Cc (C0/C1 controls, DEL) and Cs (lone surrogates), as one fast regex.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The first character a name may not hold, or None (name_problem's rule as one regex search).
forbidden_character = _FORBIDDEN.search

T = TypeVar("T")

_RECORD_FIELDS = frozenset({"user", "items", "timestamp"})
#: A record's optional feedback fields (airec.feedback), stored on the record, for all its items.
FEEDBACK_FIELDS = ("type", "value", "recommendation_id")
TYPE_LENGTH = 64


class IngestError(ValueError):
    """Input that cannot be stored; `field` names where it is (e.g. 'records.3.items.0')."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def name_problem(value: Any, *, max_length: int = NAME_COLUMN_LENGTH) -> str | None:
    """Why `value` cannot be a user or item name, or None when it can."""
    if not isinstance(value, str):
        return "Not a valid string."
    if value == "":
        return "Must not be empty."
    limit = min(max_length, NAME_COLUMN_LENGTH)
    if len(value) > limit:
        return f"Longer than {limit} characters."
    bad = _FORBIDDEN.search(value)
    if bad is None:
        return None
    if "\ud800" <= bad.group() <= "\udfff":
        return "Contains an unpaired surrogate (not valid UTF-8)."
    return f"Contains the control character U+{ord(bad.group()):04X}."


def to_utc_naive(value: dt.datetime | None) -> dt.datetime | None:
    """Timestamps are stored as naive UTC; aware values are converted, naive ones taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def normalize_records(
    records: Sequence[dict],
    *,
    max_items_per_record: int = DEFAULT_MAX_ITEMS_PER_RECORD,
    max_name_length: int = NAME_COLUMN_LENGTH,
) -> list[tuple[str | None, list[str], dt.datetime | None]]:
    """Check every record and collapse duplicate items (first occurrence wins, order kept).

    Raises IngestError naming the first bad field, before anything touches the database.
    """
    out = []
    limit, search = min(max_name_length, NAME_COLUMN_LENGTH), _FORBIDDEN.search
    for index, record in enumerate(records):
        where = f"records.{index}"
        if not isinstance(record, dict):
            raise IngestError(where, "Not a record object.")
        if not record.keys() <= _RECORD_FIELDS:
            unknown = set(record) - _RECORD_FIELDS
            raise IngestError(f"{where}.{sorted(unknown)[0]}", "Unknown field.")
        user = record.get("user")
        if user is not None and (type(user) is not str or not 0 < len(user) <= limit or search(user)):
            problem = name_problem(user, max_length=max_name_length)
            if problem:
                raise IngestError(f"{where}.user", problem)
        items = record.get("items")
        if not isinstance(items, (list, tuple)) or not items:
            raise IngestError(f"{where}.items", "Must be a non-empty list of item names.")
        if len(items) > max_items_per_record:
            raise IngestError(f"{where}.items", f"More than {max_items_per_record} items in one record.")
        for position, item in enumerate(items):  # name_problem only when the inlined rules doubt a name
            if type(item) is not str or not 0 < len(item) <= limit or search(item) is not None:
                problem = name_problem(item, max_length=max_name_length)
                if problem:
                    raise IngestError(f"{where}.items.{position}", problem)
        timestamp = record.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, dt.datetime):
            raise IngestError(f"{where}.timestamp", "Not a datetime.")
        out.append((user, list(dict.fromkeys(items)), to_utc_naive(timestamp)))
    return out


def ingest_records(
    records: list[dict],
    *,
    max_items_per_record: int = DEFAULT_MAX_ITEMS_PER_RECORD,
    max_name_length: int = NAME_COLUMN_LENGTH,
) -> dict:
    """Store records (dicts with "items", optional "user" and "timestamp") all-or-nothing.

    Returns {"records": n, "interactions": m}. Needs an open database connection.
    """
    feedback = feedback_of(records)
    if feedback is not None:
        records = [{k: v for k, v in r.items() if k not in FEEDBACK_FIELDS} for r in records]
    clean = normalize_records(
        records, max_items_per_record=max_items_per_record, max_name_length=max_name_length
    )
    if not clean:
        return {"records": 0, "interactions": 0}
    return atomic_write(lambda: _store(clean, feedback))


def feedback_of(records: Sequence[dict]) -> list[tuple] | None:
    """Each record's (type, value, recommendation_id), the default type as None; None when no record
    carries any (the rows are then written exactly as before types existed). IngestError if invalid."""
    if not any(isinstance(r, dict) and r.keys() & set(FEEDBACK_FIELDS) for r in records):
        return None
    out = []
    for index, record in enumerate(records):
        kind, value, rid = (
            record.get(name) if isinstance(record, dict) else None for name in FEEDBACK_FIELDS
        )
        if kind is not None and (name_problem(kind, max_length=TYPE_LENGTH) or len(kind) > TYPE_LENGTH):
            raise IngestError(
                f"records.{index}.type", name_problem(kind, max_length=TYPE_LENGTH) or "Too long."
            )
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise IngestError(f"records.{index}.value", "Must be a finite number.")
        if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 64):
            raise IngestError(f"records.{index}.recommendation_id", "Must be a string of 1 to 64 characters.")
        out.append((None if kind == DEFAULT_TYPE else kind, None if value is None else float(value), rid))
    return out


#: Key of the PostgreSQL advisory lock under which interaction ids are drawn and committed (see
#: ids_commit_in_order); any constant no other code uses (b"airecIDS" as a signed 64-bit integer).
INTERACTION_IDS_LOCK = int.from_bytes(b"airecIDS", "big", signed=True)


def _store(clean: list[tuple[str | None, list[str], dt.datetime | None]], feedback: list | None) -> dict:
    user_ids = get_or_create_ids(User, (user for user, _, _ in clean if user is not None))
    item_ids = get_or_create_ids(Item, (item for _, items, _ in clean for item in items))
    ids_commit_in_order()

    now = utcnow()
    record_rows = [
        {"user": user_ids[user] if user is not None else None, "timestamp": ts, "created_at": now}
        for user, _, ts in clean
    ]
    if feedback is not None:
        for row, (kind, value, rid) in zip(record_rows, feedback, strict=True):
            row.update(type=kind, value=value, recommendation_id=rid)
    record_ids = _insert_returning_ids(Record, record_rows)

    interactions = 0
    pending: list[tuple[int, int | None, int]] = []
    for record_id, (user, items, _) in zip(record_ids, clean, strict=True):
        user_id = user_ids[user] if user is not None else None
        pending.extend((record_id, user_id, item_ids[item]) for item in items)
        interactions += len(items)
    _insert_values(Interaction, ["record_id", "user_id", "item_id"], pending)
    return {"records": len(clean), "interactions": interactions}


def ids_commit_in_order() -> None:
    """On PostgreSQL, take a transaction-scoped advisory lock before drawing record and interaction ids,
    so that ids commit in the order they were drawn. Every writer of interaction rows calls it, in the
    transaction that stores them, before it draws an id: API ingest (here), `airec import`
    (airec.imports) and `airec restore` (airec.backup); one writer without it breaks the promise for all.

    Ids come from a sequence: without this, a batch that drew id 10 can commit after one that drew
    id 11. A reader that saw 11 and resumes "after 11" (GET /api/v1/interactions?after=, the training
    read, "new data since the last run") would skip 10 for good. With the lock, whenever a reader sees
    an id, every lower id has committed or rolled back (and never will appear). The lock is released
    by COMMIT/ROLLBACK, only after the new rows are visible.

    Why not a safe high-water mark (reads bounded by the lowest id still in flight) instead: PostgreSQL
    does not know which ids are in flight (nextval is not transactional, and a transaction's xid may
    be assigned after it drew its ids), so that needs bookkeeping of its own; and every reader would
    have to apply the bound. The lock is one statement on the write path and readers stay plain
    keyset scans. It serializes only the last step of a batch (the record and interaction INSERTs and
    the commit); the user and item get-or-create, where batches can wait on each other, come before
    it, so it is also taken last: no lock cycle can include it. SQLite has one writer at a time
    already (BEGIN IMMEDIATE), so ids commit in order there without it.
    """
    if not is_sqlite():
        database.obj.execute_sql("SELECT pg_advisory_xact_lock(%s)", (INTERACTION_IDS_LOCK,))


def get_or_create_ids(model: type[User] | type[Item], names: Iterable[str]) -> dict[str, int]:
    """name -> id for every name, inserting the missing ones; safe beside concurrent writers and deleters.

    New names are inserted in sorted order. An INSERT waits for a row another open transaction just
    inserted with the same name; two batches that insert overlapping names in opposite orders would
    each hold a row the other waits for (a deadlock, on PostgreSQL). In one global order they cannot:
    the later one waits at the first name they share, holding none the earlier still needs.

    On PostgreSQL every id returned is held with a KEY SHARE row lock until the transaction ends: the
    lock a foreign key check takes, taken here once per distinct name instead of once per stored row
    (interactions have no foreign keys there, migration 014). A deletion of the user or item waits for
    this batch to commit, then sees its rows and keeps the name. A name deleted between our lookup and
    our lock is not returned and is created afresh (a few rounds at most; then the transaction fails
    like a foreign key violation, SQLSTATE 23503, and atomic_write runs it again).
    """
    wanted = list(dict.fromkeys(names))
    ids = _select_ids(model, wanted)
    for _ in range(3):
        missing = sorted(name for name in wanted if name not in ids)
        if not missing:
            return ids
        _insert_values(model, ["name"], [(name,) for name in missing], suffix=" ON CONFLICT DO NOTHING")
        ids.update(_select_ids(model, missing))
    lost = next(name for name in wanted if name not in ids)  # deleted again and again by other writers
    raise ParentDeleted(f"could not create {model._meta.table_name} {lost!r}: deleted meanwhile")


class ParentDeleted(peewee.IntegrityError):
    """A user or item this transaction names was deleted meanwhile: run it again (as for SQLSTATE 23503)."""

    pgcode = "23503"


def _select_ids(model: type[User] | type[Item], names: list[str]) -> dict[str, int]:
    db = database.obj
    table = _q(model._meta.table_name)
    if not is_sqlite():  # one statement, and the rows locked as a foreign key check would
        if not names:
            return {}
        cursor = db.execute_sql(
            f"SELECT t.name, t.id FROM unnest(%s::text[]) AS n(name) JOIN {table} t ON t.name = n.name"
            " ORDER BY t.id FOR KEY SHARE OF t",
            (names,),
        )
        return dict(cursor.fetchall())
    head = f"SELECT {_q('name')}, {_q('id')} FROM {table} WHERE {_q('name')} IN "
    ids: dict[str, int] = {}
    for chunk in chunked(names, _VARIABLES_PER_STATEMENT):
        ids.update(db.execute_sql(head + "(" + ", ".join([db.param] * len(chunk)) + ")", list(chunk)))
    return ids


def _q(identifier: str) -> str:
    quote = database.obj.quote
    return f"{quote[0]}{identifier}{quote[1]}"


def _insert_values(
    model: type[peewee.Model], columns: list[str], rows: list[tuple], *, suffix: str = ""
) -> None:
    """Multi-row INSERT of plain ints/strings, written by hand: peewee's query builder costs ~10x
    more CPU than SQLite spends on these rows. Parameters and quoting come from the database, so
    the same SQL runs on SQLite and PostgreSQL."""
    db = database.obj
    head = f"INSERT INTO {_q(model._meta.table_name)} ({', '.join(_q(c) for c in columns)}) VALUES "
    one = "(" + ", ".join([db.param] * len(columns)) + ")"
    for chunk in chunked(rows, _VARIABLES_PER_STATEMENT // len(columns)):
        db.execute_sql(head + ", ".join([one] * len(chunk)) + suffix, [v for row in chunk for v in row])


def _insert_returning_ids(model: type[Record], rows: list[dict]) -> list[int]:
    """Insert rows and return their ids in row order.

    Ids come from RETURNING (PostgreSQL, SQLite >= 3.35). One statement assigns increasing ids in
    VALUES order, so sorting the returned ids maps them back to the rows. Old SQLite falls back
    to one INSERT per row. The SQL is written by hand like _insert_values (peewee's builder took
    most of a 1,000-record batch's insert time); values go through each field's db_value.
    """
    if is_sqlite() and database.obj.server_version < (3, 35, 0):
        return [model.insert(**row).execute() for row in rows]
    db = database.obj
    columns = [model._meta.fields[name] for name in rows[0]] if rows else []
    head = (
        f"INSERT INTO {_q(model._meta.table_name)} ({', '.join(_q(f.column_name) for f in columns)}) VALUES "
    )
    one = "(" + ", ".join([db.param] * len(columns)) + ")"
    tail = f" RETURNING {_q(model._meta.primary_key.column_name)}"
    values = [[field.db_value(row[field.name]) for field in columns] for row in rows]
    ids: list[int] = []
    for chunk in chunked(values, _VARIABLES_PER_STATEMENT // max(1, len(columns))):
        params = [v for row in chunk for v in row]
        cursor = db.execute_sql(head + ", ".join([one] * len(chunk)) + tail, params)
        ids.extend(sorted(row[0] for row in cursor.fetchall()))
    return ids


def chunked(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
