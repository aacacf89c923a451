"""Answer queries from the active model in memory; popularity when there is nothing better."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable

from airec.db import database
from airec.serving.active import ActiveModel
from airec.serving.served import served_model

_POPULAR_TTL_SECONDS = 10.0
_POPULAR_DEPTH = 2000
#: Per database (each app has its own): expiry and the counts.
_popular_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_popular_lock = threading.Lock()


def _popular_from_database(limit: int) -> list[tuple[str, int]]:
    """Before any model exists: item counts from the database, cached for a few seconds."""
    with _popular_lock:
        expires, cached = _popular_cache.get(database.obj, (0.0, []))
        if time.monotonic() < expires and (len(cached) >= limit or len(cached) < _POPULAR_DEPTH):
            return cached
        from airec.stats.service import item_popularity

        fresh = item_popularity(limit=max(limit, _POPULAR_DEPTH))
        _popular_cache[database.obj] = (time.monotonic() + _POPULAR_TTL_SECONDS, fresh)
        return fresh


def clear_cache() -> None:
    with _popular_lock:
        _popular_cache.clear()


def _fallback(model: ActiveModel | None, k: int, skip: set[str]) -> list[dict]:
    if model is not None:
        return model.popular(k, exclude=model.indices(skip))
    ranked = [(name, count) for name, count in _popular_from_database(k + len(skip)) if name not in skip]
    total = float(sum(count for _, count in ranked)) or 1.0
    return [{"item": name, "score": count / total} for name, count in ranked[:k]]


def recommend(
    *, items: Iterable[str], k: int = 10, exclude: Iterable[str] | None = None, explain: bool = False
) -> dict:
    """The k items most likely to complete `items`; input and excluded items are never proposed."""
    model = served_model.active  # read once: a swap mid-request cannot mix versions
    items = list(dict.fromkeys(items))
    exclude = list(dict.fromkeys(exclude or ()))
    skip = set(items) | set(exclude)
    if model is None:
        return {
            "items": _fallback(None, k, skip),
            "model_version": None,
            "unknown_items": items,
            "fallback": "popularity",
        }
    known, unknown = model.split_known(items)
    excluded = model.indices(exclude)
    if not known:
        proposals, fallback = _fallback(model, k, skip), "popularity"
    else:
        proposals, fallback = model.rank(known, k, exclude=excluded, explain=explain), None
    return {
        "items": proposals,
        "model_version": model.version,
        "unknown_items": unknown,
        "fallback": fallback,
    }


def similar_items(*, item: str, k: int = 10, exclude: Iterable[str] | None = None) -> dict | None:
    """Items that go with `item`: the model's completion of the one-item set. None if item unknown."""
    model = served_model.active
    if model is None or item not in model.index:
        return None
    excluded = model.indices(exclude or ())
    return {
        "item": item,
        "items": model.rank([model.index[item]], k, exclude=excluded),
        "model_version": model.version,
    }


def active_model() -> ActiveModel | None:
    return served_model.active


class UnknownUser(LookupError):
    """No user by that name in the database."""


def user_history(user: str) -> list[str]:
    """The distinct items the user interacted with, most recent first: by the record's timestamp, or
    when it was stored if it had none, then by insertion order. Two indexed queries, no join on users."""
    from peewee import fn

    from airec.tables import Interaction, Item, Record, User

    user_id = User.select(User.id).where(User.name == user).scalar()
    if user_id is None:
        raise UnknownUser(user)
    last_seen = fn.MAX(fn.COALESCE(Record.timestamp, Record.created_at))
    rows = (
        Item.select(Item.name)
        .join(Interaction, on=Interaction.item == Item.id)
        .join(Record, on=Interaction.record == Record.id)
        .where(Interaction.user == user_id)
        .group_by(Item.id, Item.name)
        .order_by(last_seen.desc(), fn.MAX(Interaction.id).desc())
        .tuples()
    )
    return [name for (name,) in rows]


def recommend_for_user(
    *,
    user: str,
    k: int = 10,
    exclude: Iterable[str] | None = None,
    explain: bool = False,
    max_history: int = 500,
) -> dict:
    """Complete the user's stored history; what the user already has is never proposed.

    Only the `max_history` most recent items are scored (AIREC_MAX_HISTORY), so a user with 10,000
    items costs what one with 500 does; the older ones are still excluded from the proposals."""
    history = user_history(user)
    scored, older = history[:max_history], history[max_history:]
    # Oldest first: the set's last items are its most recent, the ones an explanation weighs.
    out = recommend(items=scored[::-1], k=k, exclude=[*(exclude or ()), *older], explain=explain)
    out.pop("unknown_items", None)
    return {"user": user, "history_size": len(history), "history_used": len(scored), **out}
