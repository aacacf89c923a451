"""Whether a newly published model becomes the active one (AIREC_ACTIVATE, an operator's pin), moving
the database's pointer in the same transaction that registers it, and serving it here at once."""

from __future__ import annotations

from airec import leases
from airec.config import ActivationMode
from airec.serving.active import ActiveModel
from airec.serving.served import served_model
from airec.tables import ModelVersion


def active_folder() -> str | None:
    """The folder of the model served now (a warm start begins from it), or None."""
    active = served_model.active
    return str(served_model.models_dir / active.version) if active is not None else None


def activate_unless_refused(version: str, manifest: dict, policy: str) -> str | None:
    """Point the database at `version` unless it must not become active; returns why not, or None.
    Call inside the transaction that registers it: the decision and the pointer move are one step."""
    reason = activation_refusal(manifest, policy)
    if reason is None:
        leases.set_value(leases.ACTIVE_MODEL_KEY, version)
    return reason


def serve_here(model: ActiveModel) -> None:
    """Serve the new model in this process at once (others follow the pointer on their next poll)."""
    served_model.follow(model)


def activation_refusal(manifest: dict, policy: ActivationMode) -> str | None:
    """Why a newly trained model must not become active, or None. Reads the pointer and the pin inside
    the caller's transaction, so the decision and the pointer move are one step."""
    pinned = leases.get_pinned_version()
    if pinned:
        return (
            f"registered, not activated: model {pinned} is pinned by an operator "
            "(POST /api/v1/models/unpin releases it)"
        )
    if policy != ActivationMode.IF_BETTER:
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
