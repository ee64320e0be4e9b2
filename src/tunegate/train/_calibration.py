"""Temperature scaling: one scalar ``T`` so that ``softmax(logits / T)`` is calibrated.

Fitted by minimizing the negative log-likelihood on a held-out calibration split (a bounded
scalar search over ``log T``, which is convex in practice and needs no learning rate).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from tunegate.errors import InputError

__all__ = ["apply_temperature", "fit_temperature", "nll_loss"]

_LOG_T_BOUNDS = (np.log(0.01), np.log(100.0))


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise InputError(f"expected logits (n, k) and labels (n,), got {z.shape} and {y.shape}")
    if z.shape[0] == 0:
        raise InputError("cannot fit a temperature on an empty calibration split")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise InputError(
            f"labels must be class indices in [0, {z.shape[1]}), got [{y.min()}, {y.max()}]"
        )
    return z, y


def nll_loss(
    logits: np.ndarray, labels: np.ndarray | Sequence[int], *, temperature: float = 1.0
) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z, y = _check(np.asarray(logits), np.asarray(labels))
    logp = log_softmax(z / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray | Sequence[int]) -> float:
    """The temperature ``T > 0`` minimizing NLL of ``labels`` given ``logits`` (n, k).

    Bounded to [0.01, 100]. Returns 1.0 when the split cannot inform a temperature (a single
    example, or NLL flat in T).
    """
    z, y = _check(np.asarray(logits), np.asarray(labels))
    if len(y) < 2:
        return 1.0

    def objective(log_t: float) -> float:
        logp = log_softmax(z / np.exp(log_t), axis=1)
        return float(-logp[np.arange(len(y)), y].mean())

    result = minimize_scalar(
        objective, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4}
    )
    t = float(np.exp(result.x))
    # Never return a temperature worse than no scaling on the data it was fitted on.
    return t if objective(float(result.x)) <= objective(0.0) else 1.0


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise: (n, k) probabilities."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    out: np.ndarray = p / p.sum(axis=1, keepdims=True)
    return out
