"""Words for numbers in reports: a change said as "rose"/"fell" by its sign (never a bare
negative "drop"), and small mappings written as ``name n, name n`` instead of a dict repr."""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["change_phrase", "counts_phrase"]


def change_phrase(
    difference: float | None,
    *,
    better: str | None = None,
    percent: bool = False,
    digits: int = 3,
    unit: str = "",
) -> str:
    """``rose by 0.108``, ``fell by 2.1 pp (better)``, ``unchanged`` or ``n/a``.

    ``difference`` is after minus before. ``percent`` says it in percentage points (values are
    shares); ``better`` (``"higher"`` or ``"lower"``) adds whether the change is an
    improvement. A change that rounds to zero at the shown precision is ``unchanged``.
    """
    if difference is None or math.isnan(difference):
        return "n/a"
    shown = abs(difference) * (100 if percent else 1)
    places = 1 if percent else digits
    if round(shown, places) == 0:
        return "unchanged"
    word = "rose" if difference > 0 else "fell"
    suffix = " pp" if percent else (f" {unit}" if unit else "")
    text = f"{word} by {shown:.{places}f}{suffix}"
    if better in ("higher", "lower"):
        good = (difference > 0) == (better == "higher")
        text += " (better)" if good else " (worse)"
    return text


def counts_phrase(counts: Mapping[str, object] | None, *, empty: str = "none") -> str:
    """``R2 12, R1 3`` from ``{"R2": 12, "R1": 3}`` (largest first when the values are
    numbers; ``empty`` when there is nothing)."""
    if not counts:
        return empty
    items = list(counts.items())
    if all(isinstance(v, int | float) for _, v in items):
        items.sort(key=lambda kv: -float(kv[1]))  # type: ignore[arg-type]
    return ", ".join(f"{k} {v}" for k, v in items)
