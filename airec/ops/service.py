"""Readiness: can we reach the database, is a model loaded."""

from __future__ import annotations

import logging

import peewee

from airec.db import database
from airec.serving.served import served_model

log = logging.getLogger(__name__)


def readiness() -> dict:
    try:
        database.execute_sql("SELECT 1")
        db_state = "ok"
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        log.warning("readiness: database unreachable: %s", exc)
        db_state = "unreachable"
    active = served_model.active
    return {
        "status": "ready" if db_state == "ok" else "not ready",
        "database": db_state,
        "model_loaded": active is not None,
        "model_version": active.version if active else None,
    }
