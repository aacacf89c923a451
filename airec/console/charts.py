"""Small charts drawn on the server as SVG: no chart library, no script, nothing fetched.

Each chart is an <svg role="img"> with a title and a description a screen reader can read; pages
also show the numbers in a table beside it. Colours come from CSS classes (see static/console.css).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28  # room for the axis labels


@dataclass(frozen=True)
class Series:
    """One line: a name for the legend, (x, y) points, and the CSS class that colours it."""

    name: str
    points: Sequence[tuple[float, float]]
    css: str


def _number(value: float) -> str:
    """Axis labels: short, and readable for losses in the hundreds as for metrics below 1."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 10:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _frame(chart_id: str, title: str, description: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def _y_axis(low: float, high: float) -> list[str]:
    """Three horizontal grid lines with their values."""
    out = []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + (1 - fraction) * (HEIGHT - TOP - BOTTOM)
        value = low + fraction * (high - low)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        label = _number(value)
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    return out


def _x_label(x: float, text: str, anchor: str) -> str:
    return f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{escape(text)}</text>'


def bar_chart(
    values: Sequence[tuple[str, float]],
    *,
    chart_id: str,
    title: str,
    unit: str,
    digits: int = 0,
    description: str | None = None,
) -> str:
    """One bar per (label, value), e.g. interactions per day; the first, middle and last labels shown.
    `digits`: decimals in the bars' tooltips (rates need some); `description` replaces the default one
    (a total, which means nothing for rates)."""
    top = max((v for _, v in values), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(values), 1)
    body = _y_axis(0, top)
    for i, (label, value) in enumerate(values):
        h = plot_h * value / top
        body.append(
            f'<rect class="bar" x="{LEFT + i * step + step * 0.15:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}: {value:,.{digits}f} {escape(unit)}</title></rect>"
        )
    if values:
        for i, anchor in ((0, "start"), (len(values) // 2, "middle"), (len(values) - 1, "end")):
            x = LEFT + i * step + step / 2 if anchor == "middle" else LEFT + (i + (anchor == "end")) * step
            body.append(_x_label(x, values[i][0], anchor))
    total = sum(v for _, v in values)
    description = description or (
        f"{len(values)} bars from {values[0][0]} to {values[-1][0]}; total {total:,.0f} {unit}, "
        f"largest {max(v for _, v in values):,.0f}."
        if values
        else "No data."
    )
    return _frame(chart_id, title, description, body)


def line_chart(series: Sequence[Series], *, chart_id: str, title: str, x_name: str) -> str:
    """Lines over a shared numeric x axis (epochs, versions); a point alone is drawn as a dot."""
    drawn = [s for s in series if s.points]
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points if math.isfinite(y)]
    if not ys:
        return _frame(chart_id, title, "No data yet.", [_x_label(WIDTH / 2, "no data yet", "middle")])
    low, high = min(ys), max(ys)
    pad = (high - low) * 0.08 or abs(high) * 0.08 or 1.0
    low, high = low - pad, high + pad
    x_low, x_high = min(xs), max(xs)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> str:
        px = LEFT + (plot_w * (x - x_low) / (x_high - x_low) if x_high > x_low else plot_w / 2)
        py = TOP + plot_h * (1 - (y - low) / (high - low))
        return f"{px:.1f},{py:.1f}"

    body = _y_axis(low, high)
    for s in drawn:
        points = [at(x, y) for x, y in s.points if math.isfinite(y)]
        body.append(f'<polyline class="line {escape(s.css)}" points="{" ".join(points)}"/>')
        if len(points) == 1 or len(points) <= 12:
            for point in points:
                cx, cy = point.split(",")
                body.append(f'<circle class="dot {escape(s.css)}" cx="{cx}" cy="{cy}" r="3"/>')
    body.append(_x_label(LEFT, f"{x_name} {_number(x_low)}", "start"))
    body.append(_x_label(WIDTH - RIGHT, f"{x_name} {_number(x_high)}", "end"))
    description = "; ".join(
        f"{s.name}: {len(s.points)} points, last {_number(s.points[-1][1])}" for s in drawn
    )
    return _frame(chart_id, title, description, body)
