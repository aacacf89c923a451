"""A model from the current data: fit (one algorithm, or every candidate for 'auto'), evaluate on
held-out units, write its folder atomically, register it, point the database at it, swap it in here.

Knows nothing of run rows or the training lease; airec.training.service runs this in a run.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from airec import leases
from airec.config import Settings
from airec.db import atomic_write
from airec.models import utcnow
from airec.recsys.evaluation import (
    DEFAULT_KS,
    MAX_HOLDOUT,
    evaluate,
    make_split,
    selection_metric,
    validation_score,
)
from airec.recsys.models import ALGORITHMS
from airec.serving import store
from airec.serving.active import ActiveModel
from airec.serving.registry import register_version, registry
from airec.training.dataset import Dataset, load_dataset, preprocessed

AUTO_CANDIDATES = ("autoencoder", "ease", "itemknn", "popularity")
CHOICES = tuple(ALGORITHMS) + ("auto",)
EVAL_KS = DEFAULT_KS  # the benchmark's cut-offs: top-k ties break the same way


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
    if "max_items" in accepted:  # EASE, and the autoencoder's linear path: memory grows with items²
        kwargs["max_items"] = settings.ease_max_items
    kwargs.update(params)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TrainingRefused(f"bad parameters for {algorithm}: {exc}") from exc


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
    raw = load_dataset()
    data = preprocessed(
        raw, min_support=settings.train_min_item_support, max_items=settings.train_max_items
    )
    if data.X.shape[0] < 10 or data.X.shape[1] < 2:
        raise TrainingRefused(
            f"not enough data to train: {data.X.shape[0]} units and {data.X.shape[1]} items "
            "(need at least 10 units and 2 items"
            + (", after AIREC_TRAIN_MIN_ITEM_SUPPORT / AIREC_TRAIN_MAX_ITEMS)" if data is not raw else ")")
        )
    # The benchmark's split: same function, fraction, cap and seed (bench seed s = AIREC_TRAIN_SEED=s).
    # Data with no user at all are baskets, which the benchmark always evaluates leave-one-out.
    split = make_split(
        data.X,
        "auto",
        holdout_fraction=settings.train_holdout_fraction,
        max_holdout=MAX_HOLDOUT,
        seed=settings.train_seed,
        kind="baskets" if data.n_users == 0 else None,
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
        "preprocessing": {
            "min_item_support": settings.train_min_item_support,
            "max_items": settings.train_max_items,
            "items_dropped": int(raw.X.shape[1] - data.X.shape[1]),
        },
        "split": {
            "protocol": split.protocol,
            "seed": settings.train_seed,
            "holdout_fraction": settings.train_holdout_fraction,
            "max_holdout": MAX_HOLDOUT,
            "order": "canonical",
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
