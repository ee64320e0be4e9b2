"""The LLM judge: a :class:`~tunegate.generative.SupportChecker` that asks a model behind any
OpenAI-compatible endpoint, under a written rubric, whether a passage supports a claim; and
:func:`judge_agreement`, the one way every support checker (this judge or the deterministic
default) reports its agreement with a human-labelled sample (docs/generative.md).

One request per claim (sent concurrently by :meth:`~tunegate.llm.ChatClient.complete_many`),
at temperature 0 with a fixed seed, its output constrained to the JSON Schema
``{"supported": boolean}``. An answer that is not that JSON is a **judge error**: the claim is
counted as not supported (never silently supported) and the error is kept with the verdict
and counted by :func:`judge_agreement`. An endpoint that cannot be reached, or that refuses
the request, raises the client's own :class:`~tunegate.errors.LlmUnavailableError` /
:class:`~tunegate.errors.LlmError` naming the URL and what to do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate.errors import InputError

if TYPE_CHECKING:
    from tunegate.generative._support import SupportChecker
    from tunegate.llm import ChatClient, ChatResult

__all__ = [
    "DEFAULT_RUBRIC",
    "JUDGE_SCHEMA",
    "Agreement",
    "JudgeVerdict",
    "LabelledPair",
    "LlmJudgeChecker",
    "judge_agreement",
    "read_labelled_pairs",
]

DEFAULT_RUBRIC = """\
You are a strict fact checker. You are given numbered PASSAGES and one CLAIM.
Decide whether the passages SUPPORT the claim.

The claim is supported only when all of these hold:
1. Every fact the claim states can be read in the passages, directly or as a plain paraphrase
   (a synonym, a different word order, a unit written out: "90 days" and "ninety days").
2. Every number, version, date, duration, size and amount in the claim is the same in the
   passages. A different number is NOT supported, however similar the sentence.
3. Every name, tool, team, role or product in the claim is the one the passages name for
   that fact. Swapping one name for another is NOT supported.
4. The claim does not contradict the passages: a negation ("may" against "must not"),
   the opposite outcome, or a fact taken from another item of a list is NOT supported.
5. Facts the passages do not mention are NOT supported, even when they are plausible or
   commonly true. Use no outside knowledge.

When in doubt, answer not supported.
Reply with JSON only: {"supported": true} or {"supported": false}."""
"""The written rubric (the judge's system message); docs/generative.md quotes it."""

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"supported": {"type": "boolean"}},
    "required": ["supported"],
    "additionalProperties": False,
}
"""The JSON Schema the judge's answer is constrained to (``response_format``)."""


@dataclass(frozen=True)
class JudgeVerdict:
    """The judge's decision for one claim.

    ``supported`` is ``False`` whenever ``error`` is set: an answer that could not be read
    never counts as support. ``raw`` is the model's text as received (evidence for triage and
    for auditing the judge)."""

    claim: str
    supported: bool
    error: str | None = None
    raw: str | None = None


def parse_verdict(content: str | None, finish_reason: str | None = None) -> bool | str:
    """The verdict of a judge answer: ``True``/``False``, or a string saying why the answer
    is not ``{"supported": <boolean>}`` (a judge error)."""
    if content is None or not content.strip():
        return "the judge returned no text"
    if finish_reason == "length":
        return f"the judge's answer was cut off at max_tokens: {content[:120]!r}"
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        return f"the judge's answer is not JSON ({exc.msg}): {content[:120]!r}"
    if not isinstance(data, dict) or "supported" not in data:
        return f'the judge\'s answer has no "supported" field: {content[:120]!r}'
    value = data["supported"]
    if not isinstance(value, bool):
        return f'"supported" is not a boolean (got {value!r})'
    return value


class LlmJudgeChecker:
    """A support checker asking an LLM, under a written rubric, whether the passages support
    each claim (the :class:`~tunegate.generative.SupportChecker` protocol).

    Args:
        client: the OpenAI-compatible endpoint (:class:`tunegate.llm.ChatClient`, e.g.
            ``ChatClient.from_settings(workflow.llm)`` or the local ``tunegate llm serve``).
        rubric: the judge's instructions (system message); :data:`DEFAULT_RUBRIC` by default.
        model: the model name sent with each request; ``None`` sends none (a single-model
            server such as ``tunegate llm serve`` answers with its model).
        max_tokens: the answer's budget (the verdict JSON needs about ten tokens).

    Deterministic as far as the server is: temperature 0, seed 0, JSON-constrained output.
    Judge errors (an unreadable answer) are kept in :meth:`assess`'s verdicts and counted in
    :attr:`errors`; :meth:`check` counts such a claim as not supported.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        rubric: str = DEFAULT_RUBRIC,
        model: str | None = None,
        max_tokens: int = 24,
    ) -> None:
        if not rubric.strip():
            raise InputError("rubric is empty; pass the judge's written instructions")
        if max_tokens < 4:
            raise InputError(f"max_tokens must leave room for the verdict JSON, got {max_tokens}")
        self.client = client
        self.rubric = rubric
        self.model = model
        self.max_tokens = max_tokens
        self.errors = 0
        """Judge errors so far (answers that were not ``{"supported": <boolean>}``)."""

    def request(self, claim: str, passages: Sequence[str]) -> dict[str, Any]:
        """The Chat Completions body judging ``claim`` against ``passages``."""
        shown = "\n".join(f"[{i}] {p.strip()}" for i, p in enumerate(passages, 1))
        body: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": self.rubric},
                {"role": "user", "content": f"PASSAGES:\n{shown}\n\nCLAIM: {claim.strip()}"},
            ],
            "temperature": 0.0,
            "seed": 0,
            "max_tokens": self.max_tokens,
            "response_format": {"type": "json_object", "schema": JUDGE_SCHEMA},
        }
        if self.model is not None:
            body["model"] = self.model
        return body

    def assess(self, claims: Sequence[str], passages: Sequence[str]) -> list[JudgeVerdict]:
        """Each claim's verdict, with the judge's raw answer and any judge error. A claim
        against no passage is not supported (no request is sent)."""
        claims = list(claims)
        if not claims:
            return []
        if not any(p.strip() for p in passages):
            return [JudgeVerdict(c, False) for c in claims]
        results: list[ChatResult] = self.client.complete_many(
            [self.request(c, passages) for c in claims]
        )
        verdicts = []
        for claim, result in zip(claims, results, strict=True):
            decision = parse_verdict(result.content, result.finish_reason)
            if isinstance(decision, str):
                self.errors += 1
                verdicts.append(JudgeVerdict(claim, False, decision, result.content))
            else:
                verdicts.append(JudgeVerdict(claim, decision, None, result.content))
        return verdicts

    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        """One boolean per claim: True when the judge says the passages support it (a judge
        error counts as not supported)."""
        return [v.supported for v in self.assess(claims, passages)]


# -- agreement with a human-labelled sample ---------------------------------------------------


@dataclass(frozen=True)
class LabelledPair:
    """One human-labelled claim/passage pair: does ``passage`` support ``claim``?"""

    claim: str
    passage: str
    supported: bool
    id: str = ""


def read_labelled_pairs(path: str | Path) -> list[LabelledPair]:
    """Read a JSONL file of ``{"claim", "passage", "supported"[, "id"]}`` rows (such as
    ``tests/data/support_sample.jsonl``); a bad row raises :class:`InputError` naming the
    file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the labelled sample {path}: {exc}") from exc
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        pairs.append(_pair(row, f"{path}:{n}"))
    if not pairs:
        raise InputError(f"{path} holds no labelled pair")
    return pairs


