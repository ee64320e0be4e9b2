"""Deterministic query rewriting and the BM25 word analysis."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunegate.config import RewriteSettings
from tunegate.text import STOPWORDS, words

__all__ = ["RewrittenQuery", "analyze", "rewrite_query"]


def analyze(text: str) -> list[str]:
    """The BM25 terms of a text: :func:`tunegate.text.words` (lowercased letters and digits)
    without :data:`tunegate.text.STOPWORDS`. Chunks and queries go through the same analysis."""
    return [w for w in words(text) if w not in STOPWORDS]


@dataclass(frozen=True)
class RewrittenQuery:
    """A query after rewriting: the text that is embedded and the BM25 terms."""

    original: str
    text: str
    terms: list[str]
    added: list[str]
    """Words the synonym list appended."""


def rewrite_query(query: str, settings: RewriteSettings) -> RewrittenQuery:
    """Rewrite ``query`` in this order, each step only when configured:

    1. ``synonyms``: for every configured phrase that occurs in the query as whole words
       (case-insensitive), append its words (in configuration order, each word once, words
       already in the query skipped);
    2. ``lowercase``: lowercase the text;
    3. ``remove_stopwords``: keep only the words (:func:`tunegate.text.words`) that are not
       stopwords, joined by spaces.

    The result's ``text`` is what is embedded; its ``terms`` (:func:`analyze` of the text
    with the synonyms) are what BM25 scores, so BM25 sees the synonyms whatever the other
    two switches say.
    """
    text = query.strip()
    present = set(words(text))
    added: list[str] = []
    lowered = text.lower()
    for phrase, alternatives in settings.synonyms.items():
        pattern = r"(?<![a-z0-9])" + re.escape(phrase.strip().lower()) + r"(?![a-z0-9])"
        if re.search(pattern, lowered):
            for word in alternatives:
                if word.lower() not in present and word not in added:
                    added.append(word)
    if added:
        text = f"{text} {' '.join(added)}"
    if settings.lowercase:
        text = text.lower()
    if settings.remove_stopwords:
        text = " ".join(w for w in words(text) if w not in STOPWORDS)
    return RewrittenQuery(
        original=query, text=text, terms=analyze(f"{query} {' '.join(added)}"), added=added
    )
