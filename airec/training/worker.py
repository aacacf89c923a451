"""`airec worker`: the process that trains when AIREC_TRAINER=worker, so training never competes with
serving for a web process.

Web processes only queue runs (airec.training.service.queue_run). A worker loops: reap runs whose
process died, tick the retraining schedule, and when a run is queued take the training lease (one run
at a time across every worker and host) and claim the oldest queued run under it: `FOR UPDATE SKIP
LOCKED` on PostgreSQL, SQLite's single writer otherwise. The run then executes exactly as a thread
would (heartbeat, fit in a child process, fenced publishing). A worker killed mid-run stops renewing:
once the lease lapses its run is failed and the next worker takes the next run; its fit child dies
with it, and nothing it did not commit under the lease is published.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import peewee

from airec import leases
from airec.config import Settings
from airec.db import atomic_write, database, db_now, is_sqlite
from airec.serving.served import served_model
from airec.tables import TrainingRun
from airec.training import pipeline, scheduler, service
from airec.training.lease import TRAINING_LEASE
from airec.training.status import RunStatus

log = logging.getLogger(__name__)

#: Touched by every loop of a live worker; a container health check reads its age.
ALIVE_FILE = ".worker-alive"


def queued_exists() -> bool:
    return TrainingRun.select().where(TrainingRun.status == RunStatus.QUEUED).exists()


def claim_next(settings: Settings, owner: str) -> int | None:
    """Take the training lease and the oldest queued run for `owner`; None when another worker holds
    the lease or nothing is queued (the lease is released again then)."""
    if not queued_exists():
        return None
    ttl = settings.train_lease_seconds
    if not leases.try_acquire(TRAINING_LEASE, owner, ttl):
        return None

    def claim() -> int | None:
        query = (
            TrainingRun.select(TrainingRun.id)
            .where(TrainingRun.status == RunStatus.QUEUED)
            .order_by(TrainingRun.id)
            .limit(1)
        )
        if not is_sqlite():
            query = query.for_update(skip_locked=True)
        row = query.first()
        if row is None:
            return None
        TrainingRun.update(status=RunStatus.RUNNING, owner=owner, heartbeat_at=db_now()).where(
            TrainingRun.id == row.id
        ).execute()
        return row.id

    try:
        run_id = leases.while_holding(TRAINING_LEASE, owner, ttl, claim)
    except leases.LeaseLost:
        run_id = None
    if run_id is None:
        leases.release(TRAINING_LEASE, owner)
    return run_id


class Worker:
    """One worker process's loop; `stop()` (SIGTERM) ends it, stopping a run in flight."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._slot = -1
        self.runs_done = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def step(self) -> int | None:
        """One pass: reap, schedule, claim and execute at most one run; returns the run executed."""
        with database.connection_context():
            self._tick_schedule()
            service.reap_stale_runs(self.settings)
            served_model.sync()  # warm starts begin from what is active now (a rollback may have moved it)
            owner = leases.new_owner()
            run_id = claim_next(self.settings, owner)
        if run_id is None:
            return None
        log.info("worker claimed training run %d", run_id, extra={"run_id": run_id})
        with database.connection_context():
            pipeline.run(run_id, self.settings, owner, should_stop=self._stop.is_set)
            if self._stop.is_set():
                self._note_shutdown(run_id)
        self.runs_done += 1
        return run_id

    def run_forever(self) -> None:
        threading.Thread(target=self._keep_alive, name="airec-worker-alive", daemon=True).start()
        log.info(
            "airec worker ready: waiting for queued training runs (every %ss)",
            self.settings.worker_poll_seconds,
        )
        while not self._stop.is_set():
            try:
                if self.step() is not None:
                    continue  # look for the next run at once
            except (peewee.OperationalError, peewee.InterfaceError) as exc:
                log.warning("worker: database unavailable (%s); retrying", exc)
            except Exception:  # keep the worker alive whatever one pass hit
                log.exception("worker pass failed")
            self._stop.wait(self.settings.worker_poll_seconds)
        log.info("airec worker stopped")

    def _tick_schedule(self) -> None:
        every = self.settings.train_every_seconds
        if not self.settings.scheduler or every is None:
            return
        slot = int(time.time() // every)
        if slot != self._slot:
            if self._slot >= 0:  # not at start-up: the first tick comes one period after it
                log.info("scheduler tick: %s", scheduler.tick(self.settings, slot))
            self._slot = slot

    def _note_shutdown(self, run_id: int) -> None:
        atomic_write(
            lambda: (
                TrainingRun.update(
                    error="stopped: its worker was shut down (SIGTERM) during the run; nothing was published"
                )
                .where((TrainingRun.id == run_id) & (TrainingRun.status == RunStatus.FAILED))
                .execute()
            )
        )

    def _keep_alive(self, every: float = 5.0) -> None:
        """Touch ALIVE_FILE while the process runs, during long runs too (a container health check)."""
        path = Path(self.settings.models_dir) / ALIVE_FILE
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            except OSError:
                pass
            if self._stop.wait(every):
                return
