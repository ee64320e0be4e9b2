"""Abstention quality under the entropy routing policy (selective accuracy and risk,
coverage, the risk-coverage curve and its area, out-of-scope auto-routing), the fitting of a
routing threshold, and latency percentiles.

A decision is routed ``auto`` unless it is escalated (its top class is an escalate-class with
probability at or above that class's threshold) or sent to clarification (normalized entropy
``H(p) / log(k)`` above ``clarify_threshold``). This mirrors ``tunegate.routing.route`` in a
vectorized form so that metrics stay pure numpy.

**Out-of-scope examples** (no valid label) carry the class id :data:`OUT_OF_SCOPE` (-1) in
``y_true``. Every accuracy-type metric (selective risk, the risk-coverage curve, AURC,
coverage) ignores them; :func:`oos_auto_rate` counts how many of them are routed ``auto``
(each such decision is wrong whatever class it picks).

**The risk-coverage curve is sorted by normalized entropy** (ascending: the most confident
decision first), the quantity routing thresholds, so that every point of the curve is a
reachable ``clarify_threshold``: at threshold ``t`` the coverage is the share of in-scope
examples with ``H_norm <= t`` and the risk is the error rate among them. Escalation is not
applied to the curve (it is a property of the model, not of the policy). Tied entropies are
one step of the curve; AURC averages the risk over every coverage ``i / n`` with ties spread
evenly (the expected value over orders of the tied examples), so it does not depend on row
order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError
from tunegate.metrics._registry import register_metric
from tunegate.metrics._validation import (
    OUT_OF_SCOPE,
    check_latency,
    check_proba,
    check_proba_rows,
)

__all__ = [
    "OUT_OF_SCOPE",
    "RiskCoverageCurve",
    "RouteThresholdFit",
    "aurc_rate",
    "auto_route_mask",
    "coverage_score",
    "fit_route_threshold",
    "latency_p50_ms",
    "latency_p95_ms",
    "normalized_entropy",
    "oos_auto_rate",
    "risk_coverage_curve",
    "selective_accuracy_score",
    "selective_risk_at_coverage",
    "selective_risk_rate",
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
    t, p = check_proba(y_true, proba, allow_out_of_scope=True)
    auto = auto_route_mask(p, clarify_threshold=clarify_threshold, escalate=escalate)
    auto &= t != OUT_OF_SCOPE
    if not auto.any():
        return float("nan")
    return float(np.mean(t[auto] == p[auto].argmax(axis=1)))


@register_metric(input="proba", greater_is_better=True)
def coverage_score(
    y_true: Any,
    proba: Any,
    *,
    clarify_threshold: float = 0.5,
    escalate: Mapping[int, float] | None = None,
) -> float:
    """Share of in-scope decisions routed ``auto`` (the rest abstain), in [0, 1].

    ``y_true`` only marks out-of-scope rows (:data:`OUT_OF_SCOPE`), which are left out;
    ``nan`` when every row is out of scope.
    """
    t, p = check_proba(y_true, proba, allow_out_of_scope=True)
    inscope = t != OUT_OF_SCOPE
    if not inscope.any():
        return float("nan")
    auto = auto_route_mask(p, clarify_threshold=clarify_threshold, escalate=escalate)
    return float(np.mean(auto[inscope]))


@register_metric(input="proba", greater_is_better=False)
def selective_risk_rate(
    y_true: Any,
    proba: Any,
    *,
    clarify_threshold: float = 0.5,
    escalate: Mapping[int, float] | None = None,
) -> float:
    """Selective risk: the error rate among in-scope decisions routed ``auto``, in [0, 1]
    (``1 - selective_accuracy_score``); ``nan`` when none is routed ``auto``."""
    return 1.0 - selective_accuracy_score(
        y_true, proba, clarify_threshold=clarify_threshold, escalate=escalate
    )


@register_metric(input="proba", greater_is_better=False)
def oos_auto_rate(
    y_true: Any,
    proba: Any,
    *,
    clarify_threshold: float = 0.5,
    escalate: Mapping[int, float] | None = None,
) -> float:
    """Share of out-of-scope examples (``y_true == OUT_OF_SCOPE``) routed ``auto``, in [0, 1]:
    decisions that reach a customer with a label that cannot be right. ``nan`` without any."""
    t, p = check_proba(y_true, proba, allow_out_of_scope=True)
    oos = t == OUT_OF_SCOPE
    if not oos.any():
        return float("nan")
    auto = auto_route_mask(p, clarify_threshold=clarify_threshold, escalate=escalate)
    return float(np.mean(auto[oos]))


@dataclass(frozen=True)
class RiskCoverageCurve:
    """The risk-coverage curve of in-scope examples, sorted by normalized entropy.

    Arrays of shape (m,), one point per distinct ``H_norm`` value (ascending):
    ``threshold[j]`` is a ``clarify_threshold`` whose ``auto`` set is the examples with
    ``H_norm <= threshold[j]``; ``coverage[j]`` its share of the ``n`` in-scope examples and
    ``risk[j]`` the error rate among them.
    """

    threshold: FloatArray
    coverage: FloatArray
    risk: FloatArray
    n: int


def _curve_steps(h: FloatArray, error: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Distinct entropies (ascending), examples and errors per distinct value."""
    values, inverse = np.unique(h, return_inverse=True)
    count = np.bincount(inverse, minlength=values.size).astype(np.float64)
    errs = np.bincount(inverse, weights=error, minlength=values.size).astype(np.float64)
    return values, count, errs


