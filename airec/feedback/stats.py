"""Online take rates, summed from the pre-aggregated counts (impression_counts): whole days from the
day rows, the range's edges from the hour rows, so the rows read depend on the range, never on how many
impressions there are."""

from __future__ import annotations

import datetime as dt

from peewee import fn

from airec.feedback.intervals import rate, wilson
from airec.feedback.kinds import Span
from airec.feedback.store import day_of, hour_of
from airec.tables import ImpressionCount, utcnow


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def rated(impressions: int, takes: int) -> dict:
    interval = wilson(takes, impressions)
    return {
        "impressions": impressions,
        "takes": takes,
        "take_rate": rate(takes, impressions),
        "interval": list(interval) if interval else None,
    }


def online_stats(
    *,
    keep_days: int,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    model_version: str | None = None,
    variant: str | None = None,
    route: str | None = None,
) -> dict:
    """Impressions, takes, take rate with its Wilson 95% interval, and the same by position, over whole
    hours from `since` (rounded down) to `until` (rounded up), optionally for one model version,
    variant or route. `variant=""`/`model_version=""` are no filter here: the query schema refuses them."""
    end = _naive(until) if until else utcnow()
    start = hour_of(_naive(since) if since else end - dt.timedelta(days=keep_days))
    end_hour = hour_of(end) + (dt.timedelta(hours=1) if end != hour_of(end) else dt.timedelta(0))
    filters = None
    for column, wanted in (
        (ImpressionCount.model_version, model_version),
        (ImpressionCount.variant, variant),
        (ImpressionCount.route, route),
    ):
        if wanted is not None:
            filters = column == str(wanted) if filters is None else filters & (column == str(wanted))
    totals: dict[int, list[int]] = {}
    for span, first, last in _periods(start, end_hour):
        where = (
            (ImpressionCount.span == span)
            & (ImpressionCount.period >= first)
            & (ImpressionCount.period < last)
        )
        for position, n, t in _sums(where if filters is None else where & filters):
            counted = totals.setdefault(int(position), [0, 0])
            counted[0] += int(n or 0)
            counted[1] += int(t or 0)
    whole = totals.pop(0, [0, 0])
    return {
        "since": start.replace(tzinfo=dt.UTC),
        "until": end_hour.replace(tzinfo=dt.UTC),
        **rated(*whole),
        "by_position": [{"position": p, **rated(n, t)} for p, (n, t) in sorted(totals.items()) if n],
    }


def _periods(start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """[start, end) as the whole days inside it (day rows) and the hours at its edges (hour rows)."""
    first_day = day_of(start) + (dt.timedelta(days=1) if start != day_of(start) else dt.timedelta(0))
    last_day = day_of(end)
    if first_day >= last_day:
        return [(Span.HOUR.value, start, end)]
    return [
        (Span.HOUR.value, start, first_day),
        (Span.DAY.value, first_day, last_day),
        (Span.HOUR.value, last_day, end),
    ]


def _sums(where) -> list[tuple]:
    return list(
        ImpressionCount.select(
            ImpressionCount.position, fn.SUM(ImpressionCount.impressions), fn.SUM(ImpressionCount.takes)
        )
        .where(where)
        .group_by(ImpressionCount.position)
        .tuples()
    )


def take_rate_per_day(days: int) -> list[dict]:
    """The last `days` UTC days, today included, oldest first: each day's impressions, takes and take
    rate with its interval, from the day rows in one query (for the console's overview chart)."""
    today = day_of(utcnow())
    first = today - dt.timedelta(days=days - 1)
    rows = (
        ImpressionCount.select(
            ImpressionCount.period, fn.SUM(ImpressionCount.impressions), fn.SUM(ImpressionCount.takes)
        )
        .where(
            (ImpressionCount.span == Span.DAY.value)
            & (ImpressionCount.position == 0)
            & (ImpressionCount.period >= first)
        )
        .group_by(ImpressionCount.period)
        .tuples()
    )
    counted = {day_of(_naive(period)).date(): (int(n or 0), int(t or 0)) for period, n, t in rows}
    out = []
    for offset in range(days):
        day = (first + dt.timedelta(days=offset)).date()
        out.append({"date": day.isoformat(), **rated(*counted.get(day, (0, 0)))})
    return out
