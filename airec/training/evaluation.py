"""The active model's held-out evaluation, as measured when it was trained.

Training evaluates the chosen configuration on test units it never saw and stores the numbers in the
manifest. The published model is usually that configuration refitted on every unit, test units
included (AIREC_TRAIN_REFIT), so evaluating it again on them would only measure memory: the stored
numbers are the honest estimate, and reading them costs nothing inside a request.
"""

from __future__ import annotations

from airec.serving.active import ActiveModel


class NothingToEvaluate(Exception):
    pass


def evaluate_active(*, model: ActiveModel | None, k: int = 10) -> dict:
    """Hit rate, NDCG and recall at k for the active model and a popularity baseline."""
    if model is None:
        raise NothingToEvaluate("no model is active yet: train one first (POST /api/v1/training)")
    evaluation = model.manifest.get("evaluation") or {}
    stored = evaluation.get("model") or {}
    if not stored:
        raise NothingToEvaluate(f"model {model.version} has no held-out evaluation in its manifest")
    if not any(key.endswith(f"@{k}") for key in stored):
        cutoffs = sorted({int(key.split("@")[1]) for key in stored if "@" in key})
        raise NothingToEvaluate(
            f"model {model.version} was evaluated at k = {', '.join(map(str, cutoffs))}; ask for one of those"
        )

    def pick(metrics: dict) -> dict:
        names = ("hit_rate", "ndcg", "recall")
        return {name: metrics[f"{name}@{k}"] for name in names if f"{name}@{k}" in metrics}

    return {
        "model_version": model.version,
        "algorithm": model.algorithm,
        "protocol": evaluation.get("protocol"),
        "k": k,
        "units": stored.get("n_units"),
        "model": pick(stored),
        "popularity": pick(evaluation.get("popularity") or {}),
        "refit": model.manifest.get("refit"),
        # Typed feedback the model was trained with (older models: none, every event weighed 1).
        "feedback": model.manifest.get("feedback") or {"event_weights": {}, "negative_types": []},
    }
