"""The original system's answers, built from the same services as /api/v1."""

from __future__ import annotations

from airec.feedback.kinds import Route
from airec.feedback.service import issue
from airec.stats.service import item_popularity
from airec.tables import Item, User


def user_count() -> int:
    return User.select().count()


def item_count() -> int:
    return Item.select().count()


def item_names() -> list[str]:
    """Every item that has interactions, most popular first (the original /listItems order)."""
    return [name for name, _ in item_popularity()]


def propose(*, items: list[str], k: int, **rules: list[str]) -> dict:
    """Old response shape: parallel lists of names and scores from the serving layer (plus `filtered`,
    the catalogue filters' count, and the answer's recommendation_id, variant and model_version; the
    old keys are unchanged)."""
    from airec.serving.service import choose, recommend  # late: serving loads models, optional here

    result = issue(recommend(items=items, k=k, exclude=None, chosen=choose(None), **rules), Route.PROPOSE)
    ranked = result.get("items") or []
    return {
        "items": [row["item"] for row in ranked],
        "scores": [row["score"] for row in ranked],
        "filtered": result["filtered"],
        "recommendation_id": result["recommendation_id"],
        "variant": result["variant"],
        "model_version": result["model_version"],
    }
