"""Routing by normalized entropy.

For a probability row ``p`` over ``k`` classes, ``H_norm = H(p) / log(k)`` is 0 for a one-hot
row and 1 for the uniform row. The route of a decision is, in this order:

1. ``escalate`` when the top class is one of ``policy.escalate_classes`` and its probability
   is >= that class's threshold;
2. ``clarify`` when ``H_norm > policy.clarify_threshold`` (strictly above);
3. ``auto`` otherwise.

Ties for the top class go to the first class in label order (``numpy.argmax``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunegate import metrics
from tunegate.config import RoutingPolicy
from tunegate.errors import InputError
from tunegate.records import Route

__all__ = ["explain_route", "normalized_entropy", "route", "route_many"]


def _as_matrix(proba: np.ndarray | Sequence[Sequence[float]] | Sequence[float]) -> np.ndarray:
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise InputError(f"expected probabilities of shape (n, k) with k >= 2, got {arr.shape}")
    if np.any(~np.isfinite(arr)) or np.any(arr < -1e-9):
        raise InputError("probabilities must be finite and non-negative")
    sums = arr.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        i = int(np.argmax(np.abs(sums - 1.0)))
        raise InputError(f"each probability row must sum to 1; row {i} sums to {sums[i]:.6f}")
    return arr


def normalized_entropy(proba: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``H(p) / log(k)`` per row: (n, k) -> (n,) in [0, 1] (natural log; 0 log 0 = 0).

    Rows are validated with routing's tolerance (sums within 1e-3 of 1), clipped to [0, 1] and
    passed to :func:`tunegate.metrics.normalized_entropy`.
    """
    return metrics.normalized_entropy(np.clip(_as_matrix(proba), 0.0, 1.0))


def route(
    proba_row: np.ndarray | Sequence[float], labels: Sequence[str], policy: RoutingPolicy
) -> tuple[str, float, Route]:
    """Route one probability row: returns ``(top label, H_norm, Route)``."""
    row = _as_matrix(proba_row)
    if row.shape[0] != 1:
        raise InputError(f"route() takes one row, got {row.shape[0]}; use route_many()")
    if row.shape[1] != len(labels):
        raise InputError(
            f"probability row has {row.shape[1]} columns but {len(labels)} labels were given"
        )
    top = int(np.argmax(row[0]))
    label = labels[top]
    h_norm = float(normalized_entropy(row)[0])
    threshold = policy.escalate_classes.get(label)
    if threshold is not None and row[0, top] >= threshold:
        return label, h_norm, Route.ESCALATE
    if h_norm > policy.clarify_threshold:
        return label, h_norm, Route.CLARIFY
    return label, h_norm, Route.AUTO


def route_many(
    proba: np.ndarray, labels: Sequence[str], policy: RoutingPolicy
) -> list[tuple[str, float, Route]]:
    """:func:`route` for every row of an (n, k) matrix."""
    arr = _as_matrix(proba)
    return [route(row, labels, policy) for row in arr]


def explain_route(
    proba_row: np.ndarray | Sequence[float], labels: Sequence[str], policy: RoutingPolicy
) -> str:
    """One sentence saying why :func:`route` chose its route for this row."""
    row = _as_matrix(proba_row)[0]
    label, h_norm, chosen = route(row, labels, policy)
    p = float(row[labels.index(label)])
    if chosen is Route.ESCALATE:
        return (
            f"escalate: top class {label!r} is an escalate-class and p={p:.3f} >= its "
            f"threshold {policy.escalate_classes[label]:.3f}"
        )
    if chosen is Route.CLARIFY:
        return (
            f"clarify: normalized entropy {h_norm:.3f} > clarify_threshold "
            f"{policy.clarify_threshold:.3f} (the model is unsure)"
        )
    why = (
        f"auto: normalized entropy {h_norm:.3f} <= clarify_threshold {policy.clarify_threshold:.3f}"
    )
    if label in policy.escalate_classes:
        why += (
            f"; {label!r} is an escalate-class but p={p:.3f} < its threshold "
            f"{policy.escalate_classes[label]:.3f}"
        )
    return why
