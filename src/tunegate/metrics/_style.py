"""How close texts sound to a house voice, given their embeddings (the style stage's metric,
docs/generative.md "Style as its own stage"). Encoding the texts is the caller's job
(:func:`tunegate.generative.style_similarity`); this is pure arithmetic on arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunegate.errors import InputError

__all__ = ["style_similarity_score"]


def _matrix(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(
            f"{name} must be a non-empty (n, d) array of embeddings, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} holds non-finite values (nan or inf); check the encoder")
    norms = np.linalg.norm(arr, axis=1)
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise InputError(f"{name}[{int(zero[0])}] is a zero vector; it has no direction")
    unit: np.ndarray = arr / norms[:, None]
    return unit


def style_similarity_score(text_embeddings: Any, house_embeddings: Any) -> float:
    """Mean over texts of the highest cosine similarity to any house-voice example.

    Args:
        text_embeddings: (n, d) embeddings of the texts judged (rows need not be unit-norm;
            they are normalised here).
        house_embeddings: (m, d) embeddings of examples written in the house voice.

    Returns a float in [-1, 1]: 1 when every text has an identical-direction house example.
    Higher is closer to the house voice. It measures tone and wording as the encoder sees
    them, not correctness; a rewrite is judged on the task metrics too.
    """
    texts = _matrix(text_embeddings, "text_embeddings")
    house = _matrix(house_embeddings, "house_embeddings")
    if texts.shape[1] != house.shape[1]:
        raise InputError(
            f"text_embeddings have dimension {texts.shape[1]} and house_embeddings "
            f"{house.shape[1]}; embed both with the same encoder"
        )
    best = (texts @ house.T).max(axis=1)
    return float(np.clip(best, -1.0, 1.0).mean())
