"""Label probabilities from counted answers (an LLM sampled k times): smoothed frequencies."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError

__all__ = ["smoothed_frequencies"]

FloatArray = npt.NDArray[np.float64]


def smoothed_frequencies(
    counts: Any, abstained: Any = None, *, smoothing: float = 0.5
) -> FloatArray:
    """Probabilities (n, k) from answer counts (n, k): additive (Lidstone) smoothing, with the
    answers that named no class spread evenly over all classes.

    ``p[i, j] = (counts[i, j] + smoothing + abstained[i] / k) / (m[i] + smoothing * k)`` where
    ``m[i] = counts[i].sum() + abstained[i]`` is the number of answers of row ``i``.
    An invalid answer (not a label, invalid JSON, a refusal) is evidence of nothing, so it
    flattens the row instead of voting; a row with no valid answer is exactly uniform, and a
    row with no answers at all too. ``smoothing`` >= 0 (0: raw frequencies; a row of zeros
    then becomes uniform).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 1:
        raise InputError(f"counts must be a 2-D (n, k) array, got shape {c.shape}")
    n, k = c.shape
    a = np.zeros(n) if abstained is None else np.asarray(abstained, dtype=np.float64)
    if a.shape != (n,):
        raise InputError(f"abstained must have shape ({n},), got {a.shape}")
    if np.any(c < 0) or np.any(a < 0) or not (np.all(np.isfinite(c)) and np.all(np.isfinite(a))):
        raise InputError("counts and abstained must be finite and non-negative")
    if not (smoothing >= 0 and np.isfinite(smoothing)):
        raise InputError(f"smoothing must be a finite number >= 0, got {smoothing}")
    num = c + smoothing + (a / k)[:, None]
    total = num.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    num[empty] = 1.0
    total[empty] = k
    out: FloatArray = num / total
    return out
