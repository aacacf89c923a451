"""Retrain every AIREC_TRAIN_EVERY, only when new interactions arrived since the last run.

Every worker runs this thread, but each tick is claimed in the database by exactly one of them
(`claim_slot`), and the training lease makes sure only one run happens at a time anyway.
"""

from __future__ import annotations

import logging
import threading
import time

import schedule
from flask import Flask

from airec import leases, scope
from airec.config import Settings, TrainerMode
from airec.db import database
from airec.training import service

log = logging.getLogger(__name__)


def tick(settings: Settings, slot: int) -> str:
    """One scheduled check; returns what it did (for logs and tests)."""
    if not leases.claim_slot("schedule_slot", slot):
        return "claimed elsewhere"
    service.reap_stale_runs(settings)
    if not service.new_data_since_last_run():
        return "no new data"
    try:
        run = service.start_run(settings=settings, trigger="schedule")
    except service.TrainingConflict:
        return "already training"
    log.info("scheduled training run %d started", run.id, extra={"run_id": run.id})
    return f"started run {run.id}"


def start_scheduler(app: Flask, stop: threading.Event) -> threading.Thread | None:
    """This app's scheduler thread (until `stop` is set), or None when scheduling is off."""
    settings: Settings = app.config["AIREC"]
    every = settings.train_every_seconds
    if not settings.scheduler or every is None:
        return None
    if settings.trainer == TrainerMode.WORKER:
        log.info("scheduler: runs in `airec worker` (AIREC_TRAINER=worker), not in web processes")
        return None
    jobs = schedule.Scheduler()

    def job() -> None:
        slot = int(time.time() // every)
        try:
            with database.connection_context():
                log.info("scheduler tick: %s", tick(settings, slot))
        except Exception:
            log.exception("scheduled training check failed")

    jobs.every(every).seconds.do(job)

    def loop() -> None:
        while not stop.wait(1.0):
            jobs.run_pending()

    thread = scope.thread(loop, name="airec-scheduler")
    thread.start()
    log.info("scheduler: retraining every %ss when new data arrives", every)
    return thread
