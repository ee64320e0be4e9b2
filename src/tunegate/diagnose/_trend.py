"""Trend tests over weekly series: Mann-Kendall (tie-corrected) and Sen's slope.

Pure functions over sequences of numbers; no I/O. The gate's condition (1), "the overrides are
stable or increasing for at least N weeks", is :func:`stable_or_increasing`: over the window the
Mann-Kendall test does **not** find a significant *decrease* (one-sided, level ``alpha``), the
mean weekly count is at least ``min_mean``, and the window has at least ``min_weeks`` weeks.

The p-value is exact for short series (``n <= EXACT_MAX_N``): the null distribution of the
statistic S is enumerated over every permutation of the observed values (so ties are handled
exactly). Longer series use the normal approximation with the tie-corrected variance
``Var(S) = [n(n-1)(2n+5) - sum_t t(t-1)(2t+5)] / 18`` and a continuity correction.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EXACT_MAX_N",
    "TrendDecision",
    "TrendResult",
    "mann_kendall",
    "sens_slope",
    "stable_or_increasing",
]

EXACT_MAX_N = 8
"""Series up to this length get an exact permutation p-value (8! = 40,320 permutations)."""


@dataclass(frozen=True)
class TrendResult:
    """The Mann-Kendall test of one series."""

    n: int
    """Number of points."""
    s: int
    """S = sum over i<j of sign(x_j - x_i); positive = rising."""
    var_s: float
    """Tie-corrected variance of S under no trend."""
    z: float
    """Standardized statistic (continuity-corrected; 0 when S == 0)."""
    tau: float
    """Kendall's tau-a: S / (n(n-1)/2), in [-1, 1]."""
    p_decrease: float
    """One-sided p-value for a decreasing trend (small = significant decrease)."""
    p_increase: float
    """One-sided p-value for an increasing trend."""
    p_two_sided: float
    """Two-sided p-value."""
    slope: float
    """Sen's slope: the median pairwise slope, in units per step (overrides per week)."""
    exact: bool
    """True when the p-values come from the exact permutation distribution."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_array(series: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(series, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-d series, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the series contains NaN or infinite values; fill or drop them first")
    return x


def _s_stat(x: np.ndarray) -> int:
    diff = x[None, :] - x[:, None]  # diff[i, j] = x_j - x_i
    return int(np.sign(np.triu(diff, k=1)).sum())


def sens_slope(series: Sequence[float] | np.ndarray) -> float:
    """Sen's slope: the median of (x_j - x_i) / (j - i) over all pairs i < j (0.0 if n < 2)."""
    x = _as_array(series)
    n = len(x)
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    return float(np.median((x[j] - x[i]) / (j - i)))


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def mann_kendall(series: Sequence[float] | np.ndarray) -> TrendResult:
    """Mann-Kendall trend test with tie correction, plus Sen's slope.

    ``series`` is ordered in time, shape (n,). With n < 2 there is no evidence either way and
    every p-value is 1.
    """
    x = _as_array(series)
    n = len(x)
    if n < 2:
        return TrendResult(n, 0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, exact=True)
    s = _s_stat(x)
    ties = Counter(x.tolist()).values()
    var_s = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18.0
    if s > 0:
        z = (s - 1) / math.sqrt(var_s)
    elif s < 0:
        z = (s + 1) / math.sqrt(var_s)
    else:
        z = 0.0
    tau = s / (n * (n - 1) / 2)
    exact = n <= EXACT_MAX_N
    if var_s == 0.0:  # every value equal: no trend at all
        p_dec = p_inc = p_two = 1.0
    elif exact:
        perms = np.array(list(itertools.permutations(x.tolist())), dtype=float)
        diff = perms[:, None, :] - perms[:, :, None]
        iu = np.triu_indices(n, k=1)
        null = np.sign(diff[:, iu[0], iu[1]]).sum(axis=1)
        p_dec = float(np.mean(null <= s))
        p_inc = float(np.mean(null >= s))
        p_two = float(np.mean(np.abs(null) >= abs(s)))
    else:
        p_dec = _normal_cdf(z)
        p_inc = 1.0 - _normal_cdf(z)
        p_two = min(1.0, 2.0 * min(p_dec, p_inc))
    return TrendResult(
        n=n,
        s=s,
        var_s=float(var_s),
        z=float(z),
        tau=float(tau),
        p_decrease=p_dec,
        p_increase=p_inc,
        p_two_sided=p_two,
        slope=sens_slope(x),
        exact=exact,
    )


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
    x = _as_array(series)
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
    if require_rise:
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
