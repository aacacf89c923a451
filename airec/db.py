"""The database proxy, bound at start-up; a pool of connections; SQLite pragmas; retried writes;
migrations."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import peewee
from playhouse.db_url import connect
from playhouse.pool import PooledDatabase

from airec import scope

log = logging.getLogger(__name__)


class AppDatabase(peewee.DatabaseProxy):
    """The proxy every table uses: the database of the app whose request or thread is running
    (airec.scope), else the one `init_db` bound last. Two apps never share a binding."""

    __slots__ = ("_fallback",)

    @property
    def obj(self) -> peewee.Database | None:
        bound = scope.current()
        return bound.database if bound is not None else self._fallback

    @obj.setter
    def obj(self, value: peewee.Database | None) -> None:
        self._fallback = value

    def __setattr__(self, attr: str, value) -> None:
        if attr not in ("obj", "_fallback", "_callbacks", "_Model"):
            raise AttributeError("Cannot set attribute on proxy.")
        object.__setattr__(self, attr, value)


database = AppDatabase()

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: WAL lets readers run beside the one writer; busy_timeout makes a writer wait for the lock
#: instead of failing with "database is locked".
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 30000,
    "synchronous": "normal",
    "foreign_keys": 1,
    "cache_size": -32000,
}

#: SQLSTATEs after which PostgreSQL has rolled the transaction back and running it again can succeed.
RETRYABLE_SQLSTATES = {"40P01": "deadlock", "40001": "serialization failure"}

T = TypeVar("T")

#: Every pool this process made: a forked child must forget their connections (see _after_fork).
_pools: weakref.WeakSet[PooledDatabase] = weakref.WeakSet()
#: Connections inherited from the parent process, kept referenced and never closed (see _after_fork).
_inherited: list = []


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
        _pools.add(db)
    return db


def init_db(url: str, **pool: float) -> peewee.Database:
    """Bind the proxy's fallback (what code outside any app's scope uses) to a concrete database
    (keyword arguments: make_database's pool settings)."""
    db = make_database(url, **pool)
    database.initialize(db)
    return db


def _after_fork() -> None:
    """In a forked child (gunicorn workers), forget every connection the parent opened.

    The child shares their sockets with the parent, so it must neither use them nor close them: a
    PostgreSQL connection closed here, even by garbage collection, would end the parent's session.
    They stay referenced, unused, for the child's lifetime; the child opens its own.
    """
    for db in list(_pools):
        with db._pool_lock:  # private state of playhouse.pool; no public way to drop without closing
            _inherited.extend(conn for _, _, conn in db._connections)
            _inherited.extend(pooled.connection for pooled in db._in_use.values())
        db._pool_lock = threading.RLock()  # a lock held by another parent thread is never released here
        db._pool_available = threading.Condition(db._pool_lock)
        if db.thread_safe:
            db._lock = threading.Lock()
        db.dispose()
    bound = database.obj
    if bound is not None and not isinstance(bound, PooledDatabase) and not bound.is_closed():
        _inherited.append(bound._state.conn)
        bound.dispose()


os.register_at_fork(after_in_child=_after_fork)


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


def db_now() -> peewee.Node:
    """The database server's clock (UTC), as an SQL expression. Leases and heartbeats are compared on
    one clock, whichever host writes them: each host's own clock may be off by more than a lease."""
    if is_sqlite():
        return peewee.fn.strftime("%Y-%m-%d %H:%M:%f", "now")
    return peewee.SQL("(now() AT TIME ZONE 'UTC')")


def db_ago(seconds: float) -> peewee.Node:
    """The database clock minus `seconds`, as an SQL expression."""
    if is_sqlite():
        return peewee.fn.strftime("%Y-%m-%d %H:%M:%f", "now", f"-{float(seconds):.3f} seconds")
    return peewee.SQL(f"((now() AT TIME ZONE 'UTC') - interval '{float(seconds):.3f} seconds')")


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


def atomic_write(fn: Callable[[], T], *, retries: int = 5) -> T:
    """Run `fn` in one transaction, and run the whole transaction again (up to `retries` times, after
    a random pause that doubles each time) when it failed only because of other writers: SQLite's lock
    held past busy_timeout, a PostgreSQL deadlock (40P01) or serialization failure (40001). Those
    leave nothing behind, so `fn` starts over on a clean slate. Inside an outer transaction nothing is
    retried here: only the outermost transaction can be run again."""
    outermost = not database.in_transaction()
    delay = 0.05
    for attempt in range(retries + 1):
        try:
            if is_sqlite():
                with database.obj.atomic("IMMEDIATE"):
                    return fn()
            with database.atomic():
                return fn()
        except Exception as exc:  # the driver's own class when peewee has no wrapper for it
            reason = retry_reason(exc)
            if reason is None or not outermost or attempt == retries:
                raise
            log.warning("%s, retrying the transaction (attempt %d)", reason, attempt + 1)
            time.sleep(random.uniform(delay / 2, delay))  # jitter: the writers that collided part ways
            delay *= 2
    raise AssertionError("unreachable")


def retry_reason(exc: BaseException) -> str | None:
    """Why a failed transaction may be run again, or None when it must not."""
    if isinstance(exc, peewee.OperationalError) and "locked" in str(exc).lower() and is_sqlite():
        return "database locked"
    for cause in (exc, *exc.args[:1], exc.__cause__, exc.__context__):
        code = getattr(cause, "pgcode", None)
        if code in RETRYABLE_SQLSTATES:
            return RETRYABLE_SQLSTATES[code]
    return None


class SchemaGate:
    """Migrations run at start-up, or, if the database is unreachable then, on the first request after
    it returns. So the process starts (and /healthz answers) with the database down: no crash loop."""

    retry_seconds = 2.0

    def __init__(self, db: peewee.Database):
        self.db = db
        self.ready = False
        self._lock = threading.Lock()
        self._next_try = 0.0
        if not self.try_now():
            log.error("database unreachable at start-up; serving 503 until it returns")

    def try_now(self) -> bool:
        with self._lock:
            if self.ready:
                return True
            was_closed = self.db.is_closed()
            try:
                migrate(self.db)
                self.ready = True
            except (peewee.OperationalError, peewee.InterfaceError) as exc:
                log.warning("cannot migrate the database yet: %s", exc)
                self._next_try = time.monotonic() + self.retry_seconds
            finally:
                if was_closed and not self.db.is_closed():
                    self.db.close()
            return self.ready

    def require(self) -> None:
        """Raise OperationalError (answered 503 + Retry-After) until the schema is in place."""
        if self.ready:
            return
        if time.monotonic() < self._next_try or not self.try_now():
            raise peewee.OperationalError("the database schema is not ready yet")


def migrate(db: peewee.Database | None = None) -> list[str]:
    """Apply pending migrations from migrations/ (peewee-migrate). Returns the names applied."""
    from peewee_migrate import Router

    target = db or database.obj
    router = Router(target, migrate_dir=str(MIGRATIONS_DIR), logger=logging.getLogger("airec.migrate"))
    todo = list(router.diff)
    if todo:
        router.run()
    return todo
