"""Deleting many rows beside live ingest: small transactions, each holding its locks for milliseconds.

One batch is `SELECT pk ... LIMIT n` then `DELETE ... WHERE pk IN (those) RETURNING ...`, plus the
removal of the parent rows (records) it emptied and of users and items no row names any more, in one
transaction. On SQLite that transaction holds the database's single write lock, so ingest waits at most
one batch (sized to hold it about TARGET_BATCH_SECONDS, well under 50 ms); on PostgreSQL it locks only the
rows it deletes. User and item deletion and retention all go through `delete_batches`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import peewee

from airec.db import atomic_write, database, is_sqlite
from airec.ingestion.service import chunked
from airec.privacy.registry import ITEM_ROWS, USER_ROWS, Owned
from airec.tables import Interaction, Item, User

log = logging.getLogger(__name__)

#: How long a batch should hold its transaction: well under the 50 ms a batch may hold a lock, so that
#: a batch slower than the last one (a checkpoint, a busy CPU) still stays under it.
TARGET_BATCH_SECONDS = 0.020
#: The most rows per batch (one statement's bound variables), the fewest, and the first batch's size
#: (before any has been timed): ~20 ms on an idle machine is about 900 rows of interactions here.
BATCH_ROWS = 900
MIN_BATCH_ROWS = 20
FIRST_BATCH_ROWS = 300
#: A batch grows to at most this many times the last one: one fast batch is not trusted at once.
GROWTH = 1.5
#: Ids selected per scan of the owner's index (then deleted BATCH_ROWS at a time): bounds memory.
SELECTED_AT_ONCE = 100_000
#: Bound variables per statement (SQLite's old limit is 999).
_VARIABLES = 900


@dataclass
class Removed:
    """What deletion batches removed, and how long the longest one held its transaction."""

    counts: dict[str, int] = field(default_factory=dict)
    min_interaction_id: int | None = None
    batches: int = 0
    longest_batch_seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)
    users: set[int] = field(default_factory=set)  # users and items the deleted rows named: candidates
    items: set[int] = field(default_factory=set)  # for prune_candidates

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def saw_interactions(self, ids: Iterable[int]) -> None:
        low = min(ids, default=None)
        if low is not None and (self.min_interaction_id is None or low < self.min_interaction_id):
            self.min_interaction_id = low

    def timed(self, seconds: float) -> None:
        self.batches += 1
        self.longest_batch_seconds = max(self.longest_batch_seconds, seconds)
        self.batch_seconds.append(seconds)

    def percentile_batch_seconds(self, fraction: float) -> float:
        ordered = sorted(self.batch_seconds)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    def median_batch_seconds(self) -> float:
        ordered = sorted(self.batch_seconds)
        return ordered[len(ordered) // 2] if ordered else 0.0


def q(identifier: str) -> str:
    quote = database.obj.quote
    return f"{quote[0]}{identifier}{quote[1]}"


def _in(values: Sequence) -> str:
    return "(" + ", ".join([database.obj.param] * len(values)) + ")"


def _fk_column(table: type[peewee.Model], target: type[peewee.Model] | None) -> str | None:
    """The column of `table` that references `target`, if any."""
    for f in table._meta.sorted_fields:
        if isinstance(f, peewee.ForeignKeyField) and f.rel_model is target:
            return f.column_name
    return None


def next_batch_rows(planned: int, done: int, seconds: float, *, most: int = BATCH_ROWS) -> int:
    """The next batch's size after one of `planned` rows that deleted `done` (fewer at the end of a
    selection) in `seconds`: as many as TARGET_BATCH_SECONDS holds at that rate, shrinking at once when
    it was slow, growing to at most GROWTH times the plan when it was fast."""
    grown = min(most, max(MIN_BATCH_ROWS, int(planned * GROWTH)))
    if seconds <= 0 or done <= 0:
        return grown
    return max(MIN_BATCH_ROWS, min(grown, int(done * TARGET_BATCH_SECONDS / seconds)))


def delete_batches(owned: Owned, where: str, params: Sequence, removed: Removed, *, rows: int = BATCH_ROWS):
    """Delete the rows of `owned.table` matching `where` (SQL over its columns), at most `rows` per
    transaction, until none is left; each batch also removes the records it emptied. Batches are sized by
    time (next_batch_rows): under load a row takes longer to delete, and a batch of a fixed size held
    its locks up to 66-124 ms instead of the usual 16-18. The users and items the rows named are kept in
    `removed` as candidates for `prune_candidates`. Adds to `removed`."""
    table = owned.table
    name, pk = table._meta.table_name, table._meta.primary_key.column_name
    parent = _fk_column(table, owned.empties)
    links = [column for column in (parent, _fk_column(table, User), _fk_column(table, Item)) if column]
    choose = f"SELECT {q(pk)} FROM {q(name)} WHERE {where} LIMIT {int(SELECTED_AT_ONCE)}"
    returning = f" RETURNING {', '.join(q(c) for c in [pk, *links])}"

    def batch(ids: Sequence[int]) -> tuple[list[tuple], int]:
        held[0] = time.perf_counter()
        _async_commit()
        delete = f"DELETE FROM {q(name)} WHERE {q(pk)} IN {_in(ids)}" + returning
        deleted = database.execute_sql(delete, list(ids)).fetchall()
        emptied = [row[1] for row in deleted] if parent else []  # links start with the parent
        return deleted, _remove_empty(owned.empties, table, parent, emptied)

    held = [0.0]  # when this batch's transaction began to hold locks (after waiting for SQLite's)
    size = min(rows, FIRST_BATCH_ROWS)
    while True:
        # The ids first, many at a time and outside any transaction (one index scan, no lock), then
        # deleted by primary key a batch per transaction; again until the selection finds none (rows
        # that arrived meanwhile).
        chosen = [row[0] for row in database.execute_sql(choose, list(params)).fetchall()]
        if not chosen:
            return
        start = 0
        while start < len(chosen):
            ids = chosen[start : start + size]
            start += len(ids)
            deleted, parents = atomic_write(lambda ids=ids: batch(ids))
            seconds = time.perf_counter() - held[0]
            removed.timed(seconds)
            _count(owned, table, links, deleted, parents, removed)
            size = next_batch_rows(size, len(ids), seconds, most=rows)


def _count(
    owned: Owned, table, links: list[str], deleted: list[tuple], parents: int, removed: Removed
) -> None:
    removed.add(owned.key, len(deleted))
    if owned.empties is not None:
        removed.add(owned.empties._meta.table_name, parents)
    user, item = _fk_column(table, User), _fk_column(table, Item)
    for position, column in enumerate(links, start=1):
        if column == user:
            removed.users.update(row[position] for row in deleted)
        elif column == item:
            removed.items.update(row[position] for row in deleted)
    if table is Interaction:
        removed.saw_interactions(row[0] for row in deleted)


def _async_commit() -> None:
    """On PostgreSQL, a batch's commit does not wait for its WAL to reach the disk (~20 ms each here).
    The deletion's last transaction (the user's row and the ledger) commits synchronously, which flushes
    every batch before it: once the route answers, the whole deletion is durable. A crash in between
    loses only batches the caller never saw confirmed, and the deletion can simply run again."""
    if not is_sqlite():
        database.execute_sql("SET LOCAL synchronous_commit TO OFF")


def prune_candidates(removed: Removed) -> None:
    """Delete the users and items the deleted rows named that no registered row names any more (they
    stop counting in stats, /listUserCount and /listItemCount), `_VARIABLES` per transaction."""
    for table, registry, ids, key in (
        (User, USER_ROWS, removed.users, "orphaned_users"),
        (Item, ITEM_ROWS, removed.items, "orphaned_items"),
    ):
        for chunk in chunked(sorted(i for i in ids if i is not None), _VARIABLES):
            removed.add(
                key, atomic_write(lambda chunk=chunk, t=table, r=registry: prune_orphans(t, r, chunk))
            )
        ids.clear()


def _remove_empty(parent: type[peewee.Model] | None, child: type[peewee.Model], column, ids: list) -> int:
    """Delete the rows of `parent` among `ids` that no row of `child` references any more."""
    if parent is None or column is None or not ids:
        return 0
    return remove_unreferenced(parent, [(child, column)], ids)


def remove_unreferenced(
    table: type[peewee.Model], referrers: Sequence[tuple[type[peewee.Model], str]], ids: Iterable[int]
) -> int:
    """Delete the rows of `table` among `ids` that no (referrer table, column) points at; returns how many."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return 0
    name, pk = q(table._meta.table_name), q(table._meta.primary_key.column_name)
    unused = " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM {q(ref._meta.table_name)} r WHERE r.{q(column)} = {name}.{pk})"
        for ref, column in referrers
    )
    total = 0
    for chunk in chunked(wanted, _VARIABLES):
        # Most candidates are still named elsewhere: find the few that are not before locking anything.
        found = database.execute_sql(
            f"SELECT {pk} FROM {name} WHERE {pk} IN {_in(chunk)} AND {unused}", chunk
        )
        unnamed = sorted(row[0] for row in found.fetchall())
        if not unnamed:
            continue
        if not is_sqlite():
            # Lock them first. An ingest that already inserted a row naming one holds a key share lock
            # on it: this waits for its commit, and the NOT EXISTS below (a new statement, so a new
            # snapshot) then sees that row and keeps the candidate. Without the lock the delete would
            # wait the same, then cascade to the row just committed: a lost interaction. An ingest that
            # only looked the id up fails its foreign key check instead, and atomic_write runs it again
            # (SQLSTATE 23503), creating the name afresh.
            lock = f"SELECT {pk} FROM {name} WHERE {pk} IN {_in(unnamed)} ORDER BY {pk} FOR UPDATE"
            database.execute_sql(lock, unnamed)
        cursor = database.execute_sql(
            f"DELETE FROM {name} WHERE {pk} IN {_in(unnamed)} AND {unused}", unnamed
        )
        total += cursor.rowcount
    return total


def prune_orphans(table: type[User] | type[Item], registry: Sequence[Owned], ids: Iterable[int]) -> int:
    """Users (or items) among `ids` that no registered table names any more: they stop counting in stats,
    /listUserCount and /listItemCount as their last row goes."""
    referrers = [(owned.table, owned.column) for owned in registry if not owned.by_name]
    return remove_unreferenced(table, referrers, ids)
