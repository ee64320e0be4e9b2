"""Significance and variance: McNemar's exact test, spread across seed runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from tunegate.errors import InputError
from tunegate.metrics._validation import check_mask

__all__ = ["McNemarResult", "SeedSummary", "mcnemar_exact", "seed_summary"]


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


@dataclass(frozen=True)
class SeedSummary:
    """A metric over K runs that differ only in their seed (or configuration)."""

    mean: float
    std: float
    """Sample standard deviation (ddof=1); ``nan`` for a single run."""
    minimum: float
    maximum: float
    k: int


def seed_summary(values: Sequence[float]) -> SeedSummary:
    """Mean, standard deviation (ddof=1), min and max of one metric across K runs."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"expected a non-empty 1-D list of per-run values, got shape {arr.shape}")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else float("nan")
    return SeedSummary(float(arr.mean()), std, float(arr.min()), float(arr.max()), int(arr.size))
