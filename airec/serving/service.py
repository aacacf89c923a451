"""Answer queries from the active model in memory; popularity when there is nothing better."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from enum import StrEnum

from airec.catalogue.masks import Rules, blocked_for
from airec.catalogue.ranking import popular_within, rank_within
from airec.catalogue.service import unrecommendable
from airec.db import database
from airec.serving.active import ActiveModel
from airec.serving.served import served_model


class FallbackReason(StrEnum):
    """A recommendation's `fallback`: what answered instead of the model (null when the model did)."""

    POPULARITY = "popularity"  # no active model, or none of the input items is known to it


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


def _fallback_without_model(k: int, skip: set[str], rules: Rules) -> tuple[list[dict], int]:
    """Popular items from the database under the catalogue's rules: (answer, filtered)."""
    ranked = [(name, count) for name, count in _popular_from_database(k + len(skip)) if name not in skip]
    removed = unrecommendable([name for name, _ in ranked], rules)
    kept = [(name, count) for name, count in ranked if name not in removed][:k]
    if len(kept) < k:
        filtered = len(removed)
    else:
        last = next(i for i, (name, _) in enumerate(ranked) if name == kept[-1][0])
        filtered = sum(1 for name, _ in ranked[:last] if name in removed)
    total = float(sum(count for _, count in ranked)) or 1.0
    return [{"item": name, "score": count / total} for name, count in kept], filtered


Chosen = tuple[str | None, ActiveModel | None]


def choose(user: str | None) -> Chosen:
    """(variant, model) that answers `user`: the running experiment's variant for them, else (None, the
    active model). Read once per request: a swap mid-request cannot mix versions."""
    experiment = served_model.experiment
    if experiment is None:
        return None, served_model.active
    return experiment.assign(user)


def recommend(
    *,
    items: Iterable[str],
    k: int = 10,
    exclude: Iterable[str] | None = None,
    explain: bool = False,
    categories: Iterable[str] = (),
    labels: Iterable[str] = (),
    exclude_labels: Iterable[str] = (),
    chosen: Chosen | None = None,
) -> dict:
    """The k items most likely to complete `items`; input and excluded items are never proposed, nor
    items the catalogue hides or the filters (categories, labels, exclude_labels) leave out. `chosen`:
    the experiment's (variant, model) for this request (default: no experiment, the active model)."""
    variant, model = chosen or (None, served_model.active)
    items = list(dict.fromkeys(items))
    exclude = list(dict.fromkeys(exclude)) if exclude else []
    rules = Rules.of(categories, labels, exclude_labels)
    if model is None:
        proposals, filtered = _fallback_without_model(k, set(items) | set(exclude), rules)
        return {
            "items": proposals,
            "model_version": None,
            "unknown_items": items,
            "fallback": FallbackReason.POPULARITY,
            "filtered": filtered,
            "variant": variant,
        }
    known, unknown = model.split_known(items)
    excluded = model.indices(exclude)
    blocked = blocked_for(model, rules)
    if not known:
        proposals, filtered = popular_within(model, k, inputs=known, exclude=excluded, blocked=blocked)
        fallback: FallbackReason | None = FallbackReason.POPULARITY
    else:
        proposals, filtered, _ = rank_within(
            model, known, k, exclude=excluded, blocked=blocked, explain=explain
        )
        fallback = None
    return {
        "items": proposals,
        "model_version": model.version,
        "unknown_items": unknown,
        "fallback": fallback,
        "filtered": filtered,
        "variant": variant,
    }


def similar_items(
    *,
    item: str,
    k: int = 10,
    exclude: Iterable[str] | None = None,
    categories: Iterable[str] = (),
    labels: Iterable[str] = (),
    exclude_labels: Iterable[str] = (),
    chosen: Chosen | None = None,
) -> dict | None:
    """Items that go with `item`: the model's completion of the one-item set, under the catalogue's
    rules. None if item unknown."""
    variant, model = chosen or (None, served_model.active)
    if model is None or item not in model.index:
        return None
    excluded = model.indices(exclude or ())
    blocked = blocked_for(model, Rules.of(categories, labels, exclude_labels))
    proposals, filtered, _ = rank_within(model, [model.index[item]], k, exclude=excluded, blocked=blocked)
    answer = {"item": item, "items": proposals, "model_version": model.version, "filtered": filtered}
    return {**answer, "variant": variant}


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


def negated_items(user: str, negative_types: Iterable[str]) -> set[str]:
    """The user's items whose latest event is of a negative type (AIREC_NEGATIVE_TYPES): never scored
    as the user's taste, never proposed. Only items with a negative event are read."""
    from peewee import fn

    from airec.tables import Interaction, Item, Record, User

    negative = sorted(negative_types)
    user_id = User.select(User.id).where(User.name == user).scalar()
    if not negative or user_id is None:
        return set()
    disliked = (
        Interaction.select(Interaction.item)
        .join(Record, on=Interaction.record == Record.id)
        .where((Interaction.user == user_id) & Record.type.in_(negative))
    )
    rows = (
        Interaction.select(
            Item.name, Record.type, fn.COALESCE(Record.timestamp, Record.created_at), Interaction.id
        )
        .join(Record, on=Interaction.record == Record.id)
        .join(Item, on=Interaction.item == Item.id)
        .where((Interaction.user == user_id) & Interaction.item.in_(disliked))
        .tuples()
    )
    latest: dict[str, tuple] = {}
    for name, kind, moment, row_id in rows:
        if name not in latest or (moment, row_id) > latest[name][:2]:
            latest[name] = (moment, row_id, kind)
    return {name for name, (_, _, kind) in latest.items() if kind in negative}


def recommend_for_user(
    *,
    user: str,
    k: int = 10,
    exclude: Iterable[str] | None = None,
    explain: bool = False,
    max_history: int = 500,
    negative_types: Iterable[str] = (),
    **rules: Iterable[str],
) -> dict:
    """Complete the user's stored history; what the user already has is never proposed.

    Only the `max_history` most recent items are scored (AIREC_MAX_HISTORY), so a user with 10,000
    items costs what one with 500 does; the older ones are still excluded from the proposals. Items
    whose latest event is negative (AIREC_NEGATIVE_TYPES) are excluded and not scored."""
    history = stored = user_history(user)
    negated = negated_items(user, negative_types) if negative_types else set()
    if negated:
        exclude = [*(exclude or ()), *negated]
        history = [name for name in stored if name not in negated]
    scored, older = history[:max_history], history[max_history:]
    # Oldest first: the set's last items are its most recent, the ones an explanation weighs.
    out = recommend(
        items=scored[::-1],
        k=k,
        exclude=[*(exclude or ()), *older],
        explain=explain,
        chosen=choose(user),
        **rules,
    )
    out.pop("unknown_items", None)
    return {"user": user, "history_size": len(stored), "history_used": len(scored), **out}
