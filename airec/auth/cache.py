"""Verified API keys remembered for a few seconds, and last-used times written off the request path.

Without the cache every authenticated request reads the api_keys table (on SQLite: a connection,
its pragmas and a SELECT, about a third of a recommendation's CPU). An entry lives
AIREC_KEY_CACHE_SECONDS from the moment the database said the key was valid; using it never renews
it. So a revoked key is refused by every worker at most that long after its revocation (at once by
the worker that revoked it). Only valid keys are cached: a new key works at once, a bad one is
always looked up.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

import peewee

from airec.tables import ApiKey

log = logging.getLogger(__name__)

#: last_used_at is written at most this often per key (per process, and checked in SQL across processes).
LAST_USED_EVERY = dt.timedelta(seconds=60)

#: Every cache of this process, so that a revocation here forgets the key in all of them at once.
_caches: weakref.WeakSet[KeyCache] = weakref.WeakSet()


class KeyCache:
    """key hash -> (principal, key id) for `ttl` seconds after the database read; ttl 0 disables it."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(ttl)
        self.clock = clock
        self._entries: dict[str, tuple[float, object, int]] = {}
        _caches.add(self)

    def get(self, digest: str) -> tuple[object, int] | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, principal, key_id = entry
        if self.clock() >= expires:
            self._entries.pop(digest, None)
            return None
        return principal, key_id

    def put(self, digest: str, principal: object, key_id: int, read_at: float) -> None:
        """Remember a key the database confirmed at `read_at` (this cache's clock, taken before the read)."""
        if self.ttl > 0:
            self._entries[digest] = (read_at + self.ttl, principal, key_id)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)


def forget_everywhere(digest: str) -> None:
    """A key revoked by this process is refused by this process's very next request."""
    for cache in list(_caches):
        cache.forget(digest)


class LastUsed:
    """Pending last_used_at stamps, written in one short transaction per database every few seconds by
    a background thread (started on first use in each process, so gunicorn's forked workers get theirs)."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._pending: dict[tuple[int, int], tuple[peewee.Database, object]] = {}
        self._lock = threading.Lock()
        #: Held through a whole flush: a flush that starts while the writer thread is writing waits for
        #: that write, so "every pending stamp is written" holds when flush() returns.
        self._flush_lock = threading.Lock()
        self._pid: int | None = None

    def record(self, db: peewee.Database, key_id: int, stamp) -> None:
        with self._lock:
            self._pending[(id(db), key_id)] = (db, stamp)
            if self._pid != os.getpid():  # first use in this process (or a fork's copy)
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="airec-key-last-used", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.every)
            try:
                self.flush()
            except Exception:  # never let the writer die; the next round tries again
                log.warning("could not record key use", exc_info=True)

    def flush(self) -> int:
        """Write every pending stamp now; returns how many keys were updated."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        by_db: dict[int, tuple[peewee.Database, list[tuple[int, object]]]] = {}
        for (db_id, key_id), (db, stamp) in pending.items():
            by_db.setdefault(db_id, (db, []))[1].append((key_id, stamp))
        written = 0
        for db, stamps in by_db.values():
            try:
                written += write_last_used(db, stamps)
            except (peewee.OperationalError, peewee.InterfaceError) as exc:  # busy or gone: skip this round
                log.warning("could not record key use (%s)", exc)
        return written


def write_last_used(db: peewee.Database, stamps: list[tuple[int, dt.datetime]]) -> int:
    """Write (key id, time) stamps in one transaction on `db`; a key written under a minute ago (by
    any process) is left alone by the SQL condition. Returns the rows updated."""
    updated = 0
    with db.connection_context(), db.atomic():
        for key_id, stamp in stamps:
            query = ApiKey.update(last_used_at=stamp).where(
                (ApiKey.id == key_id)
                & (ApiKey.last_used_at.is_null() | (ApiKey.last_used_at < stamp - LAST_USED_EVERY))
            )
            updated += db.execute(query).rowcount
    return updated


last_used = LastUsed()
