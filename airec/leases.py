"""Leases and small shared state in the database, so several processes and hosts agree.

A lease is a row in `state` whose value names its owner; taking it is one conditional UPDATE, which
both SQLite (one writer at a time) and PostgreSQL (row lock) run atomically. Every time is the
database's clock, so hosts whose clocks disagree still agree on who holds a lease. A lease whose owner
stopped renewing it expires after its TTL; only when the owner is certainly dead (it was this very
process, which no longer runs it) is it taken over sooner.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from airec.db import atomic_write, compiled, database, db_ago, db_now, is_sqlite
from airec.tables import State

ACTIVE_MODEL_KEY = "active_model"
PINNED_MODEL_KEY = "pinned_model"

T = TypeVar("T")

#: Names this process among every process on every host (PIDs repeat across containers and hosts).
_PROCESS_TOKEN = secrets.token_hex(6)
#: Owners this process holds a lease for right now.
_live_owners: set[str] = set()
_live_lock = threading.Lock()


def _new_process_token() -> None:
    global _PROCESS_TOKEN
    _PROCESS_TOKEN = secrets.token_hex(6)
    with _live_lock:
        _live_owners.clear()


os.register_at_fork(after_in_child=_new_process_token)


class LeaseLost(RuntimeError):
    """The caller no longer holds the lease (it expired, or another owner took it)."""


def new_owner() -> str:
    """host:pid:process-token:nonce, unique across processes, hosts and calls."""
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_TOKEN}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str | None) -> bool:
    """True only when certain: the owner was this process and no longer holds anything here. A
    missing PID on a host of the same name proves nothing (containers share hostnames, not PIDs)."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) < 3 or parts[2] != _PROCESS_TOKEN:
        return False
    with _live_lock:
        return owner not in _live_owners


def _ensure_row(key: str) -> None:
    State.insert(key=key, value=None, updated_at=db_now()).on_conflict_ignore().execute()


def try_acquire(key: str, owner: str, ttl_seconds: float) -> bool:
    """Take the lease if free, expired (database clock), certainly abandoned, or already ours."""

    def take() -> bool:
        _ensure_row(key)
        current = State.get(State.key == key).value
        free = State.value.is_null() | (State.updated_at < db_ago(ttl_seconds)) | (State.value == owner)
        if owner_is_dead(current):
            free = free | (State.value == current)
        updated = State.update(value=owner, updated_at=db_now()).where((State.key == key) & free).execute()
        return updated == 1

    # Live before the UPDATE commits: another thread of this process that reads the row in between
    # must not take this owner for one that is dead (owner_is_dead) and take the lease over.
    with _live_lock:
        _live_owners.add(owner)
    taken = False
    try:
        taken = atomic_write(take)
    finally:
        if not taken:
            with _live_lock:
                _live_owners.discard(owner)
    return taken


def renew(key: str, owner: str, ttl_seconds: float) -> bool:
    """Extend our lease; False when it is no longer ours or had already expired (fencing)."""
    return atomic_write(
        lambda: (
            State.update(updated_at=db_now())
            .where((State.key == key) & (State.value == owner) & (State.updated_at >= db_ago(ttl_seconds)))
            .execute()
            == 1
        )
    )


def release(key: str, owner: str) -> None:
    with _live_lock:
        _live_owners.discard(owner)
    atomic_write(
        lambda: (
            State.update(value=None, updated_at=db_now())
            .where((State.key == key) & (State.value == owner))
            .execute()
        )
    )


def holder(key: str) -> str | None:
    row = State.get_or_none(State.key == key)
    return row.value if row else None


def while_holding(key: str, owner: str, ttl_seconds: float, fn: Callable[[], T]) -> T:
    """Run `fn` in one transaction that first checks, on the database clock, that `owner` still holds
    the lease (locking its row on PostgreSQL): what `fn` writes commits only under a live lease."""

    def fenced() -> T:
        query = State.select(State.key).where(
            (State.key == key) & (State.value == owner) & (State.updated_at >= db_ago(ttl_seconds))
        )
        if not is_sqlite():  # SQLite's IMMEDIATE transaction already excludes every other writer
            query = query.for_update()
        if query.first() is None:
            raise LeaseLost(f"this run no longer holds the {key} lease (it expired or another took it over)")
        return fn()

    return atomic_write(fenced)


def lock_row(key: str) -> None:
    """Hold the state row `key` until the caller's transaction ends, so check-then-insert steps under
    it run one at a time across processes and hosts (PostgreSQL row lock; SQLite's IMMEDIATE
    transaction already admits one writer)."""
    _ensure_row(key)
    query = State.select(State.key).where(State.key == key)
    if not is_sqlite():
        query = query.for_update()
    query.first()


def claim_slot(key: str, slot: int) -> bool:
    """True for exactly one caller per slot number (e.g. one scheduler tick across all workers)."""

    def claim() -> bool:
        State.insert(key=key, value="-1", updated_at=db_now()).on_conflict_ignore().execute()
        row = State.get(State.key == key)
        if int(row.value or -1) >= slot:
            return False
        return (
            State.update(value=str(slot), updated_at=db_now())
            .where((State.key == key) & (State.value == row.value))
            .execute()
            == 1
        )

    return atomic_write(claim)


def get_value(key: str) -> str | None:
    row = State.get_or_none(State.key == key)
    return row.value if row else None


def get_values(*keys: str) -> dict[str, str | None]:
    """Several state rows in one query (e.g. the active and pinned pointers a listing shows
    together); a key with no row maps to None."""
    sql, params = compiled(
        ("state values", keys), lambda: State.select(State.key, State.value).where(State.key.in_(keys))
    )
    found = dict(database.execute_sql(sql, params).fetchall())
    return {key: found.get(key) for key in keys}


def set_value(key: str, value: str | None) -> None:
    """Write a state row (call inside a transaction to combine it with other writes)."""
    _ensure_row(key)
    State.update(value=value, updated_at=db_now()).where(State.key == key).execute()


def get_active_version() -> str | None:
    return get_value(ACTIVE_MODEL_KEY)


def set_active_version(version: str | None) -> None:
    atomic_write(lambda: set_value(ACTIVE_MODEL_KEY, version))


def get_pinned_version() -> str | None:
    """The version an operator activated by hand: runs register new models but do not activate them."""
    return get_value(PINNED_MODEL_KEY)
