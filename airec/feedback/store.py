"""The feedback tables: writing impression batches with their hourly counts, deleting expired ones, and
marking takes. Plain functions over peewee; callers hold a connection."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence

from peewee import EXCLUDED

from airec.db import atomic_write
from airec.tables import Impression, ImpressionCount, utcnow

#: Rows per INSERT (7 columns: well under SQLite's old 999 bound-variable limit).
_ROWS_PER_INSERT = 120
#: Expired impressions deleted per statement, and statements per housekeeping pass: a retention pass
#: never holds a long lock on a large table.
DELETE_BATCH = 1000
DELETE_BATCHES_PER_PASS = 20

CountKey = tuple[dt.datetime, str, str, str, int]  # hour, route, model_version, variant, position


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _counts_key(hour: dt.datetime, route: str, version: str | None, variant: str | None) -> tuple:
    return (hour, route, version or "", variant or "")


def add_counts(counts: Counter, *, takes: bool = False) -> None:
    """Add {(hour, route, model_version, variant, position): n} to impression_counts, in key order so two
    workers' upserts never wait on each other in a cycle."""
    column = ImpressionCount.takes if takes else ImpressionCount.impressions
    rows = [
        {
            "hour": hour,
            "route": route,
            "model_version": version,
            "variant": variant,
            "position": position,
            "impressions": 0 if takes else n,
            "takes": n if takes else 0,
        }
        for (hour, route, version, variant, position), n in sorted(counts.items())
    ]
    for start in range(0, len(rows), 100):
        ImpressionCount.insert_many(rows[start : start + 100]).on_conflict(
            conflict_target=[
                ImpressionCount.hour,
                ImpressionCount.route,
                ImpressionCount.model_version,
                ImpressionCount.variant,
                ImpressionCount.position,
            ],
            update={column: column + getattr(EXCLUDED, column.name)},
        ).execute()


def write_impressions(batch: Sequence[tuple]) -> None:
    """Store queued impressions (recommendation_id, route, user, model_version, variant, items,
    created_at) and add them to the hourly counts, in one transaction."""
    rows = [
        {
            "recommendation_id": rid,
            "route": route,
            "user": user,
            "model_version": version,
            "variant": variant,
            "items": items,
            "created_at": created,
        }
        for rid, route, user, version, variant, items, created in batch
    ]
    counts: Counter = Counter()
    for _, route, _, version, variant, items, created in batch:
        key = _counts_key(hour_of(created), route, version, variant)
        for position in range(len(items) + 1):
            counts[(*key, position)] += 1

    def store() -> None:
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            Impression.insert_many(rows[start : start + _ROWS_PER_INSERT]).on_conflict_ignore().execute()
        add_counts(counts)

    atomic_write(store)


def delete_expired(days: int) -> int:
    """Delete impressions (and their hourly counts) older than `days`, at most DELETE_BATCH rows per
    statement; returns how many impressions went."""
    cutoff = utcnow() - dt.timedelta(days=days)
    deleted = 0
    for _ in range(DELETE_BATCHES_PER_PASS):
        oldest = Impression.select(Impression.id).where(Impression.created_at < cutoff).limit(DELETE_BATCH)
        gone = atomic_write(lambda q=oldest: Impression.delete().where(Impression.id.in_(q)).execute())
        deleted += gone
        if gone < DELETE_BATCH:
            break
    atomic_write(lambda: ImpressionCount.delete().where(ImpressionCount.hour < hour_of(cutoff)).execute())
    return deleted


def by_ids(recommendation_ids: Iterable[str]) -> dict[str, Impression]:
    ids = sorted(set(recommendation_ids))
    found: dict[str, Impression] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(
            (row.recommendation_id, row)
            for row in Impression.select().where(Impression.recommendation_id.in_(chunk))
        )
    return found


def shown_to(users: Iterable[str], since: dt.datetime, until: dt.datetime) -> dict[str, list[Impression]]:
    """Each user's impressions shown between `since` and `until`, most recent first."""
    names = sorted(set(users))
    out: dict[str, list[Impression]] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        query = (
            Impression.select()
            .where(Impression.user.in_(chunk) & Impression.created_at.between(since, until))
            .order_by(Impression.created_at.desc(), Impression.id.desc())
        )
        for row in query:
            out.setdefault(row.user, []).append(row)
    return out


def mark_taken(impression: Impression, position: int, when: dt.datetime) -> bool:
    """Mark an impression taken at `position` unless it already was; count the take if this marked it."""
    marked = (
        Impression.update(taken_position=position, taken_at=when)
        .where((Impression.id == impression.id) & Impression.taken_position.is_null())
        .execute()
    )
    if not marked:
        return False
    key = _counts_key(
        hour_of(impression.created_at), impression.route, impression.model_version, impression.variant
    )
    add_counts(Counter({(*key, 0): 1, (*key, position): 1}), takes=True)
    impression.taken_position = position
    return True
