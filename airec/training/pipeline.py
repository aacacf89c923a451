"""One training run, top to bottom, holding the training lease from its first step to its last:

    load the data (loading) -> fit and evaluate in a child process (isolation, fitting, heldout)
    -> publish the folder (publish) -> activate it (activation) -> record the outcome (runrow)

Each step is a function of its own module that returns here; none calls back up. The run row's
writes live in airec.training.runrow, the lease's renewal and release in airec.training.lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from airec import leases
from airec.config import Settings
from airec.db import atomic_write
from airec.prometheus import observe_training
from airec.training import activation, connection, fitting, isolation, loading, publish, runrow
from airec.training.fitting import TrainingRefused
from airec.training.isolation import FitCrashed, FitFailed, FitLimits, FitStalled, FitTimedOut
from airec.training.lease import TRAINING_LEASE, RunLease
from airec.training.status import RunStatus

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a run published: the registered version, and whether it became the active model."""

    version: str
    last_interaction_id: int
    activated: bool
    note: str | None = None


def run(
    run_id: int,
    settings: Settings,
    owner: str,
    on_progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Execute run `run_id` under the training lease `owner` took, renewing it meanwhile and releasing
    it at the end. `should_stop` (a worker shutting down) ends the fit early, as a lost lease does."""
    with RunLease(run_id, settings, owner, should_stop) as lease:
        execute_run(run_id, settings, owner=owner, lease_lost=lease.lost, on_progress=on_progress)


def execute_run(
    run_id: int,
    settings: Settings,
    *,
    owner: str,
    lease_lost: Callable[[], bool] = lambda: False,
    on_progress: Callable[[dict], None] | None = None,
) -> None:
    """Do the work of one run under the training lease `owner` holds, recording the outcome on its row."""
    run = runrow.mark_running(run_id)
    started = time.perf_counter()
    log.info("training run %d started (%s)", run_id, run.algorithm, extra={"run_id": run_id})
    progress = runrow.Progress(run_id, on_progress)
    try:
        outcome = train_and_publish(
            algorithm=run.algorithm,
            params=run.params.get("params", {}),
            warm_start=bool(run.params.get("warm_start")),
            settings=settings,
            run_id=run_id,
            progress=progress,
            lease=(TRAINING_LEASE, owner, settings.train_lease_seconds),
            should_stop=lease_lost,
        )
    except Exception as exc:  # the run row must say what went wrong, whatever it was
        status = RunStatus.FAILED
        fields = {"error": failure(exc, run_id, settings, lease_lost()), "history": progress.kept()}
    else:
        status = RunStatus.SUCCEEDED
        fields = {
            "model_version": outcome.version,
            "last_interaction_id": outcome.last_interaction_id,
            "activated": outcome.activated,
            "note": outcome.note,
            "history": progress.kept(),
        }
        log.info(
            "training run %d succeeded in %.1fs: model %s%s",
            run_id,
            time.perf_counter() - started,
            outcome.version,
            "" if outcome.activated else f", not activated ({outcome.note})",
            extra={"run_id": run_id, "version": outcome.version},
        )
    runrow.finish(run_id, status, **fields)
    observe_training(status, time.perf_counter() - started)


def train_and_publish(
    *,
    algorithm: str,
    params: dict,
    warm_start: bool,
    settings: Settings,
    run_id: int | None = None,
    progress: Callable[[dict], None] | None = None,
    lease: tuple[str, str, float] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Outcome:
    """Fit on the current data, evaluate, write the folder, register it and, unless an operator pinned
    a version or (AIREC_ACTIVATE=if-better) it scores worse than the active model, activate it.

    `lease` is (key, owner, ttl): registration and activation commit only while it is still held
    (raises leases.LeaseLost otherwise, and the folder is removed); `should_stop` ends the fit early.
    """
    raw, data = loading.load_data(settings)
    job = loading.fit_job(
        raw,
        data,
        algorithm=algorithm,
        params=params,
        settings=settings,
        run_id=run_id,
        warm_from=activation.active_folder() if warm_start else None,
    )
    fitted = isolation.run_in_child(
        fitting.fit_and_write,
        job,
        threads=settings.train_threads,
        nice=settings.train_nice,
        on_progress=progress,
        refused=(TrainingRefused,),
        should_stop=should_stop,
        log_config=(settings.log_level, settings.log_json),
        limits=FitLimits(timeout=settings.train_timeout_seconds, stall=settings.train_stall_seconds),
    )
    model = publish.verify(fitted)  # verified and loaded before it can be served
    refusal = register_and_activate(fitted, settings, lease)
    after_publishing(model if refusal is None else None, settings)
    return Outcome(fitted["version"], data.last_interaction_id, refusal is None, refusal)


def register_and_activate(
    fitted: dict, settings: Settings, lease: tuple[str, str, float] | None
) -> str | None:
    """Register the version and move the active pointer to it (unless refused; returns why) in one
    transaction, fenced by the lease. When that transaction does not commit (the lease was lost, the
    database went away) the folder is removed: nothing half-published can ever be activated."""

    def commit() -> str | None:
        publish.register(fitted)
        return activation.activate_unless_refused(fitted["version"], fitted["manifest"], settings.activate)

    try:
        return atomic_write(commit) if lease is None else leases.while_holding(*lease, commit)
    except (leases.LeaseLost, *connection.UNREACHABLE):
        publish.discard(settings, fitted["version"])
        raise


def after_publishing(model, settings: Settings) -> None:
    """Serve the new model here (when it was activated) and prune old versions. The model is published
    whatever happens now: a database outage here only delays both (the poller and the next run redo
    them), it does not fail the run."""
    try:
        if model is not None:
            activation.serve_here(model)
        publish.prune_versions(settings)
    except connection.UNREACHABLE as exc:
        log.warning("model published; serving it here and pruning wait for the database (%s)", exc)
        connection.reconnect()


def failure(exc: Exception, run_id: int, settings: Settings, lease_lost: bool) -> str:
    """The run's `error` for what ended it, logged as an operator needs it."""
    extra = {"run_id": run_id}
    if isinstance(exc, leases.LeaseLost):
        log.error("training run %d lost its lease; nothing published", run_id, extra=extra)
        return f"{exc}; nothing was published"
    if isinstance(exc, TrainingRefused):
        log.warning("training run %d refused: %s", run_id, exc, extra=extra)
        return str(exc)
    if isinstance(exc, (FitCrashed, FitFailed)):  # the child logged its own traceback, if it had one
        error = f"{exc.kind}: {exc}" if isinstance(exc, FitFailed) else hung(exc, settings)
        error += "; nothing was published" if lease_lost else ""
        log.error("training run %d failed: %s", run_id, error, extra=extra)
        return error
    if isinstance(exc, connection.UNREACHABLE):
        log.error("training run %d: the database became unreachable: %s", run_id, exc, extra=extra)
        connection.reconnect()
        reason = f"{type(exc).__name__}: {str(exc).strip()}"
        return f"the database became unreachable during the run ({reason}); nothing was published"
    log.exception("training run %d failed", run_id, extra=extra, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def hung(exc: FitCrashed, settings: Settings) -> str:
    """A killed fit's error, naming the setting whose limit killed it."""
    if isinstance(exc, FitTimedOut):
        return (
            f"timed out: the fit ran for {exc.elapsed:.0f} s, past "
            f"AIREC_TRAIN_TIMEOUT={settings.train_timeout} ({exc.limit:g} s); the training process was killed"
        )
    if isinstance(exc, FitStalled):
        return (
            f"stalled: the training process reported no progress for {exc.idle:.0f} s "
            f"(AIREC_TRAIN_STALL_SECONDS={exc.limit:g}); it was killed"
        )
    return str(exc)
