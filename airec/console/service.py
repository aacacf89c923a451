"""What the console pages show, put together from the same service functions the JSON API calls.

Nothing here computes a number of its own: counts, popularity, versions, runs, health and
recommendations all come from airec.stats, airec.versions, airec.training, airec.ops and airec.serving.
This module only picks, orders and labels them for a page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airec import leases
from airec.config import Settings
from airec.feedback.stats import take_rate_per_day
from airec.ops.service import readiness
from airec.serving import service as serving_service
from airec.stats import service as stats_service
from airec.tables import TrainingRun, utcnow
from airec.training import service as training_service
from airec.versions import service as versions_service

#: The one number that ranks models on every page; both protocols report it (see airec/recsys).
HEADLINE = "ndcg@10"
#: The second number per protocol, as in the README's benchmark tables.
SECOND = {"strong": "recall@20", "loo": "hit_rate@10"}
#: Claimed by airec.training.scheduler.tick once per period: its value is the last period checked.
SCHEDULE_SLOT_KEY = "schedule_slot"
CHART_DAYS = 30


def metric_pairs(evaluation: dict | None) -> list[dict[str, Any]]:
    """[{name, model, popularity}] for the headline and the protocol's second metric, if evaluated."""
    evaluation = evaluation or {}
    model, popularity = evaluation.get("model") or {}, evaluation.get("popularity") or {}
    names = [HEADLINE, SECOND.get(evaluation.get("protocol", ""), "recall@20")]
    return [
        {"name": name, "model": model.get(name), "popularity": popularity.get(name)}
        for name in names
        if model.get(name) is not None
    ]


def active_model() -> dict[str, Any] | None:
    """The active version as GET /api/v1/models/<version> describes it, with its age and metrics."""
    version = leases.get_active_version()
    if version is None:
        return None
    try:
        model = versions_service.get_version(version)
    except versions_service.VersionNotFound:
        return None
    return {**model, "age": utcnow() - model["created_at"], "metrics": metric_pairs(model["evaluation"])}


def schedule(settings: Settings) -> dict[str, Any]:
    """When the scheduler looks for new data next (it retrains only if some arrived)."""
    every = settings.train_every_seconds
    if not settings.scheduler or every is None:
        reason = "AIREC_SCHEDULER is false" if not settings.scheduler else "AIREC_TRAIN_EVERY is off"
        return {"enabled": False, "reason": reason}
    claimed = leases.holder(SCHEDULE_SLOT_KEY)
    now = dt.datetime.now(dt.UTC)
    next_after = now
    if claimed is not None and int(claimed) >= 0:
        next_after = max(now, dt.datetime.fromtimestamp((int(claimed) + 1) * every, dt.UTC))
    return {
        "enabled": True,
        "every": settings.train_every,
        "next_after": next_after.replace(tzinfo=None),
        "within_seconds": every,
        "new_data": training_service.new_data_since_last_run(),
    }


def overview(*, settings: Settings, with_models: bool) -> dict[str, Any]:
    """Everything on the overview page; model and training details only for those who may see them."""
    popular, _ = stats_service.list_items(offset=0, limit=10)
    return {
        "counts": stats_service.counts(),
        "daily": stats_service.interactions_per_day(days=CHART_DAYS),
        "online": take_rate_per_day(CHART_DAYS),
        "popular": popular,
        "health": readiness(),
        "model": active_model() if with_models else None,
        "running": training_service.current_run() if with_models else None,
        "schedule": schedule(settings),
    }


def versions_for_chart(versions: list[dict]) -> list[dict]:
    """Evaluated versions, oldest first, numbered 1.. for the x axis of the metric chart."""
    evaluated = [v for v in reversed(versions) if metric_pairs(v["evaluation"])]
    return [{"n": i + 1, **v} for i, v in enumerate(evaluated)]


def recent_runs(*, settings: Settings, limit: int = 20) -> list[TrainingRun]:
    """Newest first, runs of stopped processes marked failed first (as GET /api/v1/training/runs)."""
    training_service.reap_stale_runs(settings)
    return list(TrainingRun.select().order_by(TrainingRun.id.desc()).limit(limit))


def find_run(run_id: int, *, settings: Settings) -> TrainingRun | None:
    training_service.reap_stale_runs(settings)
    return TrainingRun.get_or_none(TrainingRun.id == run_id)


def suggest_items(*, query: str, limit: int = 20) -> list[str]:
    """Item names containing `query` (case-insensitive), those starting with it first, then by popularity.

    From the active model's catalogue (the items it can answer for); before any model, from the
    stored items' popularity.
    """
    model = serving_service.active_model()
    if model is not None:
        order = model.popularity.argsort(kind="stable")[::-1]
        names = [model.items[i] for i in order]
    else:
        names = [name for name, _ in stats_service.item_popularity(limit=5000)]
    needle = query.strip().lower()
    if not needle:
        return names[:limit]
    hits = [name for name in names if needle in name.lower()]
    hits.sort(key=lambda name: not name.lower().startswith(needle))  # stable: popularity within each
    return hits[:limit]
