"""A forked child (a gunicorn worker) forgets every connection its parent opened."""

from __future__ import annotations

import os
import threading
import weakref

from playhouse.pool import PooledDatabase

from airec.db.proxy import database

#: Every pool this process made: a forked child must forget their connections (see _after_fork).
_pools: weakref.WeakSet[PooledDatabase] = weakref.WeakSet()
#: Connections inherited from the parent process, kept referenced and never closed (see _after_fork).
_inherited: list = []


def remember_pool(db: PooledDatabase) -> None:
    """Track a pool so that a forked child drops its connections without closing them."""
    _pools.add(db)


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
