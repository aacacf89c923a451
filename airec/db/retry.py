"""Writes in one transaction, run again when they failed only because of other writers."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import peewee

from airec.db.proxy import database, is_sqlite

log = logging.getLogger(__name__)

#: SQLSTATEs after which PostgreSQL has rolled the transaction back and running it again can succeed.
RETRYABLE_SQLSTATES = {
    "40P01": "deadlock",
    "40001": "serialization failure",
    # A row this transaction references (a user or an item it looked up) was deleted meanwhile by a
    # deletion or retention batch (airec.privacy): run again, the lookup creates it afresh.
    "23503": "foreign key to a row deleted meanwhile",
}

T = TypeVar("T")


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
