"""Deleting many rows beside live ingest: small transactions, each holding its locks for milliseconds.

One batch is one statement, `DELETE ... WHERE pk IN (SELECT pk ... LIMIT n) RETURNING ...`, plus the
removal of the parent rows (records) it emptied and of users and items no row names any more, in one
transaction. On SQLite that transaction holds the database's single write lock, so ingest waits at most
one batch (BATCH_ROWS rows: a few milliseconds, well under 50 ms); on PostgreSQL it locks only the rows
it deletes. User and item deletion and retention all go through `delete_batches`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import peewee

from airec.db import atomic_write, database
from airec.ingestion.service import chunked
from airec.privacy.registry import ITEM_ROWS, USER_ROWS, Owned
from airec.tables import Interaction, Item, User

log = logging.getLogger(__name__)

#: Rows deleted per transaction. 1,000 interactions (with their index entries and emptied records)
#: take about 5-15 ms on SQLite and PostgreSQL here: far below the 50 ms a batch may hold a lock.
BATCH_ROWS = 1000
#: Bound variables per statement (SQLite's old limit is 999).
_VARIABLES = 900


@dataclass
class Removed:
    """What deletion batches removed, and how long the longest one held its transaction."""

    counts: dict[str, int] = field(default_factory=dict)
    min_interaction_id: int | None = None
    batches: int = 0
    longest_batch_seconds: float = 0.0

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def saw_interactions(self, ids: Iterable[int]) -> None:
        low = min(ids, default=None)
        if low is not None and (self.min_interaction_id is None or low < self.min_interaction_id):
            self.min_interaction_id = low

    def timed(self, seconds: float) -> None:
        self.batches += 1
        self.longest_batch_seconds = max(self.longest_batch_seconds, seconds)


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


def delete_batches(owned: Owned, where: str, params: Sequence, removed: Removed, *, rows: int = BATCH_ROWS):
    """Delete the rows of `owned.table` matching `where` (SQL over its columns), `rows` per transaction,
    until none is left; each batch also removes the records it emptied and the users and items that no
    registered row names any more. Adds to `removed`."""
    table = owned.table
    name, pk = table._meta.table_name, table._meta.primary_key.column_name
    links = {
        "parent": _fk_column(table, owned.empties),
        "user": _fk_column(table, User),
        "item": _fk_column(table, Item),
    }
    returned = [pk] + [column for column in links.values() if column]
    chosen = f"SELECT {q(pk)} FROM {q(name)} WHERE {where} LIMIT {int(rows)}"
    sql = f"DELETE FROM {q(name)} WHERE {q(pk)} IN ({chosen}) RETURNING {', '.join(q(c) for c in returned)}"

    def batch() -> tuple[list[tuple], int, int, int]:
        deleted = database.execute_sql(sql, list(params)).fetchall()
        columns = {column: [row[i] for row in deleted] for i, column in enumerate(returned)}
        parents = _remove_empty(owned.empties, table, links["parent"], columns.get(links["parent"], []))
        users = prune_orphans(User, USER_ROWS, columns.get(links["user"], []))
        items = prune_orphans(Item, ITEM_ROWS, columns.get(links["item"], []))
        return deleted, parents, users, items

    while True:
        started = time.perf_counter()
        deleted, parents, users, items = atomic_write(batch)
        removed.timed(time.perf_counter() - started)
        if not deleted:
            return
        removed.add(owned.key, len(deleted))
        if owned.empties is not None:
            removed.add(owned.empties._meta.table_name, parents)
        removed.add("orphaned_users", users)
        removed.add("orphaned_items", items)
        if table is Interaction:
            removed.saw_interactions(row[0] for row in deleted)


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
        cursor = database.execute_sql(
            f"DELETE FROM {name} WHERE {pk} IN {_in(chunk)} AND {unused}", list(chunk)
        )
        total += cursor.rowcount
    return total


def prune_orphans(table: type[User] | type[Item], registry: Sequence[Owned], ids: Iterable[int]) -> int:
    """Users (or items) among `ids` that no registered table names any more: they stop counting in stats,
    /listUserCount and /listItemCount as their last row goes."""
    return remove_unreferenced(table, [(owned.table, owned.column) for owned in registry], ids)
