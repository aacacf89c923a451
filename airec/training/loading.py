"""A run's first step: read the interactions from the database, preprocess them as the settings ask,
and describe them for the fit (the job the child process receives)."""

from __future__ import annotations

from airec.config import Settings
from airec.tables import utcnow
from airec.training.dataset import Dataset, load_dataset, preprocessed
from airec.training.feedback_weights import apply_feedback, feedback_report
from airec.training.fitting import FitJob, TrainingRefused


def load_data(settings: Settings) -> tuple[Dataset, Dataset]:
    """(the data as stored, the data the fit gets); refused when too little is left to train on."""
    raw = load_dataset()
    data = preprocessed(raw, min_support=settings.train_min_item_support, max_items=settings.train_max_items)
    data = apply_feedback(data, weights=settings.event_weight_map, negative=settings.negative_type_set)
    if data.X.shape[0] < 10 or data.X.shape[1] < 2:
        raise TrainingRefused(
            f"not enough data to train: {data.X.shape[0]} units and {data.X.shape[1]} items "
            "(need at least 10 units and 2 items"
            + (", after AIREC_TRAIN_MIN_ITEM_SUPPORT / AIREC_TRAIN_MAX_ITEMS)" if data is not raw else ")")
        )
    return raw, data


def fit_job(
    raw: Dataset,
    data: Dataset,
    *,
    algorithm: str,
    params: dict,
    settings: Settings,
    run_id: int | None,
    warm_from: str | None,
) -> FitJob:
    """What the child process fits, with the manifest's account of the data it was given."""
    return FitJob(
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
            "feedback": feedback_report(settings.event_weight_map, settings.negative_type_set),
        },
        warm_from=warm_from,
    )
