"""Making a database from its URL: SQLite pragmas, a pool of connections, and binding the proxy."""

from __future__ import annotations

import peewee
from playhouse.db_url import connect
from playhouse.pool import PooledDatabase

from airec.db.forking import remember_pool
from airec.db.proxy import database

#: WAL lets readers run beside the one writer; busy_timeout makes a writer wait for the lock
#: instead of failing with "database is locked".
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30000,
    "synchronous": "normal",
    "foreign_keys": 1,
    "cache_size": -32000,
}


def make_database(
    url: str, *, pool_size: int = 0, pool_stale_seconds: float = 300.0, pool_wait_seconds: float = 10.0
) -> peewee.Database:
    """A peewee database from a db_url string (sqlite:///path, postgresql://...).

    With `pool_size` > 0, a playhouse.pool database: closing a connection hands it back for the next
    request or poll instead of ending it (a PostgreSQL connection costs a new server process and ~7 ms;
    an SQLite one re-runs the pragmas and checkpoints the WAL on the last close, ~1 ms). At most
    `pool_size` connections exist per process; a thread that finds them all busy waits up to
    `pool_wait_seconds`, then gets MaxConnectionsExceeded (answered 503). A connection older than
    `pool_stale_seconds` is closed instead of reused, and PostgreSQL ones are checked with a round trip
    before reuse, so a restarted server costs no failed request. A `+pool` URL keeps its own settings.
    """
    scheme, sep, rest = url.partition("://")
    sqlite = scheme.startswith("sqlite")
    kwargs: dict = {"pragmas": SQLITE_PRAGMAS} if sqlite else {}
    if pool_size > 0 and sep and scheme in ("sqlite", "postgres", "postgresql"):
        url = f"{scheme}+pool://{rest}"
        kwargs.update(max_connections=pool_size, stale_timeout=pool_stale_seconds, timeout=pool_wait_seconds)
        if sqlite:
            kwargs["check_same_thread"] = False  # a pooled connection moves between threads, one at a time
    elif sqlite:
        kwargs["timeout"] = 30  # for a pooled database `timeout` is the wait; busy_timeout sets this anyway
    db = connect(url, **kwargs)
    if isinstance(db, PooledDatabase):
        remember_pool(db)
    return db


def init_db(url: str, **pool: float) -> peewee.Database:
    """Bind the proxy's fallback (what code outside any app's scope uses) to a concrete database
    (keyword arguments: make_database's pool settings)."""
    db = make_database(url, **pool)
    database.initialize(db)
    return db
