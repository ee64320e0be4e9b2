"""Input checks for every metric, in one place (validated once, at the boundary)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError

__all__ = [
    "OUT_OF_SCOPE",
    "check_confidence",
    "check_counts",
    "check_flags",
    "check_labels",
    "check_latency",
    "check_logits",
    "check_mask",
    "check_proba",
    "check_proba_rows",
    "check_series",
    "check_tool_names",
]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_ROW_SUM_TOL = 1e-4

OUT_OF_SCOPE = -1
"""The class id of an out-of-scope example (no valid label among the workflow's labels)."""


def _as_class_ids(values: Any, name: str, *, allow_out_of_scope: bool = False) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be a 1-D array of class ids, got shape {arr.shape}; "
            f"pass one integer per example"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty; a metric needs at least one example")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        if (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.intp)
        else:
            raise InputError(
                f"{name} must hold integer class ids 0..k-1, got dtype {arr.dtype}; "
                f"map label names to their index in the workflow's label order"
            )
    if allow_out_of_scope and arr.min() == OUT_OF_SCOPE:
        return arr.astype(np.intp, copy=False)
    if arr.min() < 0:
        raise InputError(
            f"{name} holds negative class ids (min {int(arr.min())}); class ids are 0..k-1"
        )
    return arr.astype(np.intp, copy=False)


def check_labels(
    y_true: Any, y_pred: Any, n_classes: int | None = None
) -> tuple[IntArray, IntArray, int]:
    """Validate two label arrays; returns ``(y_true, y_pred, k)`` with ``k`` the class count."""
    t = _as_class_ids(y_true, "y_true")
    p = _as_class_ids(y_pred, "y_pred")
    if t.shape != p.shape:
        raise InputError(
            f"y_true has {t.size} examples but y_pred has {p.size}; they must be aligned one-to-one"
        )
    seen = int(max(t.max(), p.max())) + 1
    if n_classes is None:
        n_classes = seen
    elif seen > n_classes:
        raise InputError(
            f"class id {seen - 1} is out of range for n_classes={n_classes}; "
            f"raise n_classes or fix the labels"
        )
    return t, p, int(n_classes)


def check_proba(
    y_true: Any, proba: Any, *, allow_out_of_scope: bool = False
) -> tuple[IntArray, FloatArray]:
    """Validate labels and an ``(n, k)`` probability matrix whose rows sum to 1
    (``allow_out_of_scope``: ``y_true`` may also hold :data:`OUT_OF_SCOPE`)."""
    t = _as_class_ids(y_true, "y_true", allow_out_of_scope=allow_out_of_scope)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise InputError(f"proba must be a 2-D (n, k) array, got shape {p.shape}")
    if p.shape[0] != t.size:
        raise InputError(
            f"y_true has {t.size} examples but proba has {p.shape[0]} rows; "
            f"they must be aligned one-to-one"
        )
    if p.shape[1] < 2:
        raise InputError(f"proba needs at least 2 columns (classes), got {p.shape[1]}")
    if not np.all(np.isfinite(p)) or p.min() < -1e-12:
        raise InputError(
            "proba holds negative, NaN or infinite values; "
            "pass probabilities (e.g. a softmax output)"
        )
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > _ROW_SUM_TOL:
        raise InputError(
            f"proba rows must sum to 1; row {worst} sums to {sums[worst]:.6f}; normalize the rows"
        )
    if t.max() >= p.shape[1]:
        raise InputError(
            f"y_true holds class id {int(t.max())} but proba has only {p.shape[1]} columns"
        )
    return t, p


def check_mask(mask: Any, n: int, name: str = "mask") -> BoolArray:
    """Validate a boolean row mask of length ``n``."""
    m = np.asarray(mask)
    if m.dtype != np.bool_ or m.shape != (n,):
        raise InputError(
            f"{name} must be a boolean array of shape ({n},), got dtype {m.dtype} shape {m.shape}"
        )
    return m


def check_latency(latency_ms: Any) -> FloatArray:
    """Validate a 1-D array of non-negative latencies in milliseconds."""
    arr = np.asarray(latency_ms, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"latency_ms must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise InputError("latency_ms must be finite and non-negative (milliseconds)")
    return arr


def check_proba_rows(proba: Any, name: str = "proba") -> FloatArray:
    """Validate an ``(n, k)`` matrix of finite, non-negative per-class probabilities with
    ``k >= 2`` (row sums are not checked: the caller decides its tolerance)."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(f"{name} must be (n, k) with k >= 2, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or (p.size and p.min() < -1e-12):
        raise InputError(
            f"{name} holds negative, NaN or infinite values; pass probabilities "
            f"(e.g. a softmax output)"
        )
    return p


def check_confidence(correct: Any, confidence: Any) -> tuple[FloatArray, FloatArray]:
    """Validate per-decision correctness (boolean or 0/1, shape (n,)) and the confidence of
    the decided class (shape (n,), in [0, 1]); returns both as float arrays."""
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim != 1 or conf.size == 0:
        raise InputError(
            f"confidence must be a non-empty 1-D array (one value per decision), "
            f"got shape {conf.shape}"
        )
    if not np.all(np.isfinite(conf)) or conf.min() < 0.0 or conf.max() > 1.0:
        raise InputError("confidence must hold probabilities in [0, 1]")
    ok = np.asarray(correct)
    if ok.shape != conf.shape:
        raise InputError(
            f"correct has shape {ok.shape} but confidence has {conf.shape}; "
            f"they must be aligned one-to-one"
        )
    if ok.dtype != np.bool_ and not np.all((ok == 0) | (ok == 1)):
        raise InputError("correct must be boolean (or 0/1): True where the decision was right")
    return ok.astype(np.float64), conf


def check_logits(logits: Any, y_true: Any) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Validate ``(n, k)`` logits (or scores) and ``(n,)`` class ids ``0..k-1``, ``n >= 1``."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise InputError(f"expected logits (n, k) and labels (n,), got {z.shape} and {y.shape}")
    if z.shape[0] == 0:
        raise InputError("cannot fit a temperature on an empty calibration split")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise InputError(
            f"labels must be class indices in [0, {z.shape[1]}), got [{y.min()}, {y.max()}]"
        )
    return z, y


def check_series(series: Any) -> FloatArray:
    """Validate a time-ordered 1-D series of finite numbers."""
    x = np.asarray(series, dtype=float)
    if x.ndim != 1:
        raise InputError(f"expected a 1-d series, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("the series contains NaN or infinite values; fill or drop them first")
    return x


def _one_d(values: Any, name: str, what: str, n: int | None) -> npt.NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array ({what}), got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty; a metric needs at least one example")
    if n is not None and arr.size != n:
        raise InputError(
            f"{name} has {arr.size} values but there are {n} examples; "
            f"the arrays must be aligned one-to-one"
        )
    return arr


def check_flags(values: Any, name: str, n: int | None = None) -> BoolArray:
    """Validate a non-empty 1-D array of per-example booleans (``bool`` or 0/1), of length
    ``n`` when given."""
    arr = _one_d(values, name, "one boolean per example", n)
    if arr.dtype != np.bool_ and (
        not np.issubdtype(arr.dtype, np.number) or not np.all((arr == 0) | (arr == 1))
    ):
        raise InputError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
    return arr.astype(np.bool_)


def check_counts(values: Any, name: str, n: int | None = None) -> IntArray:
    """Validate a non-empty 1-D array of per-example non-negative integer counts, of length
    ``n`` when given (integral floats are accepted)."""
    arr = _one_d(values, name, "one count per example", n)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} must hold integer counts, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)) or arr.min() < 0:
        raise InputError(f"{name} must hold non-negative integer counts (one per example)")
    return arr.astype(np.intp)


def check_tool_names(values: Any, name: str, n: int | None = None) -> list[str | None]:
    """Validate a non-empty sequence of per-example tool names (``str``, or ``None`` for
    "no tool"), of length ``n`` when given."""
    names = list(values)
    _one_d(np.arange(len(names)), name, "one tool name or None per example", n)
    bad = [v for v in names if v is not None and not isinstance(v, str)]
    if bad:
        raise InputError(f"{name} must hold tool names (str) or None for 'no tool', got {bad[0]!r}")
    return names
