"""Calibration: expected calibration error, reliability curves, the multiclass Brier score.

Bins: bin ``b`` of ``n_bins`` holds confidences ``edges[b] <= c < edges[b + 1]`` (the last bin
also holds ``c == 1``). Equal-width edges are exactly ``np.arange(n_bins + 1) / n_bins``, so a
confidence of exactly ``b / n_bins`` (0.3 with 10 bins) opens bin ``b``; ``np.linspace``
edges are off by one ulp at some of these points and put such a confidence one bin low.

Top-label calibration needs only two numbers per decision: the confidence of the decided class
and whether it was right. :func:`confidence_calibration_error` takes exactly that (what
production monitoring has), :func:`expected_calibration_error` derives it from ``(y_true,
proba)``; both go through the same binning code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError
from tunegate.metrics._registry import register_metric
from tunegate.metrics._validation import check_confidence, check_proba

__all__ = [
    "BinStrategy",
    "ReliabilityCurve",
    "assign_bins",
    "bin_edges",
    "brier_score_loss",
    "confidence_calibration_error",
    "confidence_reliability_curve",
    "expected_calibration_error",
    "reliability_curve",
]

FloatArray = npt.NDArray[np.float64]
BinStrategy = Literal["uniform", "quantile"]


def bin_edges(confidence: FloatArray, *, n_bins: int, strategy: BinStrategy) -> FloatArray:
    """``n_bins + 1`` bin edges over [0, 1], shape (n_bins + 1,): equal-width (``uniform``,
    exactly ``b / n_bins``) or equal-mass (``quantile``, the empirical quantiles of
    ``confidence`` at levels ``b / n_bins``)."""
    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    levels = np.arange(n_bins + 1, dtype=np.float64) / n_bins
    if strategy == "uniform":
        return levels
    if strategy == "quantile":
        edges = np.quantile(confidence, levels)
        edges[0], edges[-1] = 0.0, 1.0
        return np.asarray(edges, dtype=np.float64)
    raise InputError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def assign_bins(confidence: FloatArray, edges: FloatArray) -> npt.NDArray[np.intp]:
    """Bin index of each confidence, shape (n,): bin ``b`` holds ``edges[b] <= c < edges[b+1]``;
    the last bin also holds ``c == 1``."""
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


def _curve(
    correct: FloatArray, conf: FloatArray, n_bins: int, strategy: BinStrategy
) -> ReliabilityCurve:
    edges = bin_edges(conf, n_bins=n_bins, strategy=strategy)
    b = assign_bins(conf, edges)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    return ReliabilityCurve(
        edges=edges, confidence=mean_conf, accuracy=mean_acc, count=count.astype(np.int64)
    )


def reliability_curve(
    y_true: Any, proba: Any, *, n_bins: int = 15, strategy: BinStrategy = "uniform"
) -> ReliabilityCurve:
    """Per-bin mean confidence and accuracy of the top-class prediction.

    ``y_true`` (n,) class ids, ``proba`` (n, k); the curve's arrays have shape (n_bins,).
    """
    t, p = check_proba(y_true, proba)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    return _curve(correct, conf, n_bins, strategy)


def confidence_reliability_curve(
    correct: Any, confidence: Any, *, n_bins: int = 15, strategy: BinStrategy = "uniform"
) -> ReliabilityCurve:
    """:func:`reliability_curve` from per-decision ``correct`` (bool, shape (n,)) and the
    ``confidence`` of the decided class (shape (n,), in [0, 1])."""
    ok, conf = check_confidence(correct, confidence)
    return _curve(ok, conf, n_bins, strategy)


@register_metric(input="confidence", greater_is_better=False)
def confidence_calibration_error(
    correct: Any, confidence: Any, *, n_bins: int = 15, strategy: BinStrategy = "uniform"
) -> float:
    """ECE from ``correct`` (bool, shape (n,)) and the decided class's ``confidence`` (n,).

    The same number as :func:`expected_calibration_error` when ``confidence`` is the top-class
    probability and ``correct`` says whether the top class is the true class; use this form
    when only decisions are at hand (production monitoring).
    """
    return confidence_reliability_curve(correct, confidence, n_bins=n_bins, strategy=strategy).ece


@register_metric(input="proba", greater_is_better=False)
def expected_calibration_error(
    y_true: Any, proba: Any, *, n_bins: int = 15, strategy: BinStrategy = "uniform"
) -> float:
    """Top-label ECE: ``sum_b (n_b / n) * |accuracy_b - confidence_b|``, in [0, 1].

    ``y_true`` (n,) class ids, ``proba`` (n, k). ``strategy="uniform"`` uses equal-width bins
    on [0, 1] (edges exactly ``b / n_bins``); ``"quantile"`` equal-mass bins.
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
