"""Console sessions kept in the database, so that ending one ends it on every worker and every host.

The cookie carries a random token; the console_sessions row holds the token's SHA-256, the hash of the
API key the session was opened with, and the moment it ends (AIREC_CONSOLE_SESSION_HOURS after sign-in,
never pushed back by activity). Every console request looks its row up, joined to its key: a deleted
row (signed out) or an expired one is no session, and a revoked key ends its sessions at its next
request, sooner than AIREC_KEY_CACHE_SECONDS. The JSON API never comes here (keys, no cookies).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from enum import StrEnum

from peewee import JOIN

from airec.auth.service import Principal
from airec.db import atomic_write
from airec.tables import ApiKey, ConsoleSession, utcnow


class SessionState(StrEnum):
    """What a cookie's token stands for now."""

    OPEN = "open"
    ENDED = "ended"  # signed out, expired, or never issued here
    KEY_REVOKED = "key_revoked"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(key_hash: str, lifetime: dt.timedelta) -> tuple[str, dt.datetime]:
    """Store a new session for the key and return (token for the cookie, naive UTC end). Sessions that
    have ended on their own (expired, or their key revoked) are deleted on the way."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + lifetime

    def write() -> None:
        live_keys = ApiKey.select(ApiKey.key_hash)
        ConsoleSession.delete().where(
            (ConsoleSession.expires_at <= now) | ConsoleSession.key_hash.not_in(live_keys)
        ).execute()
        ConsoleSession.create(
            token_hash=_digest(token), key_hash=key_hash, created_at=now, expires_at=expires_at
        )

    atomic_write(write)
    return token, expires_at


def look_up(token: str) -> tuple[SessionState, Principal | None]:
    """The session's state and, while it is open, who holds it (one indexed read)."""
    row = (
        ConsoleSession.select(ConsoleSession.expires_at, ApiKey.id, ApiKey.name, ApiKey.role)
        .join(ApiKey, JOIN.LEFT_OUTER, on=(ConsoleSession.key_hash == ApiKey.key_hash))
        .where(ConsoleSession.token_hash == _digest(token))
        .dicts()
        .first()
    )
    if row is None or row["expires_at"] <= utcnow():
        return SessionState.ENDED, None
    if row["id"] is None:
        return SessionState.KEY_REVOKED, None
    return SessionState.OPEN, Principal(name=row["name"], role=row["role"], key_id=row["id"])


def end_session(token: str) -> None:
    """Sign-out: the row goes, so every copy of the cookie is refused everywhere from now on."""
    atomic_write(lambda: ConsoleSession.delete().where(ConsoleSession.token_hash == _digest(token)).execute())
