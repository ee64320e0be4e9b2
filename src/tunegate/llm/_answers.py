"""Reading an LLM's answer: is it a label, invalid JSON, not a label, or a refusal; and the
label log-probabilities its token log-probabilities imply.

Nothing here maps a bad answer to a class: :func:`parse_answer` returns the outcome, and
the caller counts it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["AnswerKind", "AnswerOutcome", "label_logprobs", "parse_answer"]


class AnswerKind(StrEnum):
    """What one answer was."""

    VALID = "valid"
    """JSON ``{"label": <a workflow label>}``."""
    NOT_A_LABEL = "not_a_label"
    """Valid JSON whose ``label`` is missing or not one of the workflow's labels."""
    INVALID_JSON = "invalid_json"
    """Not JSON (or empty, or cut off)."""
    REFUSAL = "refusal"
    """The model declined (a ``refusal`` field, a content filter, or an apology instead of JSON)."""


@dataclass(frozen=True)
class AnswerOutcome:
    """The answers given for one text, counted by kind. A text with ``valid == 0`` has no
    answer: its probabilities are uniform (routed to clarify) and an evaluation counts it as
    an error (``metrics["invalid_answer"]``)."""

    method: str
    """``logprobs`` (one deterministic answer) or ``samples`` (k answers)."""
    valid: int = 0
    not_a_label: int = 0
    invalid_json: int = 0
    refusal: int = 0

    @property
    def answers(self) -> int:
        return self.valid + self.invalid

    @property
    def invalid(self) -> int:
        """Answers that named no label."""
        return self.not_a_label + self.invalid_json + self.refusal

    @property
    def answered(self) -> bool:
        """At least one valid answer."""
        return self.valid > 0

    def counts(self) -> dict[str, int]:
        return {
            "valid": self.valid,
            "not_a_label": self.not_a_label,
            "invalid_json": self.invalid_json,
            "refusal": self.refusal,
        }


_REFUSAL = re.compile(
    r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:not|'t|’t)|i won'?t|i'?m (?:not able|unable)|"
    r"i am (?:not able|unable)|as an ai)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_answer(
    content: str | None,
    labels: Sequence[str],
    *,
    refusal: str | None = None,
    finish_reason: str | None = None,
) -> tuple[str | None, AnswerKind]:
    """The label an answer names and its kind; ``None`` unless the kind is ``VALID``.

    Strict: the answer must be a JSON object whose ``label`` is exactly one of ``labels``
    (surrounding whitespace and a Markdown code fence are tolerated; nothing else is).
    """
    if refusal or finish_reason == "content_filter":
        return None, AnswerKind.REFUSAL
    text = (content or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data: Any = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        if _REFUSAL.match(text):
            return None, AnswerKind.REFUSAL
        return None, AnswerKind.INVALID_JSON
    if isinstance(data, dict) and isinstance(data.get("label"), str) and data["label"] in labels:
        return str(data["label"]), AnswerKind.VALID
    return None, AnswerKind.NOT_A_LABEL


_VALUE_START = re.compile(r'"label"\s*:\s*"')


def label_logprobs(
    tokens: Sequence[dict[str, Any]], answer: str, labels: Sequence[str]
) -> list[float] | None:
    """Log-probabilities (k,) of ``labels`` read from the answer's token log-probabilities,
    or ``None`` when they cannot be read (then the caller falls back to the answer alone).

    ``tokens`` is ``choices[0].logprobs.content`` of a greedy answer naming ``answer``. The
    walk starts at the token where the label's value begins and follows the generated path:
    at each position the alternatives (``top_logprobs``) consistent with some label are kept
    (the rest, tokens no label starts with, are dropped and the kept ones renormalized); an
    alternative's mass is split evenly among the labels it is consistent with; labels no
    alternative covers get at most the smallest listed probability (anything unlisted is less
    likely than the last listed token); the mass of the generated token carries on to the next
    position, until one label is left. Servers report log-probabilities before any grammar
    constraint, so these are the model's own preferences among the labels.
    """
    text = "".join(str(t.get("token", "")) for t in tokens)
    match = _VALUE_START.search(text)
    if match is None or answer not in labels:
        return None
    offset = match.end()
    starts: list[int] = []
    pos = 0
    for t in tokens:
        starts.append(pos)
        pos += len(str(t.get("token", "")))
    first = next(
        (i for i, s in enumerate(starts) if s <= offset < s + len(str(tokens[i].get("token", "")))),
        None,
    )
    if first is None:
        return None
    mass = dict.fromkeys(labels, 0.0)
    candidates = list(labels)
    matched = ""
    carried = 1.0
    pre = text[starts[first] : offset]

    def consistent(s: str, pool: Sequence[str]) -> list[str]:
        # s: label text so far (may run past the label into the closing quote)
        return [lab for lab in pool if lab.startswith(s) or s.startswith(lab + '"')]

    for j in range(first, len(tokens)):
        if len(candidates) <= 1:
            break
        token = str(tokens[j].get("token", ""))
        local_pre = pre if j == first else ""
        alts: dict[str, float] = {}
        for alt in tokens[j].get("top_logprobs") or []:
            lp = alt.get("logprob")
            if isinstance(lp, int | float) and math.isfinite(lp):
                alts[str(alt.get("token", ""))] = math.exp(float(lp))
        lp_gen = tokens[j].get("logprob")
        if token not in alts and isinstance(lp_gen, int | float) and math.isfinite(lp_gen):
            alts[token] = math.exp(float(lp_gen))
        if not token.startswith(local_pre):
            return None
        gen_rest = token[len(local_pre) :]
        if not gen_rest:
            continue  # the generated token ends right at the label's start; look at the next
        groups: dict[str, tuple[float, list[str]]] = {}
        for alt, q in alts.items():
            if not alt.startswith(local_pre) or alt == local_pre:
                continue
            group = consistent(matched + alt[len(local_pre) :], candidates)
            if group:
                groups[alt] = (q, group)
        if token not in groups:
            return None
        covered = {lab for _, group in groups.values() for lab in group}
        uncovered = [lab for lab in candidates if lab not in covered]
        listed = list(alts.values())
        floor = 0.0
        if uncovered and listed:
            leftover = max(0.0, 1.0 - sum(listed))
            floor = min(min(listed), leftover / len(uncovered))
        total = sum(q for q, _ in groups.values()) + floor * len(uncovered)
        if total <= 0:
            return None
        for alt, (q, group) in groups.items():
            if alt == token:
                continue
            for lab in group:
                mass[lab] += carried * q / total / len(group)
        for lab in uncovered:
            mass[lab] += carried * floor / total
        carried *= groups[token][0] / total
        candidates = groups[token][1]
        matched += gen_rest
    if answer in candidates:
        mass[answer] += carried
    else:  # pragma: no cover - the generated path always names the answer
        for lab in candidates:
            mass[lab] += carried / len(candidates)
    total = sum(mass.values())
    tiny = 1e-12
    return [math.log(max(mass[lab] / total, tiny)) for lab in labels]
