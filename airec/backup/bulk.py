"""Loading tables at disk speed: their indexes and foreign keys set aside during the load and built again
after it, in the same transaction, so other sessions never see a table without them.

Why: storing a row into an indexed table with foreign keys costs a B-tree insertion per index and, on
PostgreSQL, a trigger with a lookup per foreign key; building an index once over the loaded rows is a
sort. Measured on PostgreSQL 15 here: COPY into the indexed `interactions` table ~19,000 rows/s, into
the bare table and indexing afterwards ~178,000 (issue 21). On SQLite the foreign keys are switched off
for the load (they cannot change inside a transaction) and checked once, with `PRAGMA
foreign_key_check`, before the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import peewee

T = TypeVar("T")


class ForeignKeyViolation(ValueError):
    """Loaded rows name a parent row that does not exist."""


@contextmanager
def sqlite_foreign_keys_off(db: peewee.Database) -> Iterator[None]:
    """Around a whole SQLite transaction: the pragma is a no-op inside one."""
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")


def load_bare(db: peewee.Database, tables: list[str], load: Callable[[], T]) -> T:
    """Inside an open transaction: set aside the indexes and constraints of `tables` (PostgreSQL: all
    foreign keys that touch them too), run `load`, build them again and check the foreign keys. The
    caller commits, or rolls back on any error (the definitions come back with the rollback)."""
    if isinstance(db, peewee.SqliteDatabase):
        return _sqlite_load_bare(db, tables, load)
    return _postgres_load_bare(db, tables, load)


def _sqlite_load_bare(db: peewee.Database, tables: list[str], load: Callable[[], T]) -> T:
    marks = ", ".join("?" * len(tables))
    indexes = db.execute_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        f" AND tbl_name IN ({marks})",
        tables,
    ).fetchall()
    for name, _ in indexes:
        db.execute_sql(f'DROP INDEX "{name}"')
    result = load()
    for _, sql in indexes:
        db.execute_sql(sql)
    broken = db.execute_sql("PRAGMA foreign_key_check").fetchone()
    if broken is not None:
        raise ForeignKeyViolation(f"table {broken[0]} row {broken[1]} names a missing row of {broken[2]}")
    return result


def _postgres_load_bare(db: peewee.Database, tables: list[str], load: Callable[[], T]) -> T:
    cursor = db.cursor()
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = ANY(%s)"
        " AND t.relnamespace = current_schema()::regnamespace AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
        " WHERE c.conindid = x.indexrelid AND c.contype IN ('p', 'u', 'x'))",
        (tables,),
    )
    indexes = cursor.fetchall()  # plain indexes (peewee's unique ones included), not a constraint's own
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype FROM pg_constraint"
        " WHERE contype IN ('p', 'u', 'f') AND connamespace = current_schema()::regnamespace"
        " AND (conrelid::regclass::text = ANY(%s) OR (contype = 'f' AND confrelid::regclass::text = ANY(%s)))"
        " ORDER BY contype = 'f' DESC",
        (_quoted(tables), _quoted(tables)),
    )
    constraints = cursor.fetchall()
    for table, name, _, _ in constraints:  # foreign keys first: they depend on the keys
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    result = load()
    for table, name, definition, kind in constraints:
        if kind != "f":
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)
    for table, name, definition, kind in constraints:
        if kind == "f":
            _add_foreign_key(cursor, table, name, definition)
    for table in tables:
        if table in UNCONSTRAINED_REFERENCES:
            _check_references(cursor, table, UNCONSTRAINED_REFERENCES[table])
    return result


#: References PostgreSQL holds no foreign key for (migration 014: the writers keep them valid, once per
#: batch); a load checks them itself, with the one anti-join ADD FOREIGN KEY would run.
UNCONSTRAINED_REFERENCES = {
    "interactions": (("record_id", "records"), ("user_id", "users"), ("item_id", "items")),
}


def _check_references(cursor, table: str, references: tuple[tuple[str, str], ...]) -> None:
    """One scan of `table` joined to each parent; the statistics first, so the just-loaded table is
    planned as the large table it is (hash joins, not a lookup per row)."""
    cursor.execute(f'ANALYZE "{table}", ' + ", ".join(f'"{parent}"' for _, parent in references))
    pairs = list(enumerate(references))
    joins = " ".join(f'LEFT JOIN "{parent}" p{n} ON p{n}.id = c."{column}"' for n, (column, parent) in pairs)
    missing = " OR ".join(f'(c."{column}" IS NOT NULL AND p{n}.id IS NULL)' for n, (column, _) in pairs)
    columns = ", ".join(f'c."{column}"' for column, _ in references)
    cursor.execute(f'SELECT {columns} FROM "{table}" c {joins} WHERE {missing} LIMIT 1')
    row = cursor.fetchone()
    if row is None:
        return
    for (column, parent), value in zip(references, row, strict=True):
        if value is not None and not _exists(cursor, parent, value):
            raise ForeignKeyViolation(f"{table}: {column} {value} names no row of {parent}")
    raise AssertionError("a row that failed the check names a missing parent")


def _exists(cursor, table: str, key: int) -> bool:
    cursor.execute(f'SELECT 1 FROM "{table}" WHERE id = %s', (key,))
    return cursor.fetchone() is not None


def _add_foreign_key(cursor, table: str, name: str, definition: str) -> None:
    try:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    except Exception as exc:
        if getattr(exc, "pgcode", None) != "23503":
            raise
        raise ForeignKeyViolation(f"{table}: {str(exc).splitlines()[0]}") from exc


def _quoted(tables: list[str]) -> list[str]:
    """Table names as regclass::text writes them (quoted only when they need it)."""
    return [name if name.isidentifier() and name.islower() else f'"{name}"' for name in tables]
