"""The housekeeping thread: every minute, a pending retraining after deletions; every hour (one worker
across all, claimed in the database), retention and the audit log's own expiry."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from airec import leases, scope
from airec.audit import service as audit
from airec.config import Settings
from airec.db import database
from airec.privacy import retention, retrain

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0


def hourly(settings: Settings, slot: int) -> str:
    """Retention and audit expiry, once per hour `slot` across every worker and host."""
    if not leases.claim_slot("housekeeping_slot", slot):
        return "claimed elsewhere"
    done = []
    if settings.retention_days:
        result = retention.purge(settings.retention_days)
        done.append(f"retention deleted {result['interactions']} interactions")
        if result["interactions"]:
            counts = {k: v for k, v in result.items() if k != "before"}
            audit.record(
                audit.Action.RETENTION_DELETED,
                f"before {result['before'].isoformat(timespec='seconds')}",
                actor=audit.SYSTEM,
                details=counts,
            )
            retrain.note_deletion(settings)
    done.append(f"audit pruned {audit.prune(settings.audit_days)}")
    return "; ".join(done)


def tick(settings: Settings, seen: dict[str, int]) -> str:
    """One minute's work; the hourly part only when this thread has not yet seen this hour's slot."""
    done = retrain.maybe_retrain(settings)
    slot = int(time.time() // 3600)
    if seen.get("slot") != slot:
        seen["slot"] = slot
        done += "; " + hourly(settings, slot)
    return done


def start_housekeeping(app: Flask, stop: threading.Event) -> threading.Thread | None:
    """This app's housekeeping thread (until `stop` is set); off with AIREC_SCHEDULER=false."""
    settings: Settings = app.config["AIREC"]
    if not settings.scheduler:
        return None

    def loop() -> None:
        seen: dict[str, int] = {}
        while True:
            try:
                with database.connection_context():
                    log.debug("housekeeping: %s", tick(settings, seen))
            except Exception:
                log.exception("housekeeping failed")
            if stop.wait(TICK_SECONDS):
                return

    thread = scope.thread(loop, name="airec-housekeeping")
    thread.start()
    return thread