def _inscope(y_true: Any, proba: Any) -> tuple[FloatArray, FloatArray]:
    t, p = check_proba(y_true, proba, allow_out_of_scope=True)
    keep = t != OUT_OF_SCOPE
    if not keep.any():
        raise InputError(
            "every example is out of scope; the risk-coverage curve needs in-scope examples"
        )
    p = p[keep]
    error = (p.argmax(axis=1) != t[keep]).astype(np.float64)
    return normalized_entropy(p), error


def risk_coverage_curve(y_true: Any, proba: Any) -> RiskCoverageCurve:
    """The risk-coverage curve (see the module docstring: sorted by normalized entropy)."""
    h, error = _inscope(y_true, proba)
    values, count, errs = _curve_steps(h, error)
    cum_n = np.cumsum(count)
    return RiskCoverageCurve(
        threshold=values,
        coverage=cum_n / h.size,
        risk=np.cumsum(errs) / cum_n,
        n=int(h.size),
    )


def aurc_from_steps(count: FloatArray, errs: FloatArray) -> FloatArray:
    """AURC from per-step counts and errors in curve order, along the last axis (so a
    (R, m) table gives R values): ``mean over i = 1..n of E(i) / i``, with ``E(i)`` the
    errors among the ``i`` most confident examples and ties spread evenly within a step.

    For a step of ``m`` examples with ``e`` errors after ``C`` examples and ``E`` errors,
    ``sum_{p=C+1}^{C+m} (E + (e/m)(p - C)) / p = E (H(C+m) - H(C)) + (e/m)(m - C (H(C+m) -
    H(C)))`` with ``H`` the harmonic numbers; a step with ``m = 0`` adds nothing.
    """
    cum = np.cumsum(count, axis=-1)
    prev = cum - count
    prev_e = np.cumsum(errs, axis=-1) - errs
    total = cum[..., -1]
    n_max = int(total.max()) if total.size else 0
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n_max + 1))])
    dh = harmonic[cum.astype(np.intp)] - harmonic[prev.astype(np.intp)]
    # sum of E (dh) + (e/m)(m - C dh) = sum of dh (E - (e/m) C) + total errors
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = errs / np.maximum(count, 1.0)
        prev_e -= rate * prev
        prev_e *= dh
        out = (prev_e.sum(axis=-1) + errs.sum(axis=-1)) / total
    return np.asarray(out, dtype=np.float64)


@register_metric(input="proba", greater_is_better=False)
def aurc_rate(y_true: Any, proba: Any) -> float:
    """Area under the risk-coverage curve (AURC), in [0, 1]; lower is better.

    The mean selective risk over the coverages ``1/n, 2/n, ..., 1`` of the ``n`` in-scope
    examples, the most confident (lowest normalized entropy) covered first; threshold-free,
    so it compares how well two models rank their own errors last whatever their routing
    thresholds. Ties in entropy are spread evenly (see the module docstring).
    """
    h, error = _inscope(y_true, proba)
    _, count, errs = _curve_steps(h, error)
    return float(aurc_from_steps(count, errs))


