"""The gate's trend rule over weekly series, on top of :mod:`tunegate.metrics`' Mann-Kendall
test and Sen's slope.

The gate's condition (1), "the overrides are stable or increasing for at least N weeks", is
:func:`stable_or_increasing`: over the window the Mann-Kendall test does **not** find a
significant *decrease* (one-sided, level ``alpha``), the mean weekly count is at least
``min_mean``, and the window has at least ``min_weeks`` weeks. The statistics themselves
(:func:`mann_kendall`, :func:`sens_slope`, :class:`TrendResult`; exact p-values for short
series) are computed in :mod:`tunegate.metrics` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tunegate.metrics import EXACT_MAX_N, TrendResult, mann_kendall, sens_slope
from tunegate.metrics._validation import check_series

__all__ = [
    "EXACT_MAX_N",
    "TrendDecision",
    "TrendResult",
    "mann_kendall",
    "sens_slope",
    "stable_or_increasing",
]


@dataclass(frozen=True)
class TrendDecision:
    """Whether a weekly series is "stable or increasing" in the gate's sense, and why."""

    passed: bool
    """All three requirements hold."""
    weeks: int
    """Weeks in the tested window."""
    mean: float
    """Mean weekly value over the window."""
    test: TrendResult
    """The Mann-Kendall test over the window."""
    reasons: list[str] = field(default_factory=list)
    """Why it failed (empty when it passed)."""
    window: list[float] = field(default_factory=list)
    """The tested values, oldest first."""
    rise: TrendResult | None = None
    """With ``require_rise``: the Mann-Kendall test over the whole series."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["test"] = self.test.to_dict()
        out["rise"] = self.rise.to_dict() if self.rise else None
        return out


def stable_or_increasing(
    series: Sequence[float] | np.ndarray,
    *,
    min_weeks: int,
    alpha: float,
    min_mean: float,
    window: int | None = None,
    require_rise: bool = False,
) -> TrendDecision:
    """Decide "stable or increasing for at least ``min_weeks`` weeks" on a weekly series.

    The last ``window`` values (default ``min_weeks``; never fewer than ``min_weeks``) are
    tested. It passes when (a) the window holds at least ``min_weeks`` weeks, (b) the
    one-sided Mann-Kendall p-value for a *decrease* is >= ``alpha`` (no significant decrease),
    and (c) the mean weekly value is >= ``min_mean`` (a flat series of near-zero counts is not
    a problem worth fine-tuning for). With ``require_rise`` it also needs (d) a significant
    *increase* over the whole ``series`` (one-sided p < ``alpha``): the problem emerged or grew,
    it is not the model's standing error floor.
    """
    if min_weeks < 2:
        raise ValueError(f"min_weeks must be >= 2, got {min_weeks}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    x = check_series(series)
    size = max(min_weeks, window or min_weeks)
    tail = x[-size:]
    test = mann_kendall(tail)
    mean = float(tail.mean()) if len(tail) else 0.0
    reasons: list[str] = []
    if len(tail) < min_weeks:
        reasons.append(f"only {len(tail)} complete week(s) of data; the test needs {min_weeks}")
    if test.p_decrease < alpha:
        reasons.append(
            f"significant decrease (Mann-Kendall one-sided p={test.p_decrease:.3f} < "
            f"alpha={alpha}; Sen's slope {test.slope:+.2f}/week)"
        )
    if mean < min_mean:
        reasons.append(f"mean {mean:.1f}/week is below the minimum of {min_mean:g}/week")
    rise: TrendResult | None = None
    if len(x) and not np.any(x):
        # an all-zero history is no problem at all, not an error floor
        reasons.append(f"none in the {len(x)} week(s) of history: no problem to fine-tune for")
    elif require_rise:
        rise = mann_kendall(x)
        if rise.p_increase >= alpha:
            reasons.append(
                f"no significant rise over the {len(x)} week(s) of history (Mann-Kendall "
                f"p(increase)={rise.p_increase:.3f} >= alpha={alpha}): the level is the model's "
                f"standing error floor, not a new or growing problem"
            )
    return TrendDecision(
        passed=not reasons,
        weeks=len(tail),
        mean=mean,
        test=test,
        reasons=reasons,
        window=[float(v) for v in tail],
        rise=rise,
    )
