"""A model from the current data: read it, fit and write the folder in a child process, register the
folder, point the database at it and swap it in here.

Knows nothing of run rows or the training lease; airec.training.service runs this in a run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from airec import leases
from airec.config import Settings
from airec.db import atomic_write
from airec.models import utcnow
from airec.serving import store
from airec.serving.active import ActiveModel
from airec.serving.registry import register_version, registry
from airec.training.dataset import load_dataset, preprocessed
from airec.training.fitting import (  # noqa: F401  (re-exported: the training API's vocabulary)
    CHOICES,
    EVAL_KS,
    FitJob,
    TrainingRefused,
    build_model,
    fit_and_write,
)
from airec.training.isolation import run_in_child


def train_and_publish(
    *,
    algorithm: str,
    params: dict,
    warm_start: bool,
    settings: Settings,
    run_id: int | None = None,
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[str, int]:
    """Fit on the current data, evaluate, write the folder, activate it. Returns (version, last id read)."""
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
    active = registry.active
    job = FitJob(
        algorithm=algorithm,
        params=params,
        settings=settings,
        X=data.X,
        items=data.items,
        baskets=data.n_users == 0,
        manifest={
            "created_at": utcnow().isoformat() + "Z",
            "run_id": run_id,
            "data": {
                "units": int(data.X.shape[0]),
                "users": data.n_users,
                "baskets": data.n_baskets,
                "items": int(data.X.shape[1]),
                "interactions": data.n_interactions,
                "last_interaction_id": data.last_interaction_id,
            },
            "preprocessing": {
                "min_item_support": settings.train_min_item_support,
                "max_items": settings.train_max_items,
                "items_dropped": int(raw.X.shape[1] - data.X.shape[1]),
            },
        },
        warm_from=str(registry.models_dir / active.version) if warm_start and active is not None else None,
    )
    result = run_in_child(
        fit_and_write,
        job,
        threads=settings.train_threads,
        nice=settings.train_nice,
        on_progress=progress,
        refused=(TrainingRefused,),
        should_stop=should_stop,
        log_config=(settings.log_level, settings.log_json),
    )
    version = result["version"]
    register_version(version, result["manifest"])
    leases.set_active_version(version)
    registry.swap(ActiveModel.from_folder(Path(result["folder"])))
    prune_versions(settings)
    return version, data.last_interaction_id


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