def risk_at_coverage_from_steps(count: FloatArray, errs: FloatArray, coverage: float) -> FloatArray:
    """Selective risk at a fixed ``coverage`` from per-step tables along the last axis: the
    error rate among the ``coverage * n`` most confident examples (fractional positions
    interpolate within a step, ties spread evenly)."""
    cum = np.cumsum(count, axis=-1)
    cum_e = np.cumsum(errs, axis=-1)
    total = cum[..., -1]
    pos = np.maximum(coverage * total, np.minimum(total, 1.0))
    j = np.minimum((cum < pos[..., None]).sum(axis=-1), count.shape[-1] - 1)
    c_j = np.take_along_axis(cum, j[..., None], axis=-1)[..., 0]
    m_j = np.take_along_axis(count, j[..., None], axis=-1)[..., 0]
    e_j = np.take_along_axis(errs, j[..., None], axis=-1)[..., 0]
    ce_j = np.take_along_axis(cum_e, j[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(m_j > 0, e_j / np.where(m_j > 0, m_j, 1.0), 0.0)
        errors = ce_j - e_j + rate * (pos - (c_j - m_j))
        out = np.where(pos > 0, errors / pos, np.nan)
    return np.asarray(out, dtype=np.float64)


def selective_risk_at_coverage(y_true: Any, proba: Any, coverage: float) -> float:
    """Selective risk of the ``coverage`` share of in-scope examples with the lowest
    normalized entropy (the risk-coverage curve read at ``coverage``, in (0, 1]).

    Two models compared at one coverage (the baseline's) show which one is right more often
    on the decisions it would automate, without the confound of one covering less.
    """
    if not 0.0 < coverage <= 1.0:
        raise InputError(f"coverage must be in (0, 1], got {coverage}")
    h, error = _inscope(y_true, proba)
    _, count, errs = _curve_steps(h, error)
    return float(risk_at_coverage_from_steps(count, errs, coverage))


@dataclass(frozen=True)
class RouteThresholdFit:
    """A routing threshold fitted on validation data (:func:`fit_route_threshold`)."""

    threshold: float
    """The ``clarify_threshold``: clarify when ``H_norm`` is above it."""
    target: str
    """``clarify_rate`` or ``risk``: what was targeted."""
    target_value: float
    clarify_rate: float
    """Share of the validation examples routed to clarification at ``threshold``."""
    selective_risk: float
    """Error rate among the examples routed ``auto`` (out-of-scope ones count as errors)."""
    n: int
    """Validation examples."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``nan`` -> ``None``)."""
        return {
            "threshold": self.threshold,
            "target": self.target,
            "target_value": self.target_value,
            "clarify_rate": self.clarify_rate,
            "selective_risk": None if np.isnan(self.selective_risk) else self.selective_risk,
            "n": self.n,
        }


def fit_route_threshold(
    proba: Any,
    y_true: Any = None,
    *,
    target_clarify_rate: float | None = None,
    target_risk: float | None = None,
) -> RouteThresholdFit:
    """Fit the normalized-entropy ``clarify_threshold`` of one model on validation data.

    Exactly one target:

    * ``target_clarify_rate``: the smallest threshold (among the validation entropies, so it
      is reachable) whose clarify share is at most the target: the clarify rate comes as
      close to the target as the ties allow, from below. ``y_true`` is not needed.
    * ``target_risk``: the largest coverage whose selective risk (error rate among ``auto``)
      is at most the target, i.e. the largest threshold on the risk-coverage curve that
      meets it; out-of-scope rows (``y_true == OUT_OF_SCOPE``) routed ``auto`` count as
      errors. When no threshold meets it, ``0.0`` (everything not one-hot is clarified).

    Escalation is not applied (it is a per-class rule on top of the threshold).

    Args:
        proba: (n, k) validation probabilities of the model.
        y_true: (n,) true class ids (needed for ``target_risk``).
    """
    if (target_clarify_rate is None) == (target_risk is None):
        raise InputError("pass exactly one of target_clarify_rate and target_risk")
    if y_true is None:
        if target_risk is not None:
            raise InputError("target_risk needs y_true (the validation labels)")
        p = check_proba_rows(proba)
        error = np.full(p.shape[0], np.nan)
    else:
        t, p = check_proba(y_true, proba, allow_out_of_scope=True)
        error = (p.argmax(axis=1) != t).astype(np.float64)
    if p.shape[0] == 0:
        raise InputError("cannot fit a routing threshold on an empty validation set")
    h = normalized_entropy(p)
    n = h.size
    values, inverse = np.unique(h, return_inverse=True)
    count = np.bincount(inverse, minlength=values.size).astype(np.float64)
    cum_n = np.cumsum(count)
    clarify = 1.0 - cum_n / n  # clarify share at threshold values[j]
    if target_clarify_rate is not None:
        if not 0.0 <= target_clarify_rate <= 1.0:
            raise InputError(f"target_clarify_rate must be in [0, 1], got {target_clarify_rate}")
        j = int(np.argmax(clarify <= target_clarify_rate + 1e-12))
        threshold = float(values[j])
        target, value = "clarify_rate", float(target_clarify_rate)
    else:
        assert target_risk is not None
        if not 0.0 <= target_risk <= 1.0:
            raise InputError(f"target_risk must be in [0, 1], got {target_risk}")
        errs = np.bincount(inverse, weights=error, minlength=values.size)
        risk = np.cumsum(errs) / cum_n
        ok = np.flatnonzero(risk <= target_risk + 1e-12)
        threshold = float(values[ok[-1]]) if ok.size else 0.0
        target, value = "risk", float(target_risk)
    auto = h <= threshold
    risk_at = float(np.nanmean(error[auto])) if auto.any() and y_true is not None else float("nan")
    return RouteThresholdFit(
        threshold=float(np.clip(threshold, 0.0, 1.0)),
        target=target,
        target_value=value,
        clarify_rate=float(1.0 - auto.mean()),
        selective_risk=risk_at,
        n=int(n),
    )


@register_metric(input="latency", greater_is_better=False)
def latency_p50_ms(latency_ms: Any) -> float:
    """Median latency in milliseconds (linear interpolation between order statistics)."""
    return float(np.percentile(check_latency(latency_ms), 50))


@register_metric(input="latency", greater_is_better=False)
def latency_p95_ms(latency_ms: Any) -> float:
    """95th-percentile latency in milliseconds (linear interpolation)."""
    return float(np.percentile(check_latency(latency_ms), 95))
