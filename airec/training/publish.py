"""A model from the current data: read it, fit and write the folder in a child process, register the
folder, point the database at it and swap it in here.

Knows nothing of run rows or the training lease; airec.training.service runs this in a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airec import leases
from airec.config import Settings
from airec.db import atomic_write
from airec.modelstore import folders
from airec.serving.active import ActiveModel
from airec.serving.served import register_version, served_model
from airec.tables import ModelVersion, utcnow
from airec.training.dataset import load_dataset, preprocessed
from airec.training.feedback_weights import apply_feedback, feedback_report
from airec.training.fitting import (  # noqa: F401  (re-exported: the training API's vocabulary)
    CHOICES,
    EVAL_KS,
    FitJob,
    TrainingRefused,
    build_model,
    fit_and_write,
)
from airec.training.isolation import run_in_child


@dataclass
class Outcome:
    """What a run published: the registered version, and whether it became the active model."""

    version: str
    last_interaction_id: int
    activated: bool
    note: str | None = None


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
    raw = load_dataset()
    data = preprocessed(raw, min_support=settings.train_min_item_support, max_items=settings.train_max_items)
    weights, negative = settings.event_weight_map, settings.negative_type_set
    data = apply_feedback(data, weights=weights, negative=negative)
    if data.X.shape[0] < 10 or data.X.shape[1] < 2:
        raise TrainingRefused(
            f"not enough data to train: {data.X.shape[0]} units and {data.X.shape[1]} items "
            "(need at least 10 units and 2 items"
            + (", after AIREC_TRAIN_MIN_ITEM_SUPPORT / AIREC_TRAIN_MAX_ITEMS)" if data is not raw else ")")
        )
    active = served_model.active
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
            "feedback": feedback_report(weights, negative),
        },
        warm_from=(
            str(served_model.models_dir / active.version) if warm_start and active is not None else None
        ),
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
    version, manifest = result["version"], result["manifest"]
    model = ActiveModel.from_folder(Path(result["folder"]))  # verified and loaded before it can be served

    def register_and_decide() -> str | None:
        served_model.store.save(version, Path(result["folder"]))  # the files and the row commit together
        register_version(version, manifest)
        reason = activation_refusal(manifest, settings.activate)
        if reason is None:
            leases.set_value(leases.ACTIVE_MODEL_KEY, version)
        return reason

    try:
        if lease is None:
            reason = atomic_write(register_and_decide)
        else:
            reason = leases.while_holding(*lease, register_and_decide)
    except leases.LeaseLost:
        folders.remove_version(settings.models_dir, version)
        raise
    if reason is None:
        served_model.follow(model)
    prune_versions(settings)
    return Outcome(version, data.last_interaction_id, reason is None, reason)


def activation_refusal(manifest: dict, policy: str) -> str | None:
    """Why a newly trained model must not become active, or None. Reads the pointer and the pin inside
    the caller's transaction, so the decision and the pointer move are one step."""
    pinned = leases.get_pinned_version()
    if pinned:
        return (
            f"registered, not activated: model {pinned} is pinned by an operator "
            "(POST /api/v1/models/unpin releases it)"
        )
    if policy != "if-better":
        return None
    active = leases.get_active_version()
    row = ModelVersion.get_or_none(ModelVersion.version == active) if active else None
    if row is None:
        return None
    metric = next(iter(manifest.get("validation") or {}), None)
    new = ((manifest.get("evaluation") or {}).get("model") or {}).get(metric)
    old_evaluation = (row.manifest or {}).get("evaluation") or {}
    old = (old_evaluation.get("model") or {}).get(metric)
    comparable = old_evaluation.get("protocol") == (manifest.get("evaluation") or {}).get("protocol")
    if new is None or old is None or not comparable or new >= old:
        return None
    return (
        f"registered, not activated: held-out {metric} {new:.4f} is worse than the active model "
        f"{active}'s {old:.4f} (AIREC_ACTIVATE=if-better; activate it by hand to use it)"
    )


def prune_versions(settings: Settings) -> list[str]:
    """Keep the newest `keep_versions` versions (folders on disk and, with the database store, copies
    in the database); never the active one nor one a running experiment serves. Other hosts drop their
    copies of what this archives."""
    from airec.experiments.service import running_versions

    held = {leases.get_active_version(), *running_versions()}
    model_store = served_model.store
    ordered = model_store.versions()
    removed = []
    for version in ordered[: max(0, len(ordered) - settings.keep_versions)]:
        if version in held:
            continue

        def archive(v: str = version) -> None:
            model_store.delete(v)
            ModelVersion.update(status="archived").where(ModelVersion.version == v).execute()

        atomic_write(archive)
        removed.append(version)
    return removed
