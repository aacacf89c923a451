"""Retraining after deletions, so the served model stops holding what it learned from deleted data.

A deletion marks a retraining as pending (a row in `state`, shared by every worker and host). The first
deletion after a quiet AIREC_RETRAIN_AFTER_DELETE_MINUTES starts a run at once; deletions within that
window after it wait, and share the one run that starts when the window is over. The run is an ordinary
training run (trigger `deletion`): the new version is activated by the usual rules (AIREC_ACTIVATE,
pins), so until one is activated, the served model still holds what it learned.
"""

from __future__ import annotations

import datetime as dt
import logging

from airec import leases
from airec.audit import service as audit
from airec.config import Settings
from airec.db import atomic_write
from airec.tables import State, utcnow
from airec.training import service as training

log = logging.getLogger(__name__)

PENDING = "retrain_after_delete_pending"
LAST = "retrain_after_delete_last"


def note_deletion(settings: Settings) -> str:
    """A deletion happened: mark a retraining as pending, and start it now if the window allows."""
    if not settings.retrain_after_delete:
        return "off"

    def mark() -> None:
        if not leases.get_value(PENDING):
            leases.set_value(PENDING, utcnow().isoformat())

    atomic_write(mark)
    return maybe_retrain(settings)


def maybe_retrain(settings: Settings, *, now: dt.datetime | None = None) -> str:
    """Start the pending retraining if the window since the last one is over; says what it did."""
    if not settings.retrain_after_delete:
        return "off"
    values = leases.get_values(PENDING, LAST)
    pending, last = values[PENDING], values[LAST]
    if not pending:
        return "nothing pending"
    now = now or utcnow()
    window = dt.timedelta(minutes=settings.retrain_after_delete_minutes)
    if last and now - dt.datetime.fromisoformat(last) < window:
        return "waiting for the window"
    claimed = atomic_write(
        lambda: State.update(value=None).where((State.key == PENDING) & (State.value == pending)).execute()
    )
    if claimed != 1:
        return "claimed elsewhere"
    try:
        run = training.start_run(settings=settings, trigger="deletion")
    except Exception as exc:  # a run in progress (it may have read the deleted rows), or no data at all
        atomic_write(lambda: leases.set_value(PENDING, pending))  # the next tick tries again
        return f"not started: {exc}"
    atomic_write(lambda: leases.set_value(LAST, now.isoformat()))
    audit.record(
        audit.Action.TRAINING_STARTED, f"run {run.id}", actor=audit.SYSTEM, details={"trigger": "deletion"}
    )
    log.info("training run %d started after deletions", run.id, extra={"run_id": run.id})
    return f"started run {run.id}"
