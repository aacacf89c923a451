"""Training runs: one at a time across every process and host, in a background thread.

Flow: take the database lease -> queue a run row -> thread: heartbeat the lease and the row while
airec.training.publish reads the data, fits (progress written to the run row), evaluates, writes,
registers and activates the model -> record the outcome on the row, release the lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
from peewee import fn

from airec import leases, scope
from airec.config import Settings
from airec.db import atomic_write, compiled, database, db_ago, db_now, fetch
from airec.prometheus import observe_training
from airec.tables import TrainingRun, utcnow
from airec.training import publish
from airec.training.dataset import last_interaction_id
from airec.training.fitting import CHOICES, TrainingRefused, build_model
from airec.training.isolation import FitCrashed, FitFailed

log = logging.getLogger(__name__)

TRAINING_LEASE = "training"
#: Lock row that makes "nothing in flight? then queue" one step across hosts (AIREC_TRAINER=worker).
QUEUE_LOCK = "training_queue"
#: A run as listings show it: every column but the per-epoch history.
_LISTED = [field for field in TrainingRun._meta.sorted_fields if field is not TrainingRun.history]


def heartbeat_seconds(settings: Settings) -> float:
    """How often a run renews its lease: eight times per TTL, so a few missed beats do not lose it."""
    return max(0.25, settings.train_lease_seconds / 8)


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
    worker = settings.trainer == "worker"
    in_flight = TrainingRun.status.in_(("queued", "running"))
    if worker:  # a queued run no worker took yet waits for one, however long
        in_flight = (TrainingRun.status == "running") | (
            (TrainingRun.status == "queued") & TrainingRun.owner.is_null(False)
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
                status="failed",
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
    return (
        TrainingRun.select()
        .where(TrainingRun.status.in_(("queued", "running")))
        .order_by(TrainingRun.id.desc())
        .first()
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
    if algorithm not in CHOICES:
        raise TrainingRefused(f"unknown algorithm {algorithm!r}; choose one of {', '.join(CHOICES)}")
    params = dict(params or {})
    if algorithm != "auto":
        build_model(algorithm, params, settings)  # refuse bad parameters before queueing
    elif params:
        raise TrainingRefused("'auto' trains every algorithm with its defaults and takes no params")
    warm = settings.train_warm_start if warm_start is None else warm_start
    reap_stale_runs(settings)
    if settings.trainer == "worker" and background:
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
        _run_holding_lease(run.id, settings, owner, on_progress)
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
        _run_holding_lease(run_id, settings, owner, on_progress)


def _run_holding_lease(
    run_id: int, settings: Settings, owner: str, on_progress, should_stop: Callable[[], bool] | None = None
) -> None:
    """Heartbeat the lease and the row while the run executes, then release the lease. `should_stop`
    (a worker shutting down) ends the fit early, as a lost lease does."""
    stop = threading.Event()
    lost = threading.Event()
    ttl, every = settings.train_lease_seconds, heartbeat_seconds(settings)

    def heartbeat() -> None:
        with database.connection_context():
            while not stop.wait(every):
                try:
                    if not leases.renew(TRAINING_LEASE, owner, ttl):
                        log.error(
                            "training run %d lost its lease; stopping it", run_id, extra={"run_id": run_id}
                        )
                        lost.set()
                        return
                    _update(run_id, heartbeat_at=db_now())
                except Exception:
                    log.warning("training heartbeat failed", exc_info=True)

    beat = scope.thread(heartbeat, name=f"airec-train-beat-{run_id}")
    beat.start()
    try:
        execute_run(
            run_id,
            settings,
            owner=owner,
            lease_lost=(lambda: lost.is_set() or should_stop()) if should_stop else lost.is_set,
            on_progress=on_progress,
        )
    finally:
        stop.set()
        beat.join(timeout=every)  # no renewal (or connection close) after we return
        leases.release(TRAINING_LEASE, owner)


def _update(run_id: int, **fields) -> None:
    atomic_write(lambda: TrainingRun.update(**fields).where(TrainingRun.id == run_id).execute())


def execute_run(
    run_id: int,
    settings: Settings,
    *,
    owner: str,
    lease_lost: Callable[[], bool] = lambda: False,
    on_progress: Callable[[dict], None] | None = None,
) -> None:
    """Do the work of one run under the training lease `owner` holds, recording the outcome on its row.
    `lease_lost` turning true (the heartbeat could not renew) stops the fit."""
    run = TrainingRun.get_by_id(run_id)
    started = time.perf_counter()
    _update(run_id, status="running", started_at=utcnow(), heartbeat_at=db_now())
    log.info("training run %d started (%s)", run_id, run.algorithm, extra={"run_id": run_id})
    history: list[dict] = []

    def progress(event: dict) -> None:
        event = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in event.items()}
        history.append(event)
        # The refit has no validation: its epochs move the progress on, the last validation loss stays.
        losses = {k: event[k] for k in ("train_loss", "val_loss") if k in event}
        _update(
            run_id,
            epoch=int(event.get("epoch", 0) or 0),
            max_epochs=int(event.get("max_epochs", 0) or 0),
            **losses,
            history=history[-500:],
            heartbeat_at=db_now(),
        )
        if on_progress:
            on_progress(event)

    try:
        outcome = publish.train_and_publish(
            algorithm=run.algorithm,
            params=run.params.get("params", {}),
            warm_start=bool(run.params.get("warm_start")),
            settings=settings,
            run_id=run_id,
            progress=progress,
            lease=(TRAINING_LEASE, owner, settings.train_lease_seconds),
            should_stop=lease_lost,
        )
        _update(
            run_id,
            status="succeeded",
            finished_at=utcnow(),
            model_version=outcome.version,
            last_interaction_id=outcome.last_interaction_id,
            activated=outcome.activated,
            note=outcome.note,
            history=history[-500:],
        )
        observe_training("succeeded", time.perf_counter() - started)
        log.info(
            "training run %d succeeded in %.1fs: model %s%s",
            run_id,
            time.perf_counter() - started,
            outcome.version,
            "" if outcome.activated else f", not activated ({outcome.note})",
            extra={"run_id": run_id, "version": outcome.version},
        )
    except leases.LeaseLost as exc:
        _update(run_id, status="failed", finished_at=utcnow(), error=f"{exc}; nothing was published")
        log.error("training run %d lost its lease; nothing published", run_id, extra={"run_id": run_id})
        observe_training("failed", time.perf_counter() - started)
    except TrainingRefused as exc:
        _update(run_id, status="failed", finished_at=utcnow(), error=str(exc))
        log.warning("training run %d refused: %s", run_id, exc, extra={"run_id": run_id})
        observe_training("failed", time.perf_counter() - started)
    except (FitCrashed, FitFailed) as exc:  # the child logged its own traceback, if it had one
        error = f"{exc.kind}: {exc}" if isinstance(exc, FitFailed) else str(exc)
        if lease_lost():
            error += "; nothing was published"
        log.error("training run %d failed: %s", run_id, error, extra={"run_id": run_id})
        _update(run_id, status="failed", finished_at=utcnow(), error=error)
        observe_training("failed", time.perf_counter() - started)
    except Exception as exc:  # the run row must say what went wrong, whatever it was
        log.exception("training run %d failed", run_id, extra={"run_id": run_id})
        _update(run_id, status="failed", finished_at=utcnow(), error=f"{type(exc).__name__}: {exc}")
        observe_training("failed", time.perf_counter() - started)


def new_data_since_last_run() -> bool:
    """True when interactions arrived after the newest successful run read its data."""
    last_run = (
        TrainingRun.select().where(TrainingRun.status == "succeeded").order_by(TrainingRun.id.desc()).first()
    )
    return last_interaction_id() > (last_run.last_interaction_id if last_run else 0)
