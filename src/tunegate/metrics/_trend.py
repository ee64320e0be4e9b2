"""Trend tests over time-ordered series: Mann-Kendall (tie-corrected) and Sen's slope.

Pure functions over sequences of numbers; no I/O. The decision rules built on them (the gate's
"stable or increasing for N weeks") live with their users (:mod:`tunegate.diagnose`).

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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.metrics._validation import check_series

__all__ = ["EXACT_MAX_N", "TrendResult", "mann_kendall", "sens_slope"]

FloatArray = npt.NDArray[np.float64]

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


def _s_stat(x: FloatArray) -> int:
    diff = x[None, :] - x[:, None]  # diff[i, j] = x_j - x_i
    return int(np.sign(np.triu(diff, k=1)).sum())


def sens_slope(series: Sequence[float] | FloatArray) -> float:
    """Sen's slope of a series of shape (n,): the median of (x_j - x_i) / (j - i) over all
    pairs i < j (0.0 if n < 2)."""
    x = check_series(series)
    n = len(x)
    if n < 2:
        return 0.0
    i, j = np.triu_indices(n, k=1)
    return float(np.median((x[j] - x[i]) / (j - i)))


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def mann_kendall(series: Sequence[float] | FloatArray) -> TrendResult:
    """Mann-Kendall trend test with tie correction, plus Sen's slope.

    ``series`` is ordered in time, shape (n,). With n < 2 there is no evidence either way and
    every p-value is 1.
    """
    x = check_series(series)
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
