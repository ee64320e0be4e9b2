"""Abstention quality (selective accuracy, coverage) under the entropy routing policy, and
latency percentiles.

A decision is routed ``auto`` unless it is escalated (its top class is an escalate-class with
probability at or above that class's threshold) or sent to clarification (normalized entropy
``H(p) / log(k)`` above ``clarify_threshold``). This mirrors ``tunegate.routing.route`` in a
vectorized form so that metrics stay pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.metrics._classification import accuracy_score
from tunegate.metrics._registry import register_metric
from tunegate.metrics._validation import check_latency, check_proba, check_proba_rows

__all__ = [
    "auto_route_mask",
    "coverage_score",
    "latency_p50_ms",
    "latency_p95_ms",
    "normalized_entropy",
    "selective_accuracy_score",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def normalized_entropy(proba: Any) -> FloatArray:
    """``H(p) / log(k)`` of each row of an (n, k) probability matrix, in [0, 1]; shape (n,).

    Natural log, ``0 log 0 = 0``: 0 for a one-hot row, 1 for the uniform row. This is the
    quantity routing compares with ``clarify_threshold`` (:func:`tunegate.routing.route`).
    """
    p = check_proba_rows(proba)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = -plogp.sum(axis=1) / np.log(p.shape[1])
    return np.asarray(np.clip(h, 0.0, 1.0), dtype=np.float64)


def auto_route_mask(
    proba: Any,
    *,
    clarify_threshold: float = 0.5,
    escalate: Mapping[int, float] | None = None,
) -> BoolArray:
    """True for rows the routing policy sends ``auto`` (neither clarified nor escalated).

    ``escalate`` maps a class id to the top-class probability at or above which a decision of
    that class is escalated.
    """
    p = np.asarray(proba, dtype=np.float64)
    h = normalized_entropy(p)
    auto = h <= clarify_threshold
    if escalate:
        top = p.argmax(axis=1)
        conf = p.max(axis=1)
        for cls, threshold in escalate.items():
            auto &= ~((top == cls) & (conf >= threshold))
    return np.asarray(auto, dtype=np.bool_)


@register_metric(input="proba", greater_is_better=True)
def selective_accuracy_score(
    y_true: Any,
    proba: Any,
    *,
    clarify_threshold: float = 0.5,
    escalate: Mapping[int, float] | None = None,
) -> float:
    """Accuracy on the decisions routed ``auto``, in [0, 1]; ``nan`` when none is.

    How good abstention is: a policy that abstains on the right cases raises this above plain
    accuracy.
    """
    t, p = check_proba(y_true, proba)
    auto = auto_route_mask(p, clarify_threshold=clarify_threshold, escalate=escalate)
    return accuracy_score(t, p.argmax(axis=1), mask=auto)


@register_metric(input="proba", greater_is_better=True)
def coverage_score(
    y_true: Any,
    proba: Any,
    *,
    clarify_threshold: float = 0.5,
    escalate: Mapping[int, float] | None = None,
) -> float:
    """Share of decisions routed ``auto`` (the rest abstain), in [0, 1].

    ``y_true`` is only validated (kept for the common ``(y_true, proba)`` signature).
    """
    _, p = check_proba(y_true, proba)
    return float(
        np.mean(auto_route_mask(p, clarify_threshold=clarify_threshold, escalate=escalate))
    )


@register_metric(input="latency", greater_is_better=False)
def latency_p50_ms(latency_ms: Any) -> float:
    """Median latency in milliseconds (linear interpolation between order statistics)."""
    return float(np.percentile(check_latency(latency_ms), 50))


@register_metric(input="latency", greater_is_better=False)
def latency_p95_ms(latency_ms: Any) -> float:
    """95th-percentile latency in milliseconds (linear interpolation)."""
    return float(np.percentile(check_latency(latency_ms), 95))
