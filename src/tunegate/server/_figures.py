"""Weekly service figures and the geometry of the dashboard's inline SVG charts.

A *correction* is an override whose final label differs from the model's label; a
*confirmation* is an override record whose final label equals it (the analyst agreed). Override
trends and the override rate count corrections only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tunegate.records import Decision, Override, ReasonCode, Route

__all__ = ["WeekFigures", "bar_chart", "is_correction", "weekly_figures"]

REASONS = [code.value for code in ReasonCode]
ROUTES = [route.value for route in Route]


def iso_week(moment: datetime) -> str:
    """``2024-W07``: the ISO year and week of a timestamp."""
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def is_correction(override: Override) -> bool:
    """True when the analyst changed the label (not a confirmation)."""
    return override.model_label is None or override.final_label != override.model_label


@dataclass
class WeekFigures:
    """One ISO week of decisions and overrides."""

    week: str
    decisions: int = 0
    routes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    corrections: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    confirmations: int = 0
    mean_h_norm: float | None = None

    @property
    def override_rate(self) -> float | None:
        """Corrections per decision in the week (None without decisions)."""
        if not self.decisions:
            return None
        return sum(self.corrections.values()) / self.decisions

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "decisions": self.decisions,
            "routes": dict(self.routes),
            "route_shares": {
                k: (v / self.decisions if self.decisions else None) for k, v in self.routes.items()
            },
            "corrections_by_reason": dict(self.corrections),
            "corrections": sum(self.corrections.values()),
            "confirmations": self.confirmations,
            "override_rate": self.override_rate,
            "mean_h_norm": self.mean_h_norm,
        }


def weekly_figures(
    decisions: Iterable[Decision], overrides: Iterable[Override]
) -> list[WeekFigures]:
    """Figures per ISO week, oldest first, for every week with a decision or an override.
    Shadow decisions (a candidate scoring beside the champion) are not counted."""
    weeks: dict[str, WeekFigures] = {}
    entropy: dict[str, list[float]] = defaultdict(list)
    for d in decisions:
        if d.shadow:
            continue
        w = weeks.setdefault(iso_week(d.created_at), WeekFigures(iso_week(d.created_at)))
        w.decisions += 1
        w.routes[d.route.value] = w.routes.get(d.route.value, 0) + 1
        entropy[w.week].append(d.h_norm)
    for o in overrides:
        w = weeks.setdefault(iso_week(o.created_at), WeekFigures(iso_week(o.created_at)))
        if is_correction(o):
            w.corrections[o.reason_code.value] += 1
        else:
            w.confirmations += 1
    for name, values in entropy.items():
        weeks[name].mean_h_norm = sum(values) / len(values)
    return [weeks[k] for k in sorted(weeks)]


@dataclass(frozen=True)
class Bar:
    """One rectangle of a stacked bar chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    series: str
    value: float
    category: str


@dataclass(frozen=True)
class Chart:
    """A stacked bar chart ready to draw: bars, x tick labels, y ticks, and a legend."""

    width: int
    height: int
    bars: list[Bar]
    xticks: list[tuple[float, str]]
    yticks: list[tuple[float, str]]
    series: list[str]
    empty: bool


def bar_chart(
    categories: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    width: int = 640,
    height: int = 220,
    percent: bool = False,
) -> Chart:
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
    bars: list[Bar] = []
    for i, (cat, row) in enumerate(zip(categories, values, strict=True)):
        y = top + plot_h
        denom = totals[i] if percent and totals[i] > 0 else 1.0
        for name, v in zip(series, row, strict=True):
            h = plot_h * (v / denom) / vmax
            y -= h
            if h > 0:
                bars.append(Bar(left + i * slot + (slot - bar_w) / 2, y, bar_w, h, name, v, cat))
    step = max(1, len(categories) // 8)
    xticks = [(left + i * slot + slot / 2, c) for i, c in enumerate(categories) if i % step == 0]
    yticks = []
    for frac in (0.0, 0.5, 1.0):
        label = f"{int(frac * 100)}%" if percent else f"{vmax * frac:.0f}"
        yticks.append((top + plot_h * (1 - frac), label))
    return Chart(width, height, bars, xticks, yticks, list(series), not any(totals))
