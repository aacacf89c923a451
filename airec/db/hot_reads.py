"""Small reads that dashboards poll, with their SQL compiled once per database."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

import peewee

from airec.db.proxy import database

#: SQL text of hot reads, per database: its placeholders ('?' or '%s') are the database's own.
_compiled: weakref.WeakKeyDictionary[peewee.Database, dict[Hashable, tuple[str, tuple, list]]] = (
    weakref.WeakKeyDictionary()
)


def _compile(key: Hashable, build: Callable[[], peewee.Query]) -> tuple[str, tuple, list]:
    db = database.obj
    cache = _compiled.get(db)
    if cache is None:
        cache = _compiled.setdefault(db, {})
    hit = cache.get(key)
    if hit is None:
        query = build()
        sql, params = query.sql()
        if len(cache) >= 256:
            cache.clear()
        hit = cache[key] = (sql, tuple(params), list(getattr(query, "selected_columns", None) or ()))
    return hit


def compiled(key: Hashable, build: Callable[[], peewee.Query]) -> tuple[str, tuple]:
    """The SQL and parameters of `build()` on the current database, compiled once per database.

    Peewee builds a query's text anew on every execution, which costs more than running it for the
    small reads dashboards poll. `key` names the query and every value it depends on (a few distinct
    ones: the cache is cleared past 256 entries). Run the result with execute_sql."""
    sql, params, _ = _compile(key, build)
    return sql, params


def fetch(key: Hashable, build: Callable[[], peewee.ModelSelect]) -> list:
    """The rows of a hot read as model instances: SQL from `compiled`, each value converted by its
    field as peewee converts it, without peewee's resolving of the cursor's columns on every call.
    `build` selects plain fields of one model."""
    sql, params, fields = _compile(key, build)
    model = fields[0].model
    rows = []
    for values in database.execute_sql(sql, params):
        data = {field.name: field.python_value(v) for field, v in zip(fields, values, strict=True)}
        row = model(__no_default__=1, **data)
        row._dirty.clear()  # as peewee leaves a row it read
        rows.append(row)
    return rows
