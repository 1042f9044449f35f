"""Charts as server-rendered SVG, readable without JavaScript, each with a text alternative (a
summary for screen readers and a data table under "Show the figures"). Shared by the apps' pages:

    {% load charts %}
    {% bar_chart points title="Credits used per day" unit="credits" %}

`points` is a list of `{"label": str, "value": number}` in order (days, hours, ...)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from django import template

from .money import format_credits

register = template.Library()

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 24
_ids = itertools.count(1)


@register.inclusion_tag("billing/partials/bar_chart.html")
def bar_chart(points, title: str, unit: str = "", label_every: int = 0):
    values = [Decimal(str(p["value"] or 0)) for p in points]
    peak = max(values, default=Decimal(0))
    scale_top = peak if peak > 0 else Decimal(1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)
    every = label_every or max(1, round(len(points) / 6))
    bars = []
    for index, (point, value) in enumerate(zip(points, values, strict=True)):
        height = float(value / scale_top) * plot_h
        bars.append(
            {
                "x": round(LEFT + index * step + step * 0.1, 2),
                "y": round(TOP + plot_h - height, 2),
                "w": round(step * 0.8, 2),
                "h": round(height, 2),
                "label": point["label"],
                "value": format_credits(value),
                "show_label": index % every == 0,
                "label_x": round(LEFT + index * step + step / 2, 2),
            }
        )
    total = sum(values, Decimal(0))
    peak_point = next((p for p, v in zip(points, values, strict=True) if v == peak and peak > 0), None)
    summary = f"{format_credits(total)} {unit} in all over {len(points)} periods".strip()
    if peak_point is not None:
        summary += f"; the most, {format_credits(peak)}, on {peak_point['label']}"
    return {
        "chart_id": f"chart-{next(_ids)}",
        "title": title,
        "unit": unit,
        "bars": bars,
        "summary": summary + ".",
        "width": WIDTH,
        "height": HEIGHT,
        "axis": {
            "left": LEFT,
            "right": WIDTH - RIGHT,
            "bottom": TOP + plot_h,
            "top": TOP,
            "mid": TOP + plot_h / 2,
            "center": LEFT + plot_w / 2,
            "label_y": HEIGHT - 6,
        },
        "ticks": {"top": format_credits(peak), "mid": format_credits(peak / 2) if peak else "0"},
        "empty": peak == 0,
    }
