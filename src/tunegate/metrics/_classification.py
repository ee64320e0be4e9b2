"""Label metrics: accuracy, macro-F1, per-class precision / recall / false-negative rate.

Labels are integer class ids ``0..k-1`` (the index of a label in the workflow's label order).
Undefined ratios (a class with no true examples has no recall) are ``nan``, never a silent 0,
except inside macro-F1, which follows scikit-learn (classes present in ``y_true`` or
``y_pred`` are averaged and an undefined F1 counts as 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError
from tunegate.metrics._registry import register_metric
from tunegate.metrics._validation import check_labels, check_mask

__all__ = [
    "PerClassReport",
    "accuracy_score",
    "confusion_matrix",
    "f1_from_confusion",
    "false_negative_rate",
    "macro_f1_score",
    "per_class_report",
    "precision_per_class",
    "recall_per_class",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def confusion_matrix(y_true: Any, y_pred: Any, *, n_classes: int | None = None) -> IntArray:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as ``j``; shape (k, k)."""
    t, p, k = check_labels(y_true, y_pred, n_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


@register_metric(input="labels", greater_is_better=True)
def accuracy_score(y_true: Any, y_pred: Any, *, mask: Any = None) -> float:
    """Share of examples whose predicted class is the true class, in [0, 1].

    ``y_true``, ``y_pred``: (n,) class ids. ``mask`` (boolean, shape (n,)) restricts the rows
    first: accuracy on the decisions routed ``auto`` is selective accuracy. ``nan`` when the
    mask selects no row.
    """
    t, p, _ = check_labels(y_true, y_pred)
    if mask is not None:
        m = check_mask(mask, t.size)
        if not m.any():
            return float("nan")
        t, p = t[m], p[m]
    return float(np.mean(t == p))


def f1_from_confusion(cm: npt.NDArray[Any]) -> FloatArray:
    """Macro-F1 from confusion matrices of shape (..., k, k); returns shape (...).

    Averages over the classes present in the true or predicted labels (scikit-learn's
    default); a present class with no true positives counts as F1 = 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    den = support + predicted
    f1 = np.zeros_like(tp)
    np.divide(2.0 * tp, den, out=f1, where=den > 0)
    present = den > 0
    n_present = present.sum(axis=-1)
    return np.asarray(f1.sum(axis=-1) / np.maximum(n_present, 1), dtype=np.float64)


@register_metric(input="labels", greater_is_better=True)
def macro_f1_score(y_true: Any, y_pred: Any) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred``, in [0, 1]."""
    return float(f1_from_confusion(confusion_matrix(y_true, y_pred)))


@dataclass(frozen=True)
class PerClassReport:
    """Per-class figures, each of shape (k,) indexed by class id (``nan`` = undefined)."""

    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    false_negative_rate: FloatArray
    support: IntArray
    """True examples per class."""
    predicted: IntArray
    """Predictions per class."""


def per_class_report(y_true: Any, y_pred: Any, *, n_classes: int | None = None) -> PerClassReport:
    """Precision, recall, F1, false-negative rate and support for every class.

    ``precision`` is ``nan`` for a class never predicted; ``recall`` and FNR are ``nan`` for a
    class with no true examples; F1 is ``nan`` when both are undefined, 0 when one is.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes=n_classes).astype(np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2.0 * tp, support + predicted)
    return PerClassReport(
        precision=precision,
        recall=recall,
        f1=f1,
        false_negative_rate=1.0 - recall,
        support=support.astype(np.int64),
        predicted=predicted.astype(np.int64),
    )


@register_metric(input="labels", greater_is_better=True, per_class=True)
def precision_per_class(y_true: Any, y_pred: Any, *, n_classes: int | None = None) -> FloatArray:
    """Precision of every class, shape (k,); ``nan`` for a class never predicted."""
    return per_class_report(y_true, y_pred, n_classes=n_classes).precision


@register_metric(input="labels", greater_is_better=True, per_class=True)
def recall_per_class(y_true: Any, y_pred: Any, *, n_classes: int | None = None) -> FloatArray:
    """Recall of every class, shape (k,); ``nan`` for a class with no true examples."""
    return per_class_report(y_true, y_pred, n_classes=n_classes).recall


@register_metric(input="labels", greater_is_better=False, per_class=True)
def false_negative_rate(
    y_true: Any,
    y_pred: Any,
    label: int | None = None,
    *,
    mask: Any = None,
    n_classes: int | None = None,
) -> Any:
    """Share of true examples of a class that were predicted as something else (1 - recall).

    With ``label`` returns a float for that class, otherwise a (k,) array for every class.
    ``mask`` (boolean, shape (n,)) restricts the rows first: FNR on a named slice such as
    ``mfa_related``. ``nan`` when the (masked) rows have no true example of the class.
    A ``label`` that is not a class id (negative, not an integer, ``>= n_classes``) raises
    :class:`~tunegate.errors.InputError`.
    """
    t, p, k = check_labels(y_true, y_pred, n_classes)
    if mask is not None:
        m = check_mask(mask, t.size)
        t, p = t[m], p[m]
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, int | np.integer) or label < 0:
            raise InputError(f"label must be a class id (an integer >= 0), got {label!r}")
        if n_classes is not None and label >= k:
            raise InputError(
                f"label {label} is out of range for n_classes={n_classes}; class ids are 0..{k - 1}"
            )
        label = int(label)
    k = max(k, (label + 1) if label is not None else 0)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.float64)
    fnr = 1.0 - _safe_div(np.diag(cm), cm.sum(axis=1))
    return float(fnr[label]) if label is not None else fnr
