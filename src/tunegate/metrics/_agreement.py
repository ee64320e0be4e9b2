"""Agreement between two raters (a checker and a human, two judges)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunegate.metrics._registry import register_metric
from tunegate.metrics._validation import check_labels

__all__ = ["cohen_kappa_score"]


def _ids(values: Any) -> Any:
    arr = np.asarray(values)
    return arr.astype(np.intp) if arr.dtype == np.bool_ else arr


@register_metric(input="labels", greater_is_better=True)
def cohen_kappa_score(rater_a: Any, rater_b: Any) -> float:
    """Cohen's kappa between two raters' labels of the same items: ``(p_o - p_e) / (1 - p_e)``,
    ``p_o`` the observed agreement and ``p_e`` the agreement expected by chance from each
    rater's label frequencies (unweighted).

    Args:
        rater_a, rater_b: (n,) class ids ``0..k-1`` (booleans as 0/1: supported or not).

    1 is perfect agreement, 0 chance level, negative worse than chance. ``nan`` when
    ``p_e = 1`` (both raters give one and the same label to every item: agreement is
    certain by chance, so kappa is undefined).
    """
    t, p, k = check_labels(_ids(rater_a), _ids(rater_b))
    n = t.size
    observed = float(np.count_nonzero(t == p)) / n
    freq_a = np.bincount(t, minlength=k) / n
    freq_b = np.bincount(p, minlength=k) / n
    expected = float(freq_a @ freq_b)
    if expected >= 1.0:
        return float("nan")
    return (observed - expected) / (1.0 - expected)
