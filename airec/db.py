"""The database proxy, bound at start-up; per-request connections; SQLite pragmas; migrations."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import peewee
from playhouse.db_url import connect

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()

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
    """Bind the proxy to a concrete database."""
    db = make_database(url)
    database.initialize(db)
    return db


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


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


def migrate(db: peewee.Database | None = None) -> list[str]:
    """Apply pending migrations from migrations/ (peewee-migrate). Returns the names applied."""
    from peewee_migrate import Router

    target = db or database.obj
    router = Router(target, migrate_dir=str(MIGRATIONS_DIR), logger=logging.getLogger("airec.migrate"))
    todo = list(router.diff)
    if todo:
        router.run()
    return todo
