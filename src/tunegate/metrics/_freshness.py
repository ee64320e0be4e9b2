"""Knowledge-base freshness: how fast documents change (the knowledge base's change rate) and
how far behind the cited sources are (the source freshness lag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunegate.errors import InputError

__all__ = ["FreshnessLag", "change_rate", "source_freshness_lag"]


def change_rate(changed: Any, documents: Any) -> float:
    """Share of documents given a new version per month, pooled over a window of months.

    ``changed[m]`` is how many documents got a new version effective in month ``m`` (each
    document counted once a month); ``documents[m]`` is how many documents were in force at the
    start of month ``m`` (a document first published during the month is not a change). Both
    are (months,) arrays of counts with ``changed <= documents``. The rate is pooled::

        rate = sum_m changed[m] / sum_m documents[m]

    i.e. the monthly shares averaged with each month weighted by its number of documents (the
    plain mean of ``changed[m] / documents[m]`` when the count is constant). Raises
    :class:`~tunegate.errors.InputError` when no month has any document.
    """
    c = np.asarray(changed, dtype=np.float64)
    n = np.asarray(documents, dtype=np.float64)
    if c.ndim != 1 or c.shape != n.shape:
        raise InputError(
            f"changed and documents must be 1-D arrays of the same length (one entry per "
            f"month), got shapes {c.shape} and {n.shape}"
        )
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(n))) or np.any(c < 0):
        raise InputError("changed and documents must be finite, non-negative counts")
    if np.any(c > n):
        month = int(np.argmax(c > n))
        raise InputError(
            f"month {month} has more changed documents ({c[month]:g}) than documents in force "
            f"({n[month]:g}); count a document as changed only if it was in force at the start "
            f"of the month"
        )
    total = float(n.sum())
    if total <= 0:
        raise InputError(
            "no document was in force in any month of the window; widen the window or ingest "
            "the knowledge base first"
        )
    return float(c.sum()) / total


@dataclass(frozen=True)
class FreshnessLag:
    """The source freshness lag of a set of citations (:func:`source_freshness_lag`)."""

    n: int
    """Citations judged."""
    mean_days: float
    """Mean lag in days over all citations (a current citation lags 0 days)."""
    lagging_share: float
    """Share of citations with a positive lag (cited a version already superseded)."""


def source_freshness_lag(lag_days: Any) -> FreshnessLag:
    """Mean and share of lagging citations.

    ``lag_days`` is a (n,) array, one entry per citation: 0 when the cited version was in
    force when the question was asked, else the days between the version ceasing to be in
    force (its successor taking effect) and the question. Raises
    :class:`~tunegate.errors.InputError` when empty or when a lag is negative or not finite.
    """
    lag = np.asarray(lag_days, dtype=np.float64)
    if lag.ndim != 1 or lag.size == 0:
        raise InputError(
            f"lag_days must be a non-empty 1-D array (one lag per citation), got shape {lag.shape}"
        )
    if not np.all(np.isfinite(lag)) or np.any(lag < 0):
        raise InputError("lag_days must be finite and >= 0 (days behind the current version)")
    return FreshnessLag(
        n=int(lag.size), mean_days=float(lag.mean()), lagging_share=float(np.mean(lag > 0))
    )