def _pair(row: object, where: str) -> LabelledPair:
    if isinstance(row, LabelledPair):
        return row
    if not isinstance(row, Mapping):
        raise InputError(f"{where}: a labelled pair is an object with claim, passage, supported")
    missing = [k for k in ("claim", "passage", "supported") if k not in row]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)} (each pair needs all three)")
    claim, passage, supported = row["claim"], row["passage"], row["supported"]
    if not isinstance(claim, str) or not isinstance(passage, str):
        raise InputError(f"{where}: claim and passage must be strings")
    if not isinstance(supported, bool):
        raise InputError(f"{where}: supported must be true or false, got {supported!r}")
    return LabelledPair(claim, passage, supported, str(row.get("id", "")))


@dataclass(frozen=True)
class Agreement:
    """A support checker's agreement with human labels on the same pairs.

    Positive is "supported". ``true_positive``: both say supported; ``false_positive``: the
    checker says supported, the human not (a hallucination let through);
    ``false_negative``: the checker rejects a supported claim; ``true_negative``: both
    reject. ``errors`` pairs the checker could not judge (LLM judge errors, counted as "not
    supported" in every other figure); ``disagreements`` the ids (or 0-based row numbers) of
    the pairs where checker and human differ."""

    kappa: float
    """Cohen's kappa (:func:`tunegate.metrics.cohen_kappa_score`); ``nan`` when both give
    one and the same label to every pair."""
    accuracy: float
    n: int
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    errors: int = 0
    disagreements: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-able mapping (``kappa`` ``None`` when undefined)."""
        return {
            "kappa": None if math.isnan(self.kappa) else self.kappa,
            "accuracy": self.accuracy,
            "n": self.n,
            "true_positive": self.true_positive,
            "false_positive": self.false_positive,
            "false_negative": self.false_negative,
            "true_negative": self.true_negative,
            "errors": self.errors,
            "disagreements": list(self.disagreements),
        }


def judge_agreement(
    checker: SupportChecker, labelled: Iterable[LabelledPair | Mapping[str, Any]]
) -> Agreement:
    """Run ``checker`` on each labelled pair (the claim against its one passage) and measure
    its agreement with the human labels: Cohen's kappa, accuracy, the confusion counts and
    the judge errors (:class:`Agreement`). The same function reports the deterministic
    default and the LLM judge, so their figures compare."""
    from tunegate.metrics import cohen_kappa_score

    pairs = [_pair(row, f"labelled pair {i}") for i, row in enumerate(labelled)]
    if not pairs:
        raise InputError("the labelled sample is empty; pass at least one labelled pair")
    human: list[bool] = []
    got: list[bool] = []
    errors = 0
    disagreements = []
    for i, pair in enumerate(pairs):
        if isinstance(checker, LlmJudgeChecker):
            verdict = checker.assess([pair.claim], [pair.passage])
            decision, error = verdict[0].supported, verdict[0].error
        else:
            decisions = checker.check([pair.claim], [pair.passage])
            if len(decisions) != 1:
                raise InputError(
                    f"the support checker returned {len(decisions)} decisions for 1 claim"
                )
            decision, error = bool(decisions[0]), None
        errors += error is not None
        human.append(pair.supported)
        got.append(decision)
        if decision != pair.supported:
            disagreements.append(pair.id or str(i))
    tp = sum(h and g for h, g in zip(human, got, strict=True))
    fp = sum(g and not h for h, g in zip(human, got, strict=True))
    fn = sum(h and not g for h, g in zip(human, got, strict=True))
    tn = len(pairs) - tp - fp - fn
    return Agreement(
        kappa=float(cohen_kappa_score(human, got)),
        accuracy=(tp + tn) / len(pairs),
        n=len(pairs),
        true_positive=tp,
        false_positive=fp,
        false_negative=fn,
        true_negative=tn,
        errors=errors,
        disagreements=tuple(disagreements),
    )
