"""Softmax and temperature scaling: ``softmax(logits / T)``, its NLL, and the ``T`` that
minimizes that NLL.

Every model backend (zero-shot similarities, kNN votes, LoRA logits) and the fine-tuning
calibration step turn scores into probabilities with :func:`softmax` and fit temperatures with
:func:`fit_temperature`; nothing else in tunegate exponentiates scores. The fit is a bounded
scalar search (Brent) over ``log T``, which is convex in practice and needs no learning rate.

These are helpers over logits, not metrics over probabilities, so they are not in the metric
registry; arrays are ``logits`` (n, k) float and ``y_true`` (n,) class ids ``0..k-1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import log_softmax

from tunegate.errors import InputError
from tunegate.metrics._validation import check_logits

__all__ = ["apply_temperature", "fit_temperature", "nll_loss", "softmax"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_TEMPERATURE_BOUNDS = (0.01, 100.0)


def softmax(scores: Any, temperature: float = 1.0) -> FloatArray:
    """Row-wise softmax of ``scores / temperature``: (n, k) -> (n, k) float64 rows summing to 1.

    Shifted by the row maximum first, so large scores do not overflow. ``temperature`` may be
    given positionally (``softmax(logits, T)`` reads as temperature scaling).
    """
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


def apply_temperature(logits: Any, temperature: float) -> FloatArray:
    """``softmax(logits / temperature)`` row-wise: (n, k) logits -> (n, k) probabilities."""
    return softmax(logits, temperature)


def _mean_nll(z: FloatArray, y: npt.NDArray[np.int64], temperature: float) -> float:
    logp = log_softmax(z / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def nll_loss(logits: Any, y_true: Any, *, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``y_true`` (n,) under ``softmax(logits / temperature)``
    with ``logits`` of shape (n, k); lower is better, >= 0."""
    z, y = check_logits(logits, y_true)
    return _mean_nll(z, y, temperature)


def fit_temperature(
    logits: Any,
    y_true: Any,
    *,
    bounds: tuple[float, float] = DEFAULT_TEMPERATURE_BOUNDS,
    fallback: float | None = 1.0,
) -> float:
    """The temperature ``T`` in ``bounds`` minimizing :func:`nll_loss` of ``y_true`` (n,) given
    ``logits`` (n, k) (or any scores, e.g. cosine similarities).

    ``fallback`` is the temperature to keep when the data cannot improve on it: with fewer
    than 2 examples, or when the fitted ``T`` has a higher NLL than ``fallback`` on the data
    it was fitted on (never return a temperature worse than no scaling). ``fallback=None``
    always returns the search's result (the zero-shot prior, 0.05, is not a value to fall
    back to).
    """
    from scipy.optimize import minimize_scalar  # imported on use: it is slow to import

    z, y = check_logits(logits, y_true)
    if bounds[0] <= 0 or bounds[1] <= bounds[0]:
        raise InputError(f"bounds must satisfy 0 < low < high, got {bounds}")
    if fallback is not None and len(y) < 2:
        return fallback

    def objective(log_t: float) -> float:
        return _mean_nll(z, y, np.exp(log_t))

    result = minimize_scalar(
        objective,
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-4},
    )
    t = float(np.exp(result.x))
    if fallback is None:
        return t
    return t if objective(float(result.x)) <= objective(float(np.log(fallback))) else fallback
