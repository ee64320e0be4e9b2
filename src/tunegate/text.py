"""Text helpers shared by diagnosis, monitoring, the demo and the server: words, n-grams, weeks.

One tokenizer with a few named word patterns (the patterns differ on purpose, see
:data:`WORD_PATTERNS`), one n-gram helper, one week bucketing. Standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

__all__ = [
    "STOPWORDS",
    "WORD_PATTERNS",
    "WordPattern",
    "iso_week",
    "ngrams",
    "week_start",
    "words",
]

WordPattern = Literal["word", "alpha", "vocabulary"]

WORD_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    "word": re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*"),
    "alpha": re.compile(r"[a-z][a-z0-9]*(?:['’-][a-z0-9]+)*"),
    "vocabulary": re.compile(r"[a-z0-9]+(?:'[a-z]+)?"),
}
"""The word patterns, applied to lowercased text.

* ``word``: letters and digits, joined by inner apostrophes or hyphens (``can't``,
  ``vpn-2``, ``wi-fi``): n-grams of missed signals (diagnosis, the next gap).
* ``alpha``: the same, but a word starts with a letter (``2fa`` is ``fa``): triage's
  content words.
* ``vocabulary``: letters and digits with one inner apostrophe only (``vpn-2`` is ``vpn``,
  ``2``); the text is NFKC-normalized and ``’`` becomes ``'`` first: drift's vocabulary tests.
"""

STOPWORDS: Final[frozenset[str]] = frozenset(
    """
    a an the and or but if of to in on at by for with from as is are was were be been being
    it its this that these those i me my we our you your he she they them their his her not no
    do does did have has had can could will would should may might must so than then there
    here what which who when where why how all any some just also very too up out about into
    over again please hi hello thanks thank regards am pm now still didn wasn isn don doesn
    won couldn can't don't didn't wasn't isn't i'm i've im ive""".split()  # noqa: SIM905
)
"""Words that carry no signal in a service-desk ticket (n-grams may not start or end with one)."""


def words(text: str, *, pattern: WordPattern = "word") -> list[str]:
    """The lowercased words of ``text``, in order, by the named :data:`WORD_PATTERNS` entry."""
    if pattern == "vocabulary":
        text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    else:
        text = text.lower()
    return WORD_PATTERNS[pattern].findall(text)


def ngrams(
    text: str,
    n_range: tuple[int, int] = (1, 3),
    *,
    stopwords: Collection[str] = STOPWORDS,
) -> set[str]:
    """Distinct word n-grams of ``text`` (``word`` pattern, lowercased).

    An n-gram may not start or end with a stopword; a unigram must have two or more
    characters and not be a number.
    """
    lo, hi = n_range
    if not 1 <= lo <= hi:
        raise ValueError(f"n_range must satisfy 1 <= lo <= hi, got {n_range}")
    tokens = words(text)
    out: set[str] = set()
    for n in range(lo, hi + 1):
        for i in range(len(tokens) - n + 1):
            gram = tokens[i : i + n]
            if gram[0] in stopwords or gram[-1] in stopwords:
                continue
            if n == 1 and (len(gram[0]) < 2 or gram[0].isdigit()):
                continue
            out.add(" ".join(gram))
    return out


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def week_start(moment: datetime) -> date:
    """The Monday (UTC) of the week containing ``moment`` (a naive datetime is taken as UTC)."""
    day = _utc(moment).date()
    return day - timedelta(days=day.weekday())


def iso_week(moment: datetime) -> str:
    """``2025-W07``: the ISO year and week (UTC) of ``moment``."""
    year, week, _ = _utc(moment).isocalendar()
    return f"{year}-W{week:02d}"
