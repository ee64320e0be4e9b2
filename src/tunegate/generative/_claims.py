"""Claims and their checkable tokens: sentence-level claim splitting, and the numbers,
versions, dates and named-entity-like words a claim asserts (standard library only)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunegate.text import STOPWORDS

__all__ = ["Salient", "salient_tokens", "split_claims"]

_CITATION = re.compile(r"\[[^\[\]\n]{1,40}\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DATE_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+(\d{{4}})\b", re.I)
_DATE_MDY = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_DATE_MY = re.compile(rf"\b{_MONTH}\.?\s+(\d{{4}})\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])v?(\d+(?:[.,]\d+)*)(?!\w)")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
_VERSION_WORD = re.compile(r"v\d", re.I)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90"})
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")
_NOT_ENTITIES = frozenset(_MONTHS) | frozenset(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "i"]
)


def split_claims(text: str) -> list[str]:
    """Split an answer into sentence-level claims.

    Lines and list items are separate claims; within a line, a sentence ends at ``.``, ``!``
    or ``?`` followed by whitespace and a capital letter or digit (so ``4.2.1``, ``e.g. the``
    and ``3.5 days`` do not split). Citation markers (``[1]``, ``[doc-7]``) are removed;
    fragments without a letter or digit are dropped.
    """
    claims: list[str] = []
    for line in text.splitlines():
        line = _CITATION.sub("", _BULLET.sub("", line))
        for part in _SENTENCE_END.split(line):
            part = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(part.split()))
            if any(ch.isalnum() for ch in part):
                claims.append(part)
    return claims


@dataclass(frozen=True)
class Salient:
    """What a text asserts that embeddings blur: numbers (versions included, ``1,000`` as
    ``1000``, number words up to twenty as digits), dates (``YYYY-MM-DD``, or ``YYYY-MM``
    without a day) and named-entity-like words (capitalised or mixed-case words and acronyms
    not at the start of a sentence, lowercased)."""

    numbers: frozenset[str]
    dates: frozenset[str]
    entities: frozenset[str]

    def missing_from(self, other: Salient, other_text: str) -> tuple[str, ...]:
        """This text's numbers, dates and entities that ``other`` does not assert (entities
        also count as present when they occur as a word of ``other_text`` in any case)."""
        words = {w.lower() for w in _WORD.findall(other_text)}
        return tuple(
            sorted(self.numbers - other.numbers)
            + sorted(self.dates - other.dates)
            + sorted(e for e in self.entities - other.entities if e not in words)
        )


def _dates(text: str) -> tuple[set[str], str]:
    found: set[str] = set()

    def iso(y: str, m: int, d: str | None) -> str:
        return f"{int(y):04d}-{m:02d}" + (f"-{int(d):02d}" if d else "")

    def take(pattern: re.Pattern[str], build: object) -> None:
        nonlocal text
        for match in pattern.finditer(text):
            found.add(build(match))  # type: ignore[operator]
        text = pattern.sub(" ", text)

    take(_DATE_ISO, lambda m: iso(m[1], int(m[2]), m[3]))
    take(_DATE_DMY, lambda m: iso(m[3], _MONTHS[m[2].lower()[:3]], m[1]))
    take(_DATE_MDY, lambda m: iso(m[3], _MONTHS[m[1].lower()[:3]], m[2]))
    take(_DATE_MY, lambda m: iso(m[2], _MONTHS[m[1].lower()[:3]], None))
    return found, text


def _number(raw: str) -> str:
    return raw.replace(",", "") if _THOUSANDS.fullmatch(raw) else raw


def salient_tokens(text: str) -> Salient:
    """The numbers, dates and entity-like words of ``text`` (see :class:`Salient`)."""
    dates, rest = _dates(text)
    numbers = {_number(m[1]) for m in _NUMBER.finditer(rest)}
    entities: set[str] = set()
    for sentence in _SENTENCE_END.split(rest):
        for i, match in enumerate(_WORD.finditer(sentence)):
            word = match[0]
            low = word.lower()
            if _VERSION_WORD.match(word):
                continue
            if low in _NUMBER_WORDS:
                numbers.add(_NUMBER_WORDS[low])
                continue
            acronym = len(word) > 1 and word.isupper()
            mixed = any(c.isupper() for c in word[1:]) or any(c.isdigit() for c in word)
            capital = word[0].isupper() and i > 0
            if (acronym or mixed or capital) and low not in STOPWORDS and low not in _NOT_ENTITIES:
                entities.add(low)
    return Salient(frozenset(numbers), frozenset(dates), frozenset(entities))
