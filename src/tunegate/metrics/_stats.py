"""Significance and variance: McNemar's exact test, the one-sided two-proportion z-test,
Fisher's exact test of a rate increase, the smoothed log-odds ratio, Benjamini-Hochberg
q-values, spread across seed runs.

Seed spread semantics (one rule for training sweeps and evaluation runs): the standard
deviation is the sample one (ddof=1), and it is ``nan`` for a single run: one run measures no
spread at all, which a ``0.0`` would misreport as "perfectly stable".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from tunegate.errors import InputError
from tunegate.metrics._validation import check_mask

__all__ = [
    "McNemarResult",
    "SeedSummary",
    "benjamini_hochberg",
    "fisher_rate_increase_p",
    "log_odds_ratio",
    "mcnemar_exact",
    "one_sided_rate_increase_p",
    "seed_summary",
]


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on paired correctness.

    ``only_a`` counts examples model A got right and B wrong; ``only_b`` the reverse. Under
    the null hypothesis (equal accuracy) ``only_b ~ Binomial(only_a + only_b, 1/2)``.
    """

    only_a: int
    only_b: int
    p_value: float
    """Two-sided exact p-value (1.0 when the models never disagree)."""


def mcnemar_exact(correct_a: Any, correct_b: Any) -> McNemarResult:
    """McNemar's exact (binomial) test of equal accuracy for two models on the same examples.

    ``correct_a``, ``correct_b``: boolean arrays of shape (n,), True where a model is right.
    """
    a = np.asarray(correct_a)
    b = check_mask(correct_b, a.shape[0] if a.ndim == 1 else -1, name="correct_b")
    a = check_mask(a, b.size, name="correct_a")
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return McNemarResult(only_a, only_b, 1.0)
    p = float(stats.binomtest(only_b, n, 0.5, alternative="two-sided").pvalue)
    return McNemarResult(only_a, only_b, min(1.0, p))


def one_sided_rate_increase_p(x0: int, n0: int, x1: int, n1: int) -> float:
    """p-value of a pooled two-proportion z-test that the rate ``x1/n1`` exceeds ``x0/n0``.

    ``z = (x1/n1 - x0/n0) / sqrt(p (1 - p) (1/n0 + 1/n1))`` with the pooled rate
    ``p = (x0 + x1) / (n0 + n1)``; returns ``P(Z >= z)``. 1.0 when either sample is empty;
    with zero pooled variance (both rates 0 or both 1) 0.0 if the rate rose, else 1.0.
    """
    if n0 <= 0 or n1 <= 0:
        return 1.0
    pooled = (x0 + x1) / (n0 + n1)
    var = pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1)
    diff = x1 / n1 - x0 / n0
    if var <= 0.0:
        return 0.0 if diff > 0 else 1.0
    return float(stats.norm.sf(diff / math.sqrt(var)))


def _check_counts(x: int, n: int, name: str) -> None:
    if n < 0 or x < 0 or x > n:
        raise InputError(f"{name}: need 0 <= x <= n, got x={x}, n={n}")


def fisher_rate_increase_p(x0: int, n0: int, x1: int, n1: int) -> float:
    """One-sided p-value of Fisher's exact test that the rate ``x1/n1`` exceeds ``x0/n0``.

    Conditional on the margins, ``x1`` is hypergeometric (population ``n0 + n1``, ``x0 + x1``
    successes, ``n1`` draws); returns ``P(X >= x1)``. Exact for small counts, where the
    two-proportion z-test (:func:`one_sided_rate_increase_p`) is not. 1.0 when either sample is
    empty.
    """
    _check_counts(x0, n0, "x0/n0")
    _check_counts(x1, n1, "x1/n1")
    if n0 == 0 or n1 == 0:
        return 1.0
    p = float(stats.hypergeom.sf(x1 - 1, n0 + n1, x0 + x1, n1))
    return min(1.0, max(0.0, p))


def log_odds_ratio(
    x0: int, n0: int, x1: int, n1: int, *, smoothing: float = 0.5
) -> tuple[float, float]:
    """(log odds ratio of group 1 against group 0, its standard error), smoothed.

    With ``s = smoothing`` added to every cell (Haldane-Anscombe, default 0.5):
    ``log((x1+s)/(n1-x1+s)) - log((x0+s)/(n0-x0+s))``, standard error
    ``sqrt(sum(1/(cell+s)))``. Finite for zero cells when ``smoothing > 0``.
    """
    _check_counts(x0, n0, "x0/n0")
    _check_counts(x1, n1, "x1/n1")
    if smoothing <= 0 and 0 in (x0, n0 - x0, x1, n1 - x1):
        raise InputError("a zero cell needs smoothing > 0 for a finite log odds ratio")
    cells = (x1 + smoothing, n1 - x1 + smoothing, x0 + smoothing, n0 - x0 + smoothing)
    lor = math.log(cells[0] / cells[1]) - math.log(cells[2] / cells[3])
    return lor, math.sqrt(sum(1.0 / c for c in cells))


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (false discovery rate adjusted p-values), input order.

    ``q_(i) = min_{j >= i} m p_(j) / j`` over the ascending p-values, capped at 1. Rejecting
    every hypothesis with ``q <= alpha`` controls the FDR at ``alpha`` for independent (or
    positively dependent) tests.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"expected a 1-D list of p-values, got shape {p.shape}")
    if p.size == 0:
        return p.copy()
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InputError("p-values must be finite and in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = q_sorted
    return out


@dataclass(frozen=True)
class SeedSummary:
    """A metric over K runs that differ only in their seed (or configuration)."""

    mean: float
    std: float
    """Sample standard deviation (ddof=1); ``nan`` for a single run."""
    minimum: float
    maximum: float
    k: int

    def to_dict(self) -> dict[str, float]:
        """``{"mean", "std", "min", "max"}`` (``std`` may be ``nan``)."""
        return {"mean": self.mean, "std": self.std, "min": self.minimum, "max": self.maximum}


def seed_summary(values: Sequence[float]) -> SeedSummary:
    """Mean, standard deviation (ddof=1; ``nan`` for one run), min and max of one metric
    across K runs; ``values`` has shape (K,)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"expected a non-empty 1-D list of per-run values, got shape {arr.shape}")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else float("nan")
    return SeedSummary(float(arr.mean()), std, float(arr.min()), float(arr.max()), int(arr.size))
