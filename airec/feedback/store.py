"""The feedback tables: writing impression batches with their hourly counts, deleting expired ones, and
marking takes. Plain functions over peewee; callers hold a connection."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Sequence

import orjson
from peewee import EXCLUDED

from airec.db import atomic_write, database
from airec.feedback.kinds import Span
from airec.tables import Impression, ImpressionCount, utcnow

#: Rows per INSERT (7 columns: well under SQLite's old 999 bound-variable limit).
_ROWS_PER_INSERT = 120
#: Expired impressions deleted per statement, and statements per housekeeping pass: a retention pass
#: never holds a long lock on a large table.
DELETE_BATCH = 1000
DELETE_BATCHES_PER_PASS = 20


def hour_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _counts_key(moment: dt.datetime, route: str, version: str | None, variant: str | None) -> tuple:
    """The counts' key of an impression: its hour (the finest span counted), so a batch's impressions
    add up in a few keys instead of one per impression and position."""
    return (hour_of(moment), route, version or "", variant or "")


def add_counts(counts: Counter, *, takes: bool = False) -> None:
    """Add {(moment, route, model_version, variant, position): n} to impression_counts, to both the hour's
    and the day's rows, in key order so two workers' upserts never wait on each other in a cycle."""
    column = ImpressionCount.takes if takes else ImpressionCount.impressions
    spans: Counter = Counter()
    hour, day = Span.HOUR.value, Span.DAY.value
    for (moment, *rest), n in counts.items():
        spans[(hour, hour_of(moment), *rest)] += n
        spans[(day, day_of(moment), *rest)] += n
    rows = [
        {
            "span": span,
            "period": period,
            "route": route,
            "model_version": version,
            "variant": variant,
            "position": position,
            "impressions": 0 if takes else n,
            "takes": n if takes else 0,
        }
        for (span, period, route, version, variant, position), n in sorted(spans.items())
    ]
    for start in range(0, len(rows), 100):
        ImpressionCount.insert_many(rows[start : start + 100]).on_conflict(
            conflict_target=[
                ImpressionCount.span,
                ImpressionCount.period,
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
    stamp = Impression.created_at.db_value
    rows = [
        (rid, route, user, version, variant, _items_text(items), stamp(created))
        for rid, route, user, version, variant, items, created in batch
    ]
    # Answers counted by key and length first: an answer of n items adds 1 to positions 0..n.
    lengths: Counter = Counter(
        (*_counts_key(created, route, version, variant), len(items))
        for _, route, _, version, variant, items, created in batch
    )
    counts: Counter = Counter()
    for (*key, length), n in lengths.items():
        for position in range(length + 1):
            counts[(*key, position)] += n

    def store() -> None:
        _insert_impressions(rows)
        add_counts(counts)

    atomic_write(store)


def _items_text(items: list[str]) -> str:
    """The shown items as compact JSON text, by orjson (a tenth of json.dumps's time per impression);
    json.dumps for what orjson refuses (a lone surrogate). Both read back as the same list."""
    try:
        return orjson.dumps(items).decode()
    except orjson.JSONEncodeError:
        return json.dumps(items, separators=(",", ":"))


_IMPRESSION_COLUMNS = (
    "recommendation_id",
    "route",
    "user",
    "model_version",
    "variant",
    "items",
    "created_at",
)


def _insert_impressions(rows: list[tuple]) -> None:
    """Multi-row INSERTs written by hand (peewee's query builder took most of a batch's time); quoting
    and parameters come from the database, so the same SQL runs on SQLite and PostgreSQL."""
    db = database.obj
    quote = db.quote
    columns = ", ".join(f"{quote[0]}{name}{quote[1]}" for name in _IMPRESSION_COLUMNS)
    head = f"INSERT INTO {quote[0]}impressions{quote[1]} ({columns}) VALUES "
    one = "(" + ", ".join([db.param] * len(_IMPRESSION_COLUMNS)) + ")"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        sql = head + ", ".join([one] * len(chunk)) + " ON CONFLICT DO NOTHING"
        db.execute_sql(sql, [value for row in chunk for value in row])


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
    for span, start in ((Span.HOUR, hour_of(cutoff)), (Span.DAY, day_of(cutoff))):
        atomic_write(
            lambda span=span, start=start: (
                ImpressionCount.delete()
                .where((ImpressionCount.span == span.value) & (ImpressionCount.period < start))
                .execute()
            )
        )
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
    key = _counts_key(impression.created_at, impression.route, impression.model_version, impression.variant)
    add_counts(Counter({(*key, 0): 1, (*key, position): 1}), takes=True)
    impression.taken_position = position
    return True
