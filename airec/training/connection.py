"""A run's thread across a database outage: tell "unreachable" from other errors, wait until a
connection opens again, and replace a connection the outage broke. The run's last writes (its outcome,
the lease's release) go through here, so a run never stays `running` because the database blinked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import peewee

from airec.db import database

#: Errors that mean "the database is unreachable now" (connection refused, dropped or terminated).
UNREACHABLE = (peewee.OperationalError, peewee.InterfaceError)


def connected(deadline: float, give_up: Callable[[], bool] = lambda: False) -> bool:
    """Wait (a second at a time) until this thread holds an open connection; False at the deadline."""
    while database.is_closed() and not reconnect():
        if time.monotonic() >= deadline or give_up():
            return False
        time.sleep(1.0)
    return True


def reconnect() -> bool:
    """Replace this thread's connection, broken by an outage, with a fresh one (a pool discards the
    closed one); False while the database is still unreachable (the thread then holds none). The
    caller's `connection_context` stays open around the new connection."""
    db = database.obj
    state = db._state
    kept = list(state.ctx)  # closing and connecting reset it; the context's exit pops it
    try:
        try:
            db.close()
        except Exception:  # a broken connection may not close cleanly: it is gone either way
            state.reset()
        db.connect()
        return True
    except UNREACHABLE:
        return False
    finally:
        state.ctx = kept
