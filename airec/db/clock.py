"""The database server's clock, as SQL expressions."""

from __future__ import annotations

import peewee

from airec.db.proxy import is_sqlite


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
