"""The tables a dump holds, found in the database (not a hand list), and their values in COPY text form.

Every value is written as PostgreSQL's COPY text format writes it (NULL as \\N; backslash, tab, newline
and carriage return escaped; booleans t/f; timestamps `YYYY-MM-DD HH:MM:SS[.ffffff]`; bytes as \\x and
hex), so PostgreSQL reads and writes a table's member with COPY alone and SQLite goes through the small
converters below.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import peewee

from airec.db import migrations_dir

#: peewee-migrate's own table: a restored database keeps the history its own migrations wrote.
MIGRATIONS_TABLE = "migratehistory"
NULL = "\\N"


class Kind(StrEnum):
    """How a column's values are written in a dump (one kind per column, from its declared type)."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    BLOB = "blob"
    TEXT = "text"


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[tuple[str, Kind]]
    order_by: list[str]  # the primary key's columns (a stable order for the dump and its checksum)
    serial: str | None  # the integer primary key a sequence feeds, reset after a restore


def kind_of(declared: str) -> Kind:
    """The kind of a column from its type as either engine declares it (integer, VARCHAR(256), ...)."""
    text = declared.lower()
    if "int" in text or text == "serial":
        return Kind.INT
    if "bool" in text:
        return Kind.BOOL
    if "timestamp" in text or "datetime" in text:
        return Kind.DATETIME
    if any(word in text for word in ("real", "double", "float", "numeric", "decimal")):
        return Kind.FLOAT
    if "blob" in text or "bytea" in text:
        return Kind.BLOB
    return Kind.TEXT


def data_tables(db: peewee.Database) -> list[Table]:
    """Every table of the database but the migrations' history (and SQLite's own sqlite_* tables, such
    as the planner's statistics), parents before children."""
    names = [name for name in db.get_tables() if name != MIGRATIONS_TABLE and not name.startswith("sqlite_")]
    tables = {}
    for name in names:
        columns = [(c.name, kind_of(c.data_type)) for c in db.get_columns(name)]
        keys = db.get_primary_keys(name) or [columns[0][0]]
        kinds = dict(columns)
        serial = keys[0] if len(keys) == 1 and kinds[keys[0]] is Kind.INT else None
        tables[name] = Table(name, columns, keys, serial)
    parents = {name: {fk.dest_table for fk in db.get_foreign_keys(name)} - {name} for name in names}
    ordered: list[Table] = []
    while parents:
        ready = sorted(name for name, needs in parents.items() if not needs & parents.keys())
        ready = (
            ready or sorted(parents)[:1]
        )  # a cycle of foreign keys: any order, they are checked at the end
        for name in ready:
            ordered.append(tables[name])
            del parents[name]
    return ordered


def applied_schema(db: peewee.Database) -> str:
    """The latest migration applied to this database (e.g. 009_item_catalogue), or '' for none."""
    if MIGRATIONS_TABLE not in db.get_tables():
        return ""
    names = [row[0] for row in db.execute_sql(f'SELECT name FROM "{MIGRATIONS_TABLE}"')]
    return max(names, key=schema_number, default="")


def code_schema() -> str:
    """The latest migration this code knows."""
    names = [path.stem for path in migrations_dir().glob("[0-9][0-9][0-9]_*.py")]
    return max(names, key=schema_number, default="")


def schema_number(name: str) -> int:
    match = re.match(r"(\d+)", name)
    return int(match.group(1)) if match else -1


# --- values: python (as SQLite hands them) <-> COPY text ------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "b": "\b", "f": "\f", "v": "\v"}


def _text_out(value) -> str:
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value).translate(_ESCAPES)


def _bool_out(value) -> str:
    if isinstance(value, str):
        return "t" if value.lower() in ("1", "t", "true") else "f"
    return "t" if value else "f"


def _blob_out(value) -> str:
    return "\\\\x" + (value if isinstance(value, bytes) else bytes(value)).hex()


ENCODERS: dict[Kind, Callable] = {
    Kind.INT: str,
    Kind.FLOAT: repr,
    Kind.BOOL: _bool_out,
    Kind.DATETIME: _text_out,
    Kind.BLOB: _blob_out,
    Kind.TEXT: _text_out,
}


def _text_in(field: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(1)), field) if "\\" in field else field


def _datetime_in(field: str) -> str:
    """As peewee stores datetimes in SQLite (str of a naive datetime), whatever digits PostgreSQL wrote."""
    if len(field) in (19, 26):
        return field
    return str(dt.datetime.fromisoformat(field))


def _blob_in(field: str) -> bytes:
    return bytes.fromhex(field[3:])  # \\x + hex, its backslash escaped


DECODERS: dict[Kind, Callable] = {
    Kind.INT: int,
    Kind.FLOAT: float,
    Kind.BOOL: lambda field: field == "t",
    Kind.DATETIME: _datetime_in,
    Kind.BLOB: _blob_in,
    Kind.TEXT: _text_in,
}


def line_encoder(kinds: list[Kind]) -> Callable[[tuple], str]:
    """A function from a row (as the SQLite driver returns it) to its COPY text line."""
    encoders = [ENCODERS[k] for k in kinds]
    if all(k is Kind.INT for k in kinds):
        return lambda row: "\t".join([NULL if v is None else str(v) for v in row]) + "\n"
    return lambda row: (
        "\t".join([NULL if v is None else f(v) for f, v in zip(encoders, row, strict=True)]) + "\n"
    )


def line_decoder(kinds: list[Kind]) -> Callable[[str], tuple]:
    """A function from a COPY text line (without its newline) to a row of SQLite parameters."""
    decoders = [DECODERS[k] for k in kinds]
    if all(k is Kind.INT for k in kinds):
        return lambda line: tuple([None if v == NULL else int(v) for v in line.split("\t")])
    return lambda line: tuple(
        [None if v == NULL else f(v) for f, v in zip(decoders, line.split("\t"), strict=True)]
    )
