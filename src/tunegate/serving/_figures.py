"""The service's weekly figures: what ``GET /v1/metrics`` returns and the dashboard draws.

Two views over the same decisions and overrides of one window of time:
:func:`tunegate.monitor.weekly_figures` (decisions by route, corrections by reason and
confirmations per ISO week) and :func:`tunegate.monitor.figures_by_period` (monitoring's
override-corrected figures per week, live decisions only).

The window follows the data: by default it is the ``weeks`` weeks that end with the day of
the newest decision or override in the store (today when the store has none), so a store
whose traffic was simulated (or stopped) months ago still shows its weeks; a chosen range
(``start`` and/or ``end``, ISO dates, both inclusive) replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.records import utcnow

if TYPE_CHECKING:
    from tunegate.monitor import PeriodFigures, WeekFigures
    from tunegate.store import Store

__all__ = ["ServiceFigures", "service_figures"]

MAX_WINDOW_WEEKS = 104
"""The longest window (in weeks) the figures are computed over."""


@dataclass(frozen=True)
class ServiceFigures:
    """Weekly figures of the window ``[since, until)``, oldest week first."""

    weeks: list[WeekFigures]
    monitor: list[PeriodFigures]
    since: datetime
    """Start of the window (UTC midnight, inclusive)."""
    champion: str | None
    """Where the champion alias points now."""
    until: datetime
    """End of the window (UTC midnight after its last day, exclusive)."""
    chosen: bool = False
    """True when the caller chose the range; False when it follows the newest data."""

    @property
    def first_day(self) -> date:
        """The window's first day (inclusive)."""
        return self.since.date()

    @property
    def last_day(self) -> date:
        """The window's last day (inclusive)."""
        return (self.until - timedelta(days=1)).date()

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
            "until": self.until.isoformat(),
            "chosen": self.chosen,
            "champion": self.champion,
            "monitor": [p.to_dict() for p in self.monitor],
        }


def _as_date(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value.date() if isinstance(value, datetime) else value
    text = str(value).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{name} must be an ISO date (YYYY-MM-DD), got {text[:40]!r}") from None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def service_figures(
    store: Store,
    workflow: Workflow,
    *,
    weeks: int = 12,
    start: date | str | None = None,
    end: date | str | None = None,
) -> ServiceFigures:
    """Figures of the decisions and overrides of one window (see the module docstring).

    ``end`` (inclusive) defaults to the day of the newest decision or override (today for an
    empty store); ``start`` (inclusive) defaults to ``weeks`` weeks before the day after
    ``end``. Dates may be ISO strings. :class:`InputError` when a date is not ISO, when
    ``start`` is after ``end`` or when the window is longer than 104 weeks.
    """
    from tunegate.monitor import figures_by_period, weekly_figures

    if not 1 <= weeks <= MAX_WINDOW_WEEKS:
        raise InputError(f"weeks must be in 1..{MAX_WINDOW_WEEKS}, got {weeks}")
    first = _as_date(start, "from")
    last = _as_date(end, "to")
    if last is None:
        newest = store.latest_activity()
        last = (newest or utcnow()).astimezone(UTC).date()
    until = _midnight(last + timedelta(days=1))
    since = _midnight(first) if first is not None else until - timedelta(weeks=weeks)
    if since >= until:
        raise InputError(f"from ({since.date()}) must be on or before to ({last})")
    if until - since > timedelta(weeks=MAX_WINDOW_WEEKS):
        raise InputError(
            f"the window {since.date()} to {last} is longer than {MAX_WINDOW_WEEKS} weeks; "
            f"choose a shorter range"
        )
    decisions = store.decisions(since=since, until=until)
    overrides = store.overrides(since=since, until=until)
    live = [d for d in decisions if not d.shadow]
    return ServiceFigures(
        weeks=weekly_figures(decisions, overrides),
        monitor=figures_by_period(live, overrides, workflow, period="week", breakdown=False),
        since=since,
        champion=store.get_alias("champion"),
        until=until,
        chosen=first is not None or end not in (None, ""),
    )
