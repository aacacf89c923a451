"""Training runs as the API and the console see them: start one (one at a time across every process
and host), queue one for a worker, list them, and show as failed the runs whose process stopped.

Starting a run takes the training lease and records the run's row; the run itself then executes in a
background thread as airec.training.pipeline lays it out (load, fit, evaluate, publish, activate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from peewee import fn

from airec import leases, scope
from airec.config import Settings, TrainerMode
from airec.db import atomic_write, compiled, database, db_ago, db_now, fetch
from airec.tables import TrainingRun, utcnow
from airec.training import pipeline
from airec.training.choices import TrainingRefused, check_request
from airec.training.dataset import last_interaction_id
from airec.training.lease import TRAINING_LEASE
from airec.training.status import IN_FLIGHT, RunStatus

log = logging.getLogger(__name__)

#: What callers of this service catch or name, defined in the modules that own them.
__all__ = ["TRAINING_LEASE", "TrainingRefused"]
#: Lock row that makes "nothing in flight? then queue" one step across hosts (AIREC_TRAINER=worker).
QUEUE_LOCK = "training_queue"
#: A run as listings show it: every column but the per-epoch history.
_LISTED = [field for field in TrainingRun._meta.sorted_fields if field is not TrainingRun.history]


class TrainingConflict(Exception):
    """Another run holds the training lease."""

    def __init__(self, run: TrainingRun | None):
        super().__init__("a training run is already in progress")
        self.run = run


def reap_stale_runs(settings: Settings) -> int:
    """Runs left 'queued' or 'running' by a process that stopped show as failed: once their heartbeat
    is older than the lease TTL on the database clock, or at once when their owner was this very
    process and is gone. A live run that lost its lease stops and fails itself, saying so. One
    statement, so a run created meanwhile (with a fresh heartbeat) is never failed by a stale read.
    With nothing in flight (the usual case: dashboards poll this) it writes nothing at all."""
    worker = settings.trainer == TrainerMode.WORKER
    in_flight = TrainingRun.status.in_(IN_FLIGHT)
    if worker:  # a queued run no worker took yet waits for one, however long
        in_flight = (TrainingRun.status == RunStatus.RUNNING) | (
            (TrainingRun.status == RunStatus.QUEUED) & TrainingRun.owner.is_null(False)
        )
    sql, params = compiled(
        ("in-flight owners", worker), lambda: TrainingRun.select(TrainingRun.owner).where(in_flight)
    )
    owners = {owner for (owner,) in database.execute_sql(sql, params)}
    if not owners:  # a run queued after this read has a fresh heartbeat: nothing to fail yet
        return 0
    dead = [owner for owner in owners if leases.owner_is_dead(owner)]
    beat = fn.COALESCE(TrainingRun.heartbeat_at, TrainingRun.created_at)
    stale = beat < db_ago(settings.train_lease_seconds)
    return atomic_write(
        lambda: (
            TrainingRun.update(
                status=RunStatus.FAILED,
                finished_at=utcnow(),
                error="interrupted: the process running it stopped (restart or crash)",
            )
            .where(in_flight & (stale | TrainingRun.owner.in_(dead or [""])))
            .execute()
        )
    )


def list_runs(*, settings: Settings, limit: int) -> list[TrainingRun]:
    """Runs newest first, the stale ones shown failed, without their per-epoch history (up to 500
    entries of JSON each, which a listing does not show). Dashboards poll this: its SQL is compiled
    once."""
    reap_stale_runs(settings)
    return fetch(
        ("runs newest first", limit),
        lambda: TrainingRun.select(*_LISTED).order_by(TrainingRun.id.desc()).limit(limit),
    )


def current_run() -> TrainingRun | None:
    """The run queued or running now, if any."""
    return (
        TrainingRun.select().where(TrainingRun.status.in_(IN_FLIGHT)).order_by(TrainingRun.id.desc()).first()
    )


def start_run(
    *,
    settings: Settings,
    algorithm: str | None = None,
    params: dict | None = None,
    warm_start: bool | None = None,
    trigger: str = "api",
    background: bool = True,
    on_progress: Callable[[dict], None] | None = None,
) -> TrainingRun:
    """Queue a run and start it (in a thread unless background=False). Raises TrainingConflict."""
    algorithm = algorithm or settings.algorithm
    params = dict(params or {})
    check_request(algorithm, params, settings)  # refuse bad parameters before queueing
    warm = settings.train_warm_start if warm_start is None else warm_start
    reap_stale_runs(settings)
    if settings.trainer == TrainerMode.WORKER and background:
        return queue_run(algorithm=algorithm, params=params, warm_start=warm, trigger=trigger)
    owner = leases.new_owner()
    ttl = settings.train_lease_seconds
    if not leases.try_acquire(TRAINING_LEASE, owner, ttl) and not _acquire_after_finish(owner, ttl):
        raise TrainingConflict(current_run())
    try:
        run = atomic_write(
            lambda: TrainingRun.create(
                algorithm=algorithm,
                params={"params": params, "warm_start": warm},
                trigger=trigger,
                owner=owner,
                heartbeat_at=db_now(),
            )
        )
    except Exception:
        leases.release(TRAINING_LEASE, owner)
        raise
    if background:
        thread = scope.thread(
            _thread_main, args=(run.id, settings, owner, on_progress), name=f"airec-train-{run.id}"
        )
        thread.start()
    else:
        pipeline.run(run.id, settings, owner, on_progress)
        run = TrainingRun.get_by_id(run.id)
    return run


def queue_run(*, algorithm: str, params: dict, warm_start: bool, trigger: str) -> TrainingRun:
    """AIREC_TRAINER=worker: record the run as queued for an `airec worker` to claim. One run queued or
    running at a time, as with the thread: the check and the insert hold one lock row, so two hosts
    asking at once get one run and one TrainingConflict."""

    def queue() -> TrainingRun:
        leases.lock_row(QUEUE_LOCK)
        in_flight = current_run()
        if in_flight is not None:
            raise TrainingConflict(in_flight)
        return TrainingRun.create(
            algorithm=algorithm,
            params={"params": params, "warm_start": warm_start},
            trigger=trigger,
            owner=None,  # set by the worker that claims it (airec.training.worker)
        )

    run = atomic_write(queue)
    log.info("training run %d queued for a worker (%s)", run.id, algorithm, extra={"run_id": run.id})
    return run


def _acquire_after_finish(owner: str, ttl: float, wait_seconds: float = 3.0) -> bool:
    """The holder marks its run finished a moment before releasing the lease: a client that saw
    'succeeded' and asks again at once must not get a 409. Wait only while no run is in flight."""
    deadline = time.monotonic() + wait_seconds
    while current_run() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if leases.try_acquire(TRAINING_LEASE, owner, ttl):
            return True
    return False


def _thread_main(run_id: int, settings: Settings, owner: str, on_progress) -> None:
    with database.connection_context():
        pipeline.run(run_id, settings, owner, on_progress)


def new_data_since_last_run() -> bool:
    """True when interactions arrived after the newest successful run read its data."""
    last_run = (
        TrainingRun.select()
        .where(TrainingRun.status == RunStatus.SUCCEEDED)
        .order_by(TrainingRun.id.desc())
        .first()
    )
    return last_interaction_id() > (last_run.last_interaction_id if last_run else 0)
