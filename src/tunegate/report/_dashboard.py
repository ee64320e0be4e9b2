"""Geometry of the service dashboard's stacked bar charts (drawn by the page as inline SVG).

Pure layout: bars, ticks and legend in SVG user units, no markup. The service's template
turns a :class:`StackedBarChart` into ``<rect>``/``<text>`` elements with CSS classes (no
inline styles, so the page's Content-Security-Policy can forbid them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["StackedBar", "StackedBarChart", "stacked_bar_chart"]


@dataclass(frozen=True)
class StackedBar:
    """One rectangle of a stacked bar chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    series: str
    value: float
    category: str


@dataclass(frozen=True)
class StackedBarChart:
    """A stacked bar chart ready to draw: bars, x tick labels, y ticks, and a legend."""

    width: int
    height: int
    bars: list[StackedBar]
    xticks: list[tuple[float, str]]
    """``(x, label)`` of the category labels (every category, or every n-th when many)."""
    yticks: list[tuple[float, str]]
    """``(y, label)`` at 0, half and the top of the axis."""
    series: list[str]
    empty: bool
    """True when every value is zero (draw a "no data" note instead)."""


def stacked_bar_chart(
    categories: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    width: int = 640,
    height: int = 220,
    percent: bool = False,
) -> StackedBarChart:
    """Stacked bars: ``values[i][j]`` is series ``j`` in category ``i``. With ``percent``
    each bar is scaled to 100%."""
    left, right, top, bottom = 40.0, 10.0, 10.0, 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(row) for row in values]
    # y axis up to an even integer so the three ticks (0, half, max) are whole numbers
    vmax = 1.0 if percent else float(max(2, 2 * math.ceil(max([*totals, 0.0]) / 2)))
    n = max(len(categories), 1)
    slot = plot_w / n
    bar_w = min(48.0, max(2.0, slot * 0.7))
    bars: list[StackedBar] = []
    for i, (cat, row) in enumerate(zip(categories, values, strict=True)):
        y = top + plot_h
        denom = totals[i] if percent and totals[i] > 0 else 1.0
        for name, v in zip(series, row, strict=True):
            h = plot_h * (v / denom) / vmax
            y -= h
            if h > 0:
                bars.append(
                    StackedBar(left + i * slot + (slot - bar_w) / 2, y, bar_w, h, name, v, cat)
                )
    step = max(1, len(categories) // 8)
    xticks = [(left + i * slot + slot / 2, c) for i, c in enumerate(categories) if i % step == 0]
    yticks = []
    for frac in (0.0, 0.5, 1.0):
        label = f"{int(frac * 100)}%" if percent else f"{vmax * frac:.0f}"
        yticks.append((top + plot_h * (1 - frac), label))
    return StackedBarChart(width, height, bars, xticks, yticks, list(series), not any(totals))
