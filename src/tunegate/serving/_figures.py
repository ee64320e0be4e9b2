"""The service's weekly figures: what ``GET /v1/metrics`` returns and the dashboard draws.

Two views over the same decisions and overrides of the last ``weeks`` weeks:
:func:`tunegate.monitor.weekly_figures` (decisions by route, corrections by reason and
confirmations per ISO week) and :func:`tunegate.monitor.figures_by_period` (monitoring's
override-corrected figures per week, live decisions only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.records import utcnow

if TYPE_CHECKING:
    from tunegate.monitor import PeriodFigures, WeekFigures
    from tunegate.store import Store

__all__ = ["ServiceFigures", "service_figures"]


@dataclass(frozen=True)
class ServiceFigures:
    """Weekly figures since ``since``, oldest week first."""

    weeks: list[WeekFigures]
    monitor: list[PeriodFigures]
    since: datetime
    champion: str | None
    """Where the champion alias points now."""

    @property
    def totals(self) -> dict[str, int]:
        """Decisions, corrections and confirmations over all the weeks."""
        return {
            "decisions": sum(w.decisions for w in self.weeks),
            "corrections": sum(sum(w.corrections.values()) for w in self.weeks),
            "confirmations": sum(w.confirmations for w in self.weeks),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "weeks": [w.to_dict() for w in self.weeks],
            "since": self.since.isoformat(),
            "champion": self.champion,
            "monitor": [p.to_dict() for p in self.monitor],
        }


def service_figures(store: Store, workflow: Workflow, *, weeks: int = 12) -> ServiceFigures:
    """Figures of the decisions and overrides of the last ``weeks`` weeks."""
    from tunegate.monitor import figures_by_period, weekly_figures

    since = utcnow() - timedelta(weeks=weeks)
    decisions = store.decisions(since=since)
    overrides = store.overrides(since=since)
    live = [d for d in decisions if not d.shadow]
    return ServiceFigures(
        weeks=weekly_figures(decisions, overrides),
        monitor=figures_by_period(live, overrides, workflow, period="week", breakdown=False),
        since=since,
        champion=store.get_alias("champion"),
    )
