"""Calibration: expected calibration error, reliability curves, the multiclass Brier score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tunegate.metrics._registry import register_metric
from tunegate.metrics._validation import check_proba

__all__ = [
    "BinStrategy",
    "ReliabilityCurve",
    "bin_edges",
    "brier_score_loss",
    "expected_calibration_error",
    "reliability_curve",
]

FloatArray = npt.NDArray[np.float64]
BinStrategy = Literal["uniform", "quantile"]


def bin_edges(confidence: FloatArray, *, n_bins: int, strategy: BinStrategy) -> FloatArray:
    """``n_bins + 1`` bin edges over [0, 1]: equal-width (``uniform``) or equal-mass
    (``quantile``, the empirical quantiles of ``confidence``)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        edges = np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
        return np.asarray(edges, dtype=np.float64)
    raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def assign_bins(confidence: FloatArray, edges: FloatArray) -> npt.NDArray[np.intp]:
    """Bin index of each confidence: bin ``b`` holds ``edges[b] <= c < edges[b+1]``; the last
    bin also holds ``c == 1``."""
    n_bins = edges.size - 1
    idx = np.searchsorted(edges, confidence, side="right") - 1
    return np.clip(idx, 0, n_bins - 1).astype(np.intp)


@dataclass(frozen=True)
class ReliabilityCurve:
    """Reliability-diagram data, one entry per bin (shape (n_bins,)).

    ``confidence`` and ``accuracy`` are ``nan`` for empty bins.
    """

    edges: FloatArray
    """(n_bins + 1,) bin edges."""
    confidence: FloatArray
    """Mean top-class probability in the bin."""
    accuracy: FloatArray
    """Share of correct top-class predictions in the bin."""
    count: npt.NDArray[np.int64]
    """Examples in the bin."""

    @property
    def ece(self) -> float:
        """The expected calibration error this curve implies."""
        n = self.count.sum()
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.count[filled] * gaps) / n)


def reliability_curve(
    y_true: Any, proba: Any, *, n_bins: int = 15, strategy: BinStrategy = "uniform"
) -> ReliabilityCurve:
    """Per-bin mean confidence and accuracy of the top-class prediction."""
    t, p = check_proba(y_true, proba)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = bin_edges(conf, n_bins=n_bins, strategy=strategy)
    b = assign_bins(conf, edges)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    return ReliabilityCurve(
        edges=edges, confidence=mean_conf, accuracy=mean_acc, count=count.astype(np.int64)
    )


@register_metric(input="proba", greater_is_better=False)
def expected_calibration_error(
    y_true: Any, proba: Any, *, n_bins: int = 15, strategy: BinStrategy = "uniform"
) -> float:
    """Top-label ECE: ``sum_b (n_b / n) * |accuracy_b - confidence_b|``, in [0, 1].

    ``strategy="uniform"`` uses equal-width bins on [0, 1]; ``"quantile"`` equal-mass bins.
    """
    return reliability_curve(y_true, proba, n_bins=n_bins, strategy=strategy).ece


@register_metric(input="proba", greater_is_better=False)
def brier_score_loss(y_true: Any, proba: Any) -> float:
    """Multiclass Brier score: mean over examples of ``sum_c (p_c - [y == c])**2``, in [0, 2]."""
    t, p = check_proba(y_true, proba)
    return float(np.mean(per_example_brier(t, p)))


def per_example_brier(y_true: npt.NDArray[np.intp], proba: FloatArray) -> FloatArray:
    """``sum_c (p_c - [y == c])**2`` per row, shape (n,), for already-validated inputs."""
    sq = np.einsum("ij,ij->i", proba, proba)
    return np.asarray(sq - 2.0 * proba[np.arange(y_true.size), y_true] + 1.0, dtype=np.float64)
