"""The original system's answers, built from the same services as /api/v1."""

from __future__ import annotations

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
    the catalogue filters' count; the old keys are unchanged)."""
    from airec.serving.service import recommend  # imported late: serving loads models and is optional here

    result = recommend(items=items, k=k, exclude=None, **rules)
    ranked = result.get("items") or []
    return {
        "items": [row["item"] for row in ranked],
        "scores": [row["score"] for row in ranked],
        "filtered": result["filtered"],
    }
