"""Jinja filters that turn the services' values into what a person reads on a page."""

from __future__ import annotations

import datetime as dt

from flask import Flask


def when(value: dt.datetime | str | None) -> str:
    """A UTC time to the minute: '2026-11-28 14:05 UTC'."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M UTC")


def ago(delta: dt.timedelta | None) -> str:
    """An age in the largest whole unit: '42 s', '5 min', '3 h', '2 days'."""
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def seconds(value: float | int | None) -> str:
    if value is None:
        return "—"
    return ago(dt.timedelta(seconds=value)) if value >= 60 else f"{value:.1f} s"


def number(value: float | int | None) -> str:
    """Thousands separated integers; metrics to three decimals."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3f}"


def percent(value: float | None) -> str:
    """A rate (0..1) in percent to two decimals: take rates are small."""
    return "—" if value is None else f"{100 * value:.2f}%"


def interval(bounds: list[float] | tuple[float, float] | None) -> str:
    """A 95% interval of a rate, in percent: '5.40–6.70%'."""
    if not bounds:
        return "—"
    low, high = bounds
    return f"{100 * low:.2f}–{100 * high:.2f}%"


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        when=when, ago=ago, seconds=seconds, number=number, percent=percent, interval=interval
    )
