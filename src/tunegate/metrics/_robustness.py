"""Robustness metrics over a perturbed slice: robust accuracy, flip rate, attack success rate.

Each perturbed example has a *clean* prediction (the model on the original suite example) and
a *perturbed* prediction (the model on the perturbed text). All three metrics are ratios of
per-example sums, registered as ``per_example`` metrics with their terms, so
:func:`~tunegate.metrics.paired_ratio_bootstrap` gives both models' intervals and the paired
difference on the same resampled examples:

* ``robust_accuracy_score(y_true, y_pred_perturbed)``: the share of perturbed examples still
  classified correctly (higher is better);
* ``flip_rate(y_pred_clean, y_pred_perturbed)``: the share of label-preserving perturbations
  that change the prediction, right or wrong (lower is better); a model can be robust yet
  wrong, and flip rate separates instability from error;
* ``attack_success_rate(y_pred_clean, y_pred_perturbed, target)``: among targeted
  perturbations whose clean prediction was not already the target, the share the perturbation
  moved *to* the target (lower is better; ``nan`` when every clean prediction was the target).

Several perturbed examples come from one suite example, so they are not independent.
:func:`grouped_terms` sums the terms per source example; bootstrapping the grouped terms
resamples suite examples (a cluster bootstrap), which is what :func:`paired_robustness` does.
Class ids are integers (``-1`` never appears: out-of-scope examples are not perturbed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError
from tunegate.metrics._generative import RatioBootstrap, RatioTerms, paired_ratio_bootstrap
from tunegate.metrics._registry import register_metric

__all__ = [
    "attack_success_rate",
    "flip_rate",
    "grouped_terms",
    "paired_robustness",
    "robust_accuracy_score",
]

IntArray = npt.NDArray[np.int64]


def _ids(values: Any, name: str, n: int | None = None) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of class ids, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty; a robustness metric needs at least one example")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    if n is not None and arr.size != n:
        raise InputError(
            f"{name} has {arr.size} entries but the first array has {n}; the arrays must be "
            f"aligned one-to-one with the perturbed examples"
        )
    return arr.astype(np.int64)


def _pair(a: Any, b: Any, name_a: str, name_b: str) -> tuple[IntArray, IntArray]:
    x = _ids(a, name_a)
    return x, _ids(b, name_b, x.size)


def _robust_accuracy_terms(y_true: Any, y_pred_perturbed: Any) -> RatioTerms:
    y, p = _pair(y_true, y_pred_perturbed, "y_true", "y_pred_perturbed")
    return RatioTerms("robust_accuracy_score", (y == p).astype(np.float64), np.ones(y.size))


def _flip_terms(y_pred_clean: Any, y_pred_perturbed: Any) -> RatioTerms:
    c, p = _pair(y_pred_clean, y_pred_perturbed, "y_pred_clean", "y_pred_perturbed")
    return RatioTerms("flip_rate", (c != p).astype(np.float64), np.ones(c.size))


def _attack_terms(y_pred_clean: Any, y_pred_perturbed: Any, target: Any) -> RatioTerms:
    c, p = _pair(y_pred_clean, y_pred_perturbed, "y_pred_clean", "y_pred_perturbed")
    t = _ids(target, "target", c.size)
    open_ = c != t
    return RatioTerms(
        "attack_success_rate", (open_ & (p == t)).astype(np.float64), open_.astype(np.float64)
    )


@register_metric(input="per_example", greater_is_better=True, terms=_robust_accuracy_terms)
def robust_accuracy_score(y_true: Any, y_pred_perturbed: Any) -> float:
    """Accuracy on perturbed examples.

    Args:
        y_true: (n,) true class ids (the source example's label).
        y_pred_perturbed: (n,) predicted class ids on the perturbed texts.
    """
    return _robust_accuracy_terms(y_true, y_pred_perturbed).value()


@register_metric(input="per_example", greater_is_better=False, terms=_flip_terms)
def flip_rate(y_pred_clean: Any, y_pred_perturbed: Any) -> float:
    """The share of perturbed examples whose predicted class differs from the clean one.

    Args:
        y_pred_clean: (n,) predicted class ids on the source examples.
        y_pred_perturbed: (n,) predicted class ids on the perturbed texts.
    """
    return _flip_terms(y_pred_clean, y_pred_perturbed).value()


@register_metric(input="per_example", greater_is_better=False, terms=_attack_terms)
def attack_success_rate(y_pred_clean: Any, y_pred_perturbed: Any, target: Any) -> float:
    """Among targeted perturbations whose clean prediction was not the target, the share
    predicted as the target after the perturbation (``nan`` when none is left).

    Args:
        y_pred_clean: (n,) predicted class ids on the source examples.
        y_pred_perturbed: (n,) predicted class ids on the perturbed texts.
        target: (n,) the class id each perturbation pushes toward.
    """
    return _attack_terms(y_pred_clean, y_pred_perturbed, target).value()


def grouped_terms(terms: RatioTerms, groups: Sequence[str] | Any) -> RatioTerms:
    """``terms`` summed per group (the source example of each perturbed example), groups in
    order of first appearance: the metric's value is unchanged, and a bootstrap over the
    grouped terms resamples source examples (perturbations of one example stay together)."""
    keys = list(groups)
    if len(keys) != terms.n:
        raise InputError(
            f"groups has {len(keys)} entries but the terms have {terms.n}; one group per "
            f"perturbed example"
        )
    order: dict[Any, int] = {}
    index = np.array([order.setdefault(k, len(order)) for k in keys], dtype=np.intp)
    m = len(order)
    return RatioTerms(
        terms.metric,
        np.bincount(index, weights=terms.numerator, minlength=m).astype(np.float64),
        np.bincount(index, weights=terms.denominator, minlength=m).astype(np.float64),
    )


def paired_robustness(
    terms_a: Mapping[str, RatioTerms],
    terms_b: Mapping[str, RatioTerms] | None,
    groups: Mapping[str, Sequence[str]],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, RatioBootstrap]:
    """Cluster-bootstrap intervals of several robustness figures of model A (and B, and
    ``B - A``, paired): ``terms_a[key]`` / ``terms_b[key]`` are one metric's per-example terms
    on one subset of perturbed examples, ``groups[key]`` their source example ids. Each key
    is resampled by source example with ``seed``."""
    out: dict[str, RatioBootstrap] = {}
    for key, ta in terms_a.items():
        tb = None if terms_b is None else terms_b[key]
        ga = grouped_terms(ta, groups[key])
        gb = None if tb is None else grouped_terms(tb, groups[key])
        out[key] = paired_ratio_bootstrap(
            ga, gb, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    return out
