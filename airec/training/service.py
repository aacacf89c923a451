"""Training runs: one at a time across every process and host, in a background thread.

Flow: take the database lease -> queue a run row -> thread: read data in batches, split, fit with
progress written to the run row, evaluate on held-out units, write the model folder atomically,
register it, point the database at it and swap it into this process.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from airec import leases
from airec.config import Settings
from airec.db import atomic_write, database
from airec.metrics import observe_training
from airec.models import TrainingRun, utcnow
from airec.recsys.evaluation import evaluate, make_split, selection_metric, validation_score
from airec.recsys.models import ALGORITHMS
from airec.serving import store
from airec.serving.active import ActiveModel
from airec.serving.registry import register_version, registry
from airec.training.dataset import Dataset, last_interaction_id, load_dataset

log = logging.getLogger(__name__)

TRAINING_LEASE = "training"
LEASE_TTL_SECONDS = 120.0
HEARTBEAT_SECONDS = 15.0
AUTO_CANDIDATES = ("autoencoder", "ease", "itemknn", "popularity")
CHOICES = tuple(ALGORITHMS) + ("auto",)
EVAL_KS = (10, 20, 50, 100)


class TrainingConflict(Exception):
    """Another run holds the training lease."""

    def __init__(self, run: TrainingRun | None):
        super().__init__("a training run is already in progress")
        self.run = run


class TrainingRefused(ValueError):
    """The request cannot be trained as asked (bad parameters, too little data, EASE too large)."""


def build_model(algorithm: str, params: dict[str, Any], settings: Settings):
    """Instantiate an algorithm, checking parameters against its constructor."""
    cls = ALGORITHMS[algorithm]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TrainingRefused(
            f"unknown parameter(s) for {algorithm}: {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    kwargs = {k: v for k, v in settings.training_overrides().items() if k in accepted}
    if algorithm == "ease" and "max_items" in accepted:
        kwargs["max_items"] = settings.ease_max_items
    kwargs.update(params)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TrainingRefused(f"bad parameters for {algorithm}: {exc}") from exc


def reap_stale_runs() -> int:
    """Runs left 'running' or 'queued' by a killed process show as failed once their lease lapsed."""
    holder = leases.holder(TRAINING_LEASE)
    cutoff = utcnow() - dt.timedelta(seconds=LEASE_TTL_SECONDS)
    reaped = 0
    for run in TrainingRun.select().where(TrainingRun.status.in_(("queued", "running"))):
        beat = run.heartbeat_at or run.created_at
        if run.owner != holder or beat < cutoff or leases.owner_is_dead(run.owner):
            atomic_write(
                lambda run=run: (
                    TrainingRun.update(
                        status="failed",
                        finished_at=utcnow(),
                        error="interrupted: the process running it stopped (restart or crash)",
                    )
                    .where(TrainingRun.id == run.id)
                    .execute()
                )
            )
            reaped += 1
    return reaped


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
    owner = f"{leases.process_owner()}:{uuid.uuid4().hex[:8]}"
    reap_stale_runs()
    if not leases.try_acquire(TRAINING_LEASE, owner, LEASE_TTL_SECONDS) and not _acquire_after_finish(owner):
        raise TrainingConflict(current_run())
    try:
        run = atomic_write(
            lambda: TrainingRun.create(
                algorithm=algorithm,
                params={
                    "params": params,
                    "warm_start": settings.train_warm_start if warm_start is None else warm_start,
                },
                trigger=trigger,
                owner=owner,
                heartbeat_at=utcnow(),
            )
        )
    except Exception:
        leases.release(TRAINING_LEASE, owner)
        raise
    if background:
        thread = threading.Thread(
            target=_thread_main,
            args=(run.id, settings, owner, on_progress),
            name=f"airec-train-{run.id}",
            daemon=True,
        )
        thread.start()
    else:
        _run_holding_lease(run.id, settings, owner, on_progress)
        run = TrainingRun.get_by_id(run.id)
    return run


def _acquire_after_finish(owner: str, wait_seconds: float = 3.0) -> bool:
    """The holder marks its run finished a moment before releasing the lease: a client that saw
    'succeeded' and asks again at once must not get a 409. Wait only while no run is in flight."""
    deadline = time.monotonic() + wait_seconds
    while current_run() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if leases.try_acquire(TRAINING_LEASE, owner, LEASE_TTL_SECONDS):
            return True
    return False


def _thread_main(run_id: int, settings: Settings, owner: str, on_progress) -> None:
    _lower_priority(settings.train_nice)
    with database.connection_context():
        _run_holding_lease(run_id, settings, owner, on_progress)


def _lower_priority(nice: int) -> None:
    """Linux gives each thread its own nice value: deprioritise only the training thread."""
    if nice > 0 and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            log.debug("could not lower training thread priority")


def _run_holding_lease(run_id: int, settings: Settings, owner: str, on_progress) -> None:
    stop = threading.Event()

    def heartbeat() -> None:
        with database.connection_context():
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    leases.renew(TRAINING_LEASE, owner)
                    atomic_write(
                        lambda: (
                            TrainingRun.update(heartbeat_at=utcnow())
                            .where(TrainingRun.id == run_id)
                            .execute()
                        )
                    )
                except Exception:
                    log.warning("training heartbeat failed", exc_info=True)

    beat = threading.Thread(target=heartbeat, name=f"airec-train-beat-{run_id}", daemon=True)
    beat.start()
    try:
        execute_run(run_id, settings, on_progress=on_progress)
    finally:
        stop.set()
        beat.join(timeout=HEARTBEAT_SECONDS)  # no renewal (or connection close) after we return
        leases.release(TRAINING_LEASE, owner)


def _update(run_id: int, **fields) -> None:
    atomic_write(lambda: TrainingRun.update(**fields).where(TrainingRun.id == run_id).execute())


def execute_run(run_id: int, settings: Settings, on_progress: Callable[[dict], None] | None = None) -> None:
    """Do the work of one run, recording success or the error on its row."""
    run = TrainingRun.get_by_id(run_id)
    started = time.perf_counter()
    _update(run_id, status="running", started_at=utcnow(), heartbeat_at=utcnow())
    log.info("training run %d started (%s)", run_id, run.algorithm, extra={"run_id": run_id})
    history: list[dict] = []

    def progress(event: dict) -> None:
        event = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in event.items()}
        history.append(event)
        _update(
            run_id,
            epoch=int(event.get("epoch", 0) or 0),
            max_epochs=int(event.get("max_epochs", 0) or 0),
            train_loss=event.get("train_loss"),
            val_loss=event.get("val_loss"),
            history=history[-500:],
            heartbeat_at=utcnow(),
        )
        if on_progress:
            on_progress(event)

    try:
        torch.set_num_threads(max(1, settings.train_threads))
        version, last_id = train_and_publish(
            algorithm=run.algorithm,
            params=run.params.get("params", {}),
            warm_start=bool(run.params.get("warm_start")),
            settings=settings,
            run_id=run_id,
            progress=progress,
        )
        _update(
            run_id,
            status="succeeded",
            finished_at=utcnow(),
            model_version=version,
            last_interaction_id=last_id,
            history=history[-500:],
        )
        observe_training("succeeded", time.perf_counter() - started)
        log.info(
            "training run %d succeeded in %.1fs: model %s",
            run_id,
            time.perf_counter() - started,
            version,
            extra={"run_id": run_id, "version": version},
        )
    except TrainingRefused as exc:
        _update(run_id, status="failed", finished_at=utcnow(), error=str(exc))
        log.warning("training run %d refused: %s", run_id, exc, extra={"run_id": run_id})
        observe_training("failed", time.perf_counter() - started)
    except Exception as exc:  # the run row must say what went wrong, whatever it was
        log.exception("training run %d failed", run_id, extra={"run_id": run_id})
        _update(run_id, status="failed", finished_at=utcnow(), error=f"{type(exc).__name__}: {exc}")
        observe_training("failed", time.perf_counter() - started)


def train_and_publish(
    *,
    algorithm: str,
    params: dict,
    warm_start: bool,
    settings: Settings,
    run_id: int | None = None,
    progress: Callable[[dict], None] | None = None,
) -> tuple[str, int]:
    """Fit on the current data, evaluate, write the folder, activate it. Returns (version, last id read)."""
    started = time.perf_counter()
    data = load_dataset()
    if data.X.shape[0] < 10 or data.X.shape[1] < 2:
        raise TrainingRefused(
            f"not enough data to train: {data.X.shape[0]} units and {data.X.shape[1]} items "
            "(need at least 10 units and 2 items)"
        )
    split = make_split(
        data.X, "auto", holdout_fraction=settings.train_holdout_fraction, seed=settings.train_seed
    )
    if split.validation[1].nnz == 0:
        raise TrainingRefused(
            "not enough data to train: no validation unit has an item to hold out "
            "(a user or basket needs at least 2 items to be held out; too few have)"
        )
    candidates = AUTO_CANDIDATES if algorithm == "auto" else (algorithm,)
    fitted: dict[str, Any] = {}
    scores: dict[str, dict] = {}
    warmed: set[str] = set()
    for name in candidates:
        model = build_model(name, params if algorithm != "auto" else {}, settings)
        if warm_start and name == "autoencoder" and _warm_start(model, data):
            warmed.add(name)
        t0 = time.perf_counter()
        try:
            report = model.fit(split.train, validation=split.validation, progress=progress)
        except ValueError as exc:
            if algorithm != "auto":
                raise TrainingRefused(str(exc)) from exc
            scores[name] = {"error": str(exc)}
            continue
        metric = selection_metric(split.validation[1])
        scores[name] = {
            "validation": {metric: validation_score(model.score, split.validation, metric)},
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "params": dict(report.params or model.get_params()),
        }
        fitted[name] = model
    best = max(fitted, key=lambda n: next(iter(scores[n]["validation"].values())))
    model = fitted[best]
    evaluation = evaluate_split(model, split)
    manifest = {
        "algorithm": best,
        "requested_algorithm": algorithm,
        "created_at": utcnow().isoformat() + "Z",
        "run_id": run_id,
        "data": {
            "units": int(data.X.shape[0]),
            "users": data.n_users,
            "baskets": data.n_baskets,
            "items": int(data.X.shape[1]),
            "interactions": data.n_interactions,
            "last_interaction_id": data.last_interaction_id,
            "train_units": int(split.train.shape[0]),
        },
        "split": {
            "protocol": split.protocol,
            "seed": settings.train_seed,
            "holdout_fraction": settings.train_holdout_fraction,
        },
        "params": scores[best]["params"],
        "validation": scores[best]["validation"],
        "evaluation": evaluation,
        "candidates": scores if algorithm == "auto" else None,
        "training_seconds": round(time.perf_counter() - started, 3),
        "warm_start": best in warmed,  # what happened, not what was asked (no active autoencoder: cold)
    }
    popularity = np.asarray(data.X.sum(axis=0)).ravel()
    version = store.new_version(best)
    store.clean_temporaries(settings.models_dir)
    folder = store.write_model(
        settings.models_dir,
        version=version,
        model=model,
        items=data.items,
        popularity=popularity,
        manifest=manifest,
    )
    register_version(version, manifest)
    leases.set_active_version(version)
    registry.swap(ActiveModel.from_folder(folder))
    prune_versions(settings)
    return version, data.last_interaction_id


def evaluate_split(model, split) -> dict:
    """The active model and a popularity baseline on the held-out test units, full catalogue."""
    popularity = ALGORITHMS["popularity"]()
    popularity.fit(split.train)
    X_in, X_hidden = split.test
    return {
        "protocol": split.protocol,
        "model": evaluate(model, X_in, X_hidden, ks=EVAL_KS),
        "popularity": evaluate(popularity, X_in, X_hidden, ks=EVAL_KS),
    }


def _warm_start(model, data: Dataset) -> bool:
    """Known items keep the active model's weights; items new since then start fresh.
    False when there is no active autoencoder to start from."""
    active = registry.active
    if active is None or active.algorithm != "autoencoder" or not hasattr(model, "warm_start_from"):
        return False
    old_index = np.array([active.index.get(name, -1) for name in data.items], dtype=np.int64)
    model.warm_start_from(active.model, old_index)
    return True


def prune_versions(settings: Settings) -> list[str]:
    """Keep the newest `keep_versions` folders on disk; never the active one."""
    from airec.models import ModelVersion

    active = leases.get_active_version()
    versions = store.complete_versions(settings.models_dir)
    removed = []
    for version in versions[: max(0, len(versions) - settings.keep_versions)]:
        if version == active:
            continue
        store.remove_version(settings.models_dir, version)
        atomic_write(
            lambda v=version: (
                ModelVersion.update(status="archived").where(ModelVersion.version == v).execute()
            )
        )
        removed.append(version)
    return removed


def new_data_since_last_run() -> bool:
    """True when interactions arrived after the newest successful run read its data."""
    last_run = (
        TrainingRun.select().where(TrainingRun.status == "succeeded").order_by(TrainingRun.id.desc()).first()
    )
    return last_interaction_id() > (last_run.last_interaction_id if last_run else 0)
