"""Leases and small shared state in the database, so several processes and hosts agree.

A lease is a row in `state` whose value names its owner; taking it is one conditional UPDATE, which
both SQLite (one writer at a time) and PostgreSQL (row lock) run atomically. A lease whose owner
stopped renewing it expires, so a killed process never blocks the others for good.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading

from airec.db import atomic_write
from airec.models import State, utcnow

ACTIVE_MODEL_KEY = "active_model"


def process_owner() -> str:
    """host:pid:thread, unique enough to tell lease holders apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def owner_is_dead(owner: str | None) -> bool:
    """True when the owner ran on this host and its process no longer exists (e.g. SIGKILL)."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _ensure_row(key: str) -> None:
    State.insert(key=key, value=None, updated_at=utcnow()).on_conflict_ignore().execute()


def try_acquire(key: str, owner: str, ttl_seconds: float) -> bool:
    """Take the lease if free, expired, or already ours."""

    def take() -> bool:
        _ensure_row(key)
        current = State.get(State.key == key).value
        if owner_is_dead(current):
            State.update(value=None).where((State.key == key) & (State.value == current)).execute()
        now = utcnow()
        expired = now - dt.timedelta(seconds=ttl_seconds)
        updated = (
            State.update(value=owner, updated_at=now)
            .where(
                (State.key == key)
                & (State.value.is_null() | (State.updated_at < expired) | (State.value == owner))
            )
            .execute()
        )
        return updated == 1

    return atomic_write(take)


def renew(key: str, owner: str) -> bool:
    return atomic_write(
        lambda: (
            State.update(updated_at=utcnow()).where((State.key == key) & (State.value == owner)).execute()
            == 1
        )
    )


def release(key: str, owner: str) -> None:
    atomic_write(
        lambda: (
            State.update(value=None, updated_at=utcnow())
            .where((State.key == key) & (State.value == owner))
            .execute()
        )
    )


def holder(key: str) -> str | None:
    row = State.get_or_none(State.key == key)
    return row.value if row else None


def claim_slot(key: str, slot: int) -> bool:
    """True for exactly one caller per slot number (e.g. one scheduler tick across all workers)."""

    def claim() -> bool:
        State.insert(key=key, value="-1", updated_at=utcnow()).on_conflict_ignore().execute()
        row = State.get(State.key == key)
        if int(row.value or -1) >= slot:
            return False
        return (
            State.update(value=str(slot), updated_at=utcnow())
            .where((State.key == key) & (State.value == row.value))
            .execute()
            == 1
        )

    return atomic_write(claim)


def get_active_version() -> str | None:
    row = State.get_or_none(State.key == ACTIVE_MODEL_KEY)
    return row.value if row else None


def set_active_version(version: str | None) -> None:
    def write() -> None:
        _ensure_row(ACTIVE_MODEL_KEY)
        State.update(value=version, updated_at=utcnow()).where(State.key == ACTIVE_MODEL_KEY).execute()

    atomic_write(write)
