"""Service figures per ISO week: decisions by route, corrections by reason, confirmations.

This is what the service's ``/v1/metrics`` (``weeks``) and dashboard show. Decisions are
counted in the week they were made, overrides in the week they were recorded (so a week may
hold overrides of an earlier week's decisions). A *correction* is an override whose final label
differs from the model's (:attr:`tunegate.records.Override.is_correction`); a *confirmation*
is one that agrees. The override rate counts corrections only, and only the override that
counts for each decision (:func:`tunegate.monitor.live_overrides`: the latest not
superseded). Weeks are ISO weeks in UTC (:func:`tunegate.monitor.period_key`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tunegate.monitor._figures import live_overrides, period_key
from tunegate.records import Decision, Override, ReasonCode, Route

__all__ = ["WeekFigures", "weekly_figures"]

REASONS = [code.value for code in ReasonCode]
ROUTES = [route.value for route in Route]


@dataclass
class WeekFigures:
    """One ISO week of decisions and overrides."""

    week: str
    """ISO week, e.g. ``2025-W07``."""
    decisions: int = 0
    """Live (non-shadow) decisions made in the week."""
    routes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROUTES, 0))
    """Route -> decisions routed there."""
    corrections: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    """Reason code -> corrections recorded in the week."""
    confirmations: int = 0
    """Overrides recorded in the week that agree with the model's label."""
    mean_h_norm: float | None = None
    """Mean normalized entropy of the week's decisions (None without decisions)."""

    @property
    def override_rate(self) -> float | None:
        """Corrections per decision in the week (None without decisions)."""
        if not self.decisions:
            return None
        return sum(self.corrections.values()) / self.decisions

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (route shares and the correction total included)."""
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
        key = period_key(d.created_at, "week")
        w = weeks.setdefault(key, WeekFigures(key))
        w.decisions += 1
        w.routes[d.route.value] = w.routes.get(d.route.value, 0) + 1
        entropy[w.week].append(d.h_norm)
    for o in live_overrides(overrides):  # one per decision: retries and superseded don't count
        key = period_key(o.created_at, "week")
        w = weeks.setdefault(key, WeekFigures(key))
        if o.is_correction:
            w.corrections[o.reason_code.value] += 1
        else:
            w.confirmations += 1
    for name, values in entropy.items():
        weeks[name].mean_h_norm = sum(values) / len(values)
    return [weeks[k] for k in sorted(weeks)]
