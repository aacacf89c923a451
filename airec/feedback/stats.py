"""Online take rates, summed from the hourly counts (impression_counts): a few hundred rows at most
whatever the number of impressions, so the answer stays fast over millions."""

from __future__ import annotations

import datetime as dt

from peewee import fn

from airec.feedback.intervals import rate, wilson
from airec.feedback.store import hour_of
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
    where = (ImpressionCount.hour >= start) & (ImpressionCount.hour < end_hour)
    for column, wanted in (
        (ImpressionCount.model_version, model_version),
        (ImpressionCount.variant, variant),
        (ImpressionCount.route, route),
    ):
        if wanted is not None:
            where &= column == str(wanted)
    rows = (
        ImpressionCount.select(
            ImpressionCount.position, fn.SUM(ImpressionCount.impressions), fn.SUM(ImpressionCount.takes)
        )
        .where(where)
        .group_by(ImpressionCount.position)
        .order_by(ImpressionCount.position)
        .tuples()
    )
    totals = {int(position): (int(n or 0), int(t or 0)) for position, n, t in rows}
    whole = totals.pop(0, (0, 0))
    return {
        "since": start,
        "until": end_hour,
        **rated(*whole),
        "by_position": [{"position": p, **rated(n, t)} for p, (n, t) in sorted(totals.items()) if n],
    }
