"""Appending to the audit log, reading it back in pages, and pruning it after AIREC_AUDIT_DAYS."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from enum import StrEnum
from typing import Any

from flask import g, has_request_context, request

from airec.db import atomic_write
from airec.tables import AuditEntry, utcnow

log = logging.getLogger(__name__)

#: The actor of changes made with the `airec` command line.
CLI = "cli"
#: The actor of changes the service makes by itself (retention, retraining after deletions).
SYSTEM = "system"


class Action(StrEnum):
    """Every audited change, named once."""

    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    MODEL_ACTIVATED = "model.activated"
    MODEL_UNPINNED = "model.unpinned"
    MODEL_ARCHIVED = "model.archived"
    TRAINING_STARTED = "training.started"
    CATALOGUE_CHANGED = "catalogue.changed"
    USER_DELETED = "user.deleted"
    ITEM_DELETED = "item.deleted"
    RETENTION_DELETED = "retention.deleted"
    RESTORE_PERFORMED = "restore.performed"
    EXPERIMENT_STARTED = "experiment.started"
    EXPERIMENT_STOPPED = "experiment.stopped"


def hashed_name(name: str) -> str:
    """How the log names a deleted user: a hash, so the log itself does not keep the name it erased."""
    return "sha256:" + hashlib.sha256(name.encode("utf-8")).hexdigest()


def request_actor() -> tuple[str, str | None]:
    """(actor, address) of the current request: the API key's or console session's key name (or
    `anonymous` with AIREC_AUTH=off) and the client's address; (`cli`, None) outside a request."""
    if not has_request_context():
        return CLI, None
    principal = g.get("principal")
    viewer = g.get("viewer")
    name = getattr(principal, "name", None) or getattr(viewer, "name", None) or "anonymous"
    return name, request.remote_addr


def record(
    action: Action,
    target: str | None = None,
    *,
    actor: str | None = None,
    address: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one row (its own transaction, or the caller's). Actor and address default to the current
    request's, or `cli` outside one."""
    if actor is None:
        actor, address = request_actor()
    atomic_write(
        lambda: AuditEntry.create(
            at=utcnow(),
            actor=actor[:128],
            action=str(action),
            target=None if target is None else target[:512],
            address=address,
            details=details,
        )
    )
    log.info("audit: %s %s %s", actor, action, target or "", extra={"audit_action": str(action)})


def entries(
    *,
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """A page of rows, newest first (keyset on id: `before` is the last page's `next_before`)."""
    since, until = _naive_utc(since), _naive_utc(until)
    query = AuditEntry.select()
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(query.order_by(AuditEntry.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": [describe(row) for row in rows], "next_before": rows[-1].id if more else None}


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Times are stored as naive UTC; an aware bound is converted, a naive one taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def describe(row: AuditEntry) -> dict[str, Any]:
    at = row.at if isinstance(row.at, dt.datetime) else dt.datetime.fromisoformat(str(row.at))
    return {
        "id": row.id,
        "at": at.replace(tzinfo=dt.UTC),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "address": row.address,
        "details": row.details,
    }


def prune(days: int, *, now: dt.datetime | None = None) -> int:
    """Delete rows older than `days` (the only deletion of audit rows there is)."""
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    return atomic_write(lambda: AuditEntry.delete().where(AuditEntry.at < cutoff).execute())
