"""The database proxy, bound at start-up; per-request connections; SQLite pragmas; migrations."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import peewee
from playhouse.db_url import connect

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

T = TypeVar("T")


def make_database(url: str) -> peewee.Database:
    """A peewee database from a db_url string (sqlite:///path, postgresql://...)."""
    if url.startswith("sqlite"):
        return connect(url, pragmas=SQLITE_PRAGMAS, timeout=30)
    return connect(url)


def init_db(url: str) -> peewee.Database:
    """Bind the proxy's fallback (what code outside any app's scope uses) to a concrete database."""
    db = make_database(url)
    database.initialize(db)
    return db


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


def atomic_write(fn: Callable[[], T], *, retries: int = 5) -> T:
    """Run `fn` in one transaction; retry when SQLite reports a lock held past busy_timeout."""
    delay = 0.05
    for attempt in range(retries + 1):
        try:
            if is_sqlite():
                with database.obj.atomic("IMMEDIATE"):
                    return fn()
            with database.atomic():
                return fn()
        except peewee.OperationalError as exc:
            if "locked" not in str(exc).lower() or attempt == retries:
                raise
            log.warning("database locked, retrying write (attempt %d)", attempt + 1)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


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
