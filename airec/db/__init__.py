"""The database: the proxy every table uses (proxy), making and binding a database with its pool
(engine), forgetting a parent's connections after a fork (forking), the server's clock (clock), hot
reads compiled once (hot_reads), retried writes (retry) and migrations (migrations).

This file only re-exports, so that `from airec.db import database, atomic_write` keeps working."""

from airec.db.clock import db_ago, db_now
from airec.db.engine import SQLITE_PRAGMAS, init_db, make_database
from airec.db.hot_reads import compiled, fetch
from airec.db.migrations import MigrationsMissing, SchemaGate, migrate, migrations_dir
from airec.db.proxy import AppDatabase, database, is_sqlite
from airec.db.retry import RETRYABLE_SQLSTATES, atomic_write, retry_reason

__all__ = [
    "RETRYABLE_SQLSTATES",
    "SQLITE_PRAGMAS",
    "AppDatabase",
    "MigrationsMissing",
    "SchemaGate",
    "atomic_write",
    "compiled",
    "database",
    "db_ago",
    "db_now",
    "fetch",
    "init_db",
    "is_sqlite",
    "make_database",
    "migrate",
    "migrations_dir",
    "retry_reason",
]
