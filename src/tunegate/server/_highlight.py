"""Word highlights for the review queue: which words pushed the model toward its label.

The default is **word occlusion** with the serving classifier: drop one word at a time and
measure how much the probability of the predicted class falls. One batched ``predict_proba``
call of ``1 + n_words`` texts per ticket (words beyond ``max_words`` are not scored), so it is
cheap enough for a page of tickets and works with any classifier, including a remote one.
Weights are scaled to [-1, 1] by the largest absolute change: positive = supports the label,
negative = speaks against it.

When the serving model is a zero-shot or LoRA model and the ML extra is installed,
:func:`attribution_segments` uses :func:`tunegate.diagnose.attribute_texts` instead (Captum
Integrated Gradients on the encoder's embedding layer), mapped back onto the original words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Segment", "attribution_segments", "occlusion_highlights"]

_WORD = re.compile(r"\S+")


class _Proba(Protocol):
    labels: list[str]

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> Any: ...


@dataclass(frozen=True)
class Segment:
    """A piece of the ticket text with its weight in [-1, 1] (0 for whitespace/unscored)."""

    text: str
    weight: float

    @property
    def css_class(self) -> str:
        """A bucketed class name (no inline styles, so the page's CSP can forbid them)."""
        level = min(5, round(abs(self.weight) * 5))
        if level == 0:
            return ""
        return f"hl-{'pos' if self.weight > 0 else 'neg'}-{level}"


def occlusion_highlights(
    classifier: _Proba, text: str, label: str, *, max_words: int = 64
) -> list[Segment]:
    """Segments of ``text`` (words and the whitespace between them) with occlusion weights
    for ``label``. Returns the text as one unweighted segment when ``label`` is unknown to the
    classifier or the text has a single word."""
    matches = list(_WORD.finditer(text))
    if label not in classifier.labels or len(matches) < 2:
        return [Segment(text, 0.0)]
    column = classifier.labels.index(label)
    scored = matches[:max_words]
    variants = [text]
    for m in scored:
        variants.append((text[: m.start()] + text[m.end() :]).strip() or text)
    proba = np.asarray(classifier.predict_proba(variants), dtype=np.float64)
    base = proba[0, column]
    drops = base - proba[1:, column]
    scale = float(np.max(np.abs(drops))) if drops.size else 0.0
    weights = drops / scale if scale > 1e-9 else np.zeros_like(drops)
    segments: list[Segment] = []
    cursor = 0
    for i, m in enumerate(matches):
        if m.start() > cursor:
            segments.append(Segment(text[cursor : m.start()], 0.0))
        weight = float(weights[i]) if i < len(scored) else 0.0
        segments.append(Segment(m.group(0), weight))
        cursor = m.end()
    if cursor < len(text):
        segments.append(Segment(text[cursor:], 0.0))
    return segments


def _scaled(values: Sequence[float]) -> list[float]:
    scale = max((abs(v) for v in values), default=0.0)
    return [v / scale if scale > 1e-12 else 0.0 for v in values]


def attribution_segments(text: str, words: Sequence[str], scores: Sequence[float]) -> list[Segment]:
    """Map attributions of (lowercased, in-order) ``words`` back onto ``text``: each word is
    found case-insensitively after the previous one; words not found are skipped. Weights are
    scaled to [-1, 1]."""
    lowered = text.lower()
    weights = _scaled(scores)
    segments: list[Segment] = []
    cursor = 0
    for word, weight in zip(words, weights, strict=True):
        if not word:
            continue
        at = lowered.find(word, cursor)
        if at < 0:
            continue
        if at > cursor:
            segments.append(Segment(text[cursor:at], 0.0))
        segments.append(Segment(text[at : at + len(word)], weight))
        cursor = at + len(word)
    if cursor < len(text):
        segments.append(Segment(text[cursor:], 0.0))
    return segments or [Segment(text, 0.0)]
