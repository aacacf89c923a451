"""API keys: create (shown once), verify (hash lookup + constant-time compare), list, revoke.

A key is `airec_` + 43 url-safe characters (32 random bytes). Only SHA-256(key) is stored: a key
has 256 bits of entropy, so a slow password hash would add nothing but latency to every request.
The first characters (`prefix`) are kept in clear so people can tell keys apart in listings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass

import peewee

from airec.auth.cache import LAST_USED_EVERY, KeyCache, forget_everywhere, last_used
from airec.auth.roles import KEY_ROLES, Role
from airec.db import atomic_write, database
from airec.tables import ApiKey, utcnow

log = logging.getLogger(__name__)

ROLES = KEY_ROLES  # the roles a key may hold (airec.auth.roles.Role)
KEY_PREFIX = "airec_"
PREFIX_CHARS = len(KEY_PREFIX) + 6
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_KEY_PATTERN = re.compile(r"^airec_[A-Za-z0-9_-]{43}$")

_touched: dict[str, float] = {}  # key hash -> monotonic time of the last write
_touched_lock = threading.Lock()


class KeyProblem(ValueError):
    """A key cannot be created or revoked as asked (bad role or name, name taken, no such key)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role (never the key itself), and its row id, which rate
    limits count by (a revoked key's successor under the same name starts afresh)."""

    name: str
    role: str
    key_id: int | None = None

    def may(self, required: str) -> bool:
        """admin implies every role; ingest and read are separate."""
        return self.role == Role.ADMIN or self.role == required


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise KeyProblem("A key name is 1-64 letters, digits and _ . @ - (starting alphanumeric).")


def create_key(*, name: str, role: str) -> tuple[ApiKey, str]:
    """Store a new key and return (row, key). The key is never retrievable again."""
    check_name(name)
    if role not in ROLES:
        raise KeyProblem(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    key = new_key()

    def insert() -> ApiKey:
        if ApiKey.select().where(ApiKey.name == name).exists():
            raise KeyProblem(f"A key named {name!r} already exists; revoke it or pick another name.", 409)
        return ApiKey.create(name=name, role=role, prefix=key[:PREFIX_CHARS], key_hash=hash_key(key))

    try:
        row = atomic_write(insert)
    except peewee.IntegrityError as exc:  # a concurrent create with the same name
        raise KeyProblem(f"A key named {name!r} already exists.", 409) from exc
    log.info("api key created: name=%s role=%s prefix=%s", name, role, row.prefix)
    return row, key


def list_keys() -> list[ApiKey]:
    """Every key; this process's pending last-used times are written first (other workers' within
    a few seconds, by their background writer)."""
    flush_last_used()
    return list(ApiKey.select().order_by(ApiKey.name))


def revoke_key(name: str) -> ApiKey:
    """Delete the key: this process refuses it from its next request, every other worker once its
    cached verification expires (AIREC_KEY_CACHE_SECONDS, see airec.auth.cache)."""
    row = ApiKey.get_or_none(ApiKey.name == name)
    if row is None:
        raise KeyProblem(f"No key named {name!r}.", 404)
    atomic_write(lambda: ApiKey.delete().where(ApiKey.id == row.id).execute())
    forget_everywhere(row.key_hash)
    with _touched_lock:
        _touched.pop(row.key_hash, None)
    log.info("api key revoked: name=%s prefix=%s", row.name, row.prefix)
    return row


def verify(key: str | None, cache: KeyCache | None = None) -> Principal | None:
    """The key's principal, or None for a missing, malformed, unknown or revoked key. With a cache, a
    key the database confirmed less than cache.ttl seconds ago is not looked up again."""
    if not key or not _KEY_PATTERN.match(key):
        return None
    digest = hash_key(key)
    if cache is not None:
        hit = cache.get(digest)
        if hit is not None:
            principal, key_id = hit
            _touch(key_id, digest)
            return principal  # type: ignore[return-value]
        read_at = cache.clock()  # before the read: the entry can only expire earlier, never later
    row = ApiKey.get_or_none(ApiKey.key_hash == digest)
    if row is None or not hmac.compare_digest(row.key_hash.encode(), digest.encode()):
        return None
    principal = Principal(name=row.name, role=row.role, key_id=row.id)
    if cache is not None:
        cache.put(digest, principal, row.id, read_at)
    _touch(row.id, digest)
    return principal


def _touch(key_id: int, digest: str) -> None:
    """Note the key's use at most once a minute per process; a background thread writes the notes
    (airec.auth.cache.last_used), so no request waits for the write."""
    now = time.monotonic()
    with _touched_lock:
        if now - _touched.get(digest, -1e9) < LAST_USED_EVERY.total_seconds():
            return
        _touched[digest] = now
    last_used.record(database.obj, key_id, utcnow())


def flush_last_used() -> int:
    """Write pending last-used times now (tests, shutdown); the background thread does it otherwise."""
    return last_used.flush()


def describe(row: ApiKey) -> dict:
    """A key's public facts; times as UTC with an offset (RFC 3339), as the schema says."""
    return {
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "created_at": _utc(row.created_at),
        "last_used_at": _utc(row.last_used_at),
    }


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)
