"""Read-only views of the data: counts, item popularity, and an insertion-ordered export."""

from __future__ import annotations

import datetime as dt

import peewee

from airec.tables import Interaction, Item, Record, User


def counts() -> dict:
    """How many users, items, records and interactions are stored."""
    return {
        "users": User.select().count(),
        "items": Item.select().count(),
        "records": Record.select().count(),
        "interactions": Interaction.select().count(),
    }


def _popularity_query(*, seen_only: bool = False) -> peewee.ModelSelect:
    """Items with their interaction counts, most popular first, ties broken by name.

    seen_only drops items without interactions (an inner join instead of a left outer one).
    """
    count = peewee.fn.COUNT(Interaction.id)
    join = peewee.JOIN.INNER if seen_only else peewee.JOIN.LEFT_OUTER
    return (
        Item.select(Item.name, count.alias("count"))
        .join(Interaction, join, on=(Interaction.item == Item.id))
        .group_by(Item.id, Item.name)
        .order_by(count.desc(), Item.name.asc())
    )


def list_items(*, offset: int = 0, limit: int = 10) -> tuple[list[dict], int]:
    """One page of items with counts, and the total number of items (for the pagination header)."""
    query = _popularity_query().offset(offset).limit(limit).tuples()
    page = [{"item": name, "count": count} for name, count in query]
    return page, Item.select().count()


def item_popularity(limit: int | None = None) -> list[tuple[str, int]]:
    """(name, interaction count) for items seen at least once, most popular first, ties by name.

    The serving side uses this as the fallback when no model can answer.
    """
    query = _popularity_query(seen_only=True)
    if limit is not None:
        query = query.limit(limit)
    return [(name, n) for name, n in query.tuples()]


def export_interactions(*, after: int = 0, limit: int = 1000) -> dict:
    """Interactions with id > after, in insertion (id) order; next_after is None on the last page.

    Keyset pagination: each page is an index range scan, so exporting millions of rows stays linear.
    """
    query = (
        Interaction.select(Interaction.id, Interaction.record, User.name, Item.name, Record.timestamp)
        .join(Item, on=(Interaction.item == Item.id))
        .switch(Interaction)
        .join(Record, on=(Interaction.record == Record.id))
        .switch(Interaction)
        .join(User, peewee.JOIN.LEFT_OUTER, on=(Interaction.user == User.id))
        .where(Interaction.id > after)
        .order_by(Interaction.id)
        .limit(limit + 1)
        .tuples()
    )
    rows = list(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "interactions": [
            {"id": iid, "record": rid, "user": user, "item": item, "timestamp": _as_datetime(ts)}
            for iid, rid, user, item, ts in rows
        ],
        "next_after": rows[-1][0] if more else None,
    }


def _as_datetime(value) -> dt.datetime | None:
    """SQLite hands back text for DateTimeField in .tuples() queries on some versions; normalise."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def interactions_per_day(*, days: int = 30, today: dt.date | None = None) -> list[dict]:
    """Interactions received on each of the last `days` UTC days (today included), zeros included.

    A day is when airec stored the record (its created_at), not the client's own timestamp: this
    counts what arrived, which is what an operator watching ingestion wants to see.
    """
    today = today or dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    day = peewee.fn.date(Record.created_at)
    query = (
        Interaction.select(day, peewee.fn.COUNT(Interaction.id))
        .join(Record, on=(Interaction.record == Record.id))
        .where(Record.created_at >= dt.datetime.combine(first, dt.time()))
        .group_by(day)
        .tuples()
    )
    counted = {str(value)[:10]: n for value, n in query}  # SQLite answers text, PostgreSQL a date
    dates = (first + dt.timedelta(days=i) for i in range(days))
    return [{"date": d.isoformat(), "interactions": counted.get(d.isoformat(), 0)} for d in dates]
