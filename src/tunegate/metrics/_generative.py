"""Metrics of generative workflows (grounded answers, tool calls) over per-example arrays.

Every metric here is a **ratio of per-example sums**: ``sum(numerator) / sum(denominator)``
over the examples, where each example contributes a numerator and a denominator term (the
claims it makes and the unsupported ones; 1 and whether it is correct; ...). Its ``*_terms``
twin (reached through the registry, ``metric_registry()[name].terms``, or
:func:`metric_terms`) returns those terms as :class:`RatioTerms`, and
:func:`paired_ratio_bootstrap` gives both models' bias-corrected intervals and the paired
difference ``B - A`` by resampling examples (the one chunked resampler of ``_bootstrap``).

How a claim is judged supported, an answer correct, or arguments equal is not a metric: the
inputs are per-example counts and flags produced by a checker (``tunegate.generative``).

Edge cases, one rule for all: no example at all (an empty array) raises
:class:`~tunegate.errors.InputError`; a zero denominator (no claims, no citations, no
unanswerable question, no abstention, no tool call) gives ``nan`` — the metric is undefined
on that data, never a silent 0 or 1. Misaligned lengths, negative counts, a part larger than
its whole (more unsupported claims than claims) raise :class:`~tunegate.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError
from tunegate.metrics._bootstrap import Interval, _resampled, bias_corrected_interval
from tunegate.metrics._registry import metric_registry, register_metric
from tunegate.metrics._validation import check_counts, check_flags, check_tool_names

__all__ = [
    "CitationCounts",
    "RatioBootstrap",
    "RatioTerms",
    "abstention_precision_score",
    "abstention_recall_score",
    "answer_correctness_score",
    "argument_validity_score",
    "citation_counts",
    "citation_precision_score",
    "citation_recall_score",
    "citation_score",
    "escalation_rate",
    "format_validity_score",
    "metric_terms",
    "paired_ratio_bootstrap",
    "stale_claim_rate",
    "tool_call_accuracy_score",
    "tool_selection_accuracy_score",
    "unsupported_claim_rate",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RatioTerms:
    """A metric's per-example terms: its value is ``sum(numerator) / sum(denominator)``
    (``nan`` when the denominator sums to 0). Both arrays have shape (n,), one entry per
    example, aligned with the examples of the other model in a paired comparison."""

    metric: str
    numerator: FloatArray
    denominator: FloatArray

    def value(self) -> float:
        """The metric on these examples (``nan`` when its denominator is 0)."""
        den = float(self.denominator.sum())
        return float(self.numerator.sum()) / den if den > 0 else float("nan")

    @property
    def n(self) -> int:
        """The number of examples."""
        return int(self.numerator.size)


def _terms(metric: str, numerator: Any, denominator: Any) -> RatioTerms:
    return RatioTerms(
        metric,
        np.asarray(numerator, dtype=np.float64),
        np.asarray(denominator, dtype=np.float64),
    )


def _part_of(part: Any, whole: Any, part_name: str, whole_name: str) -> tuple[Any, Any]:
    w = check_counts(whole, whole_name)
    p = check_counts(part, part_name, w.size)
    over = np.flatnonzero(p > w)
    if over.size:
        i = int(over[0])
        raise InputError(
            f"{part_name}[{i}] = {int(p[i])} exceeds {whole_name}[{i}] = {int(w[i])}; "
            f"a part cannot exceed its whole ({over.size} example(s) do)"
        )
    return p, w


def _mask(mask: Any, n: int) -> Any:
    return np.ones(n, dtype=np.bool_) if mask is None else check_flags(mask, "mask", n)


# -- grounded answers ---------------------------------------------------------------------


def _unsupported_claim_terms(n_claims: Any, n_unsupported: Any) -> RatioTerms:
    p, w = _part_of(n_unsupported, n_claims, "n_unsupported", "n_claims")
    return _terms("unsupported_claim_rate", p, w)


@register_metric(input="per_example", greater_is_better=False, terms=_unsupported_claim_terms)
def unsupported_claim_rate(n_claims: Any, n_unsupported: Any) -> float:
    """The unsupported-assertion (hallucination) rate: claims not supported by the passages
    their answer cites, over all claims, pooled over answers.

    Args:
        n_claims: (n,) claims per answer (an abstention makes 0).
        n_unsupported: (n,) of those, the unsupported ones (``<= n_claims``).

    Pooled, not averaged per answer: an answer with 10 claims weighs 10 times one with 1.
    ``nan`` when no answer makes a claim.
    """
    return _unsupported_claim_terms(n_claims, n_unsupported).value()


def _stale_claim_terms(n_claims: Any, n_stale: Any) -> RatioTerms:
    p, w = _part_of(n_stale, n_claims, "n_stale", "n_claims")
    return _terms("stale_claim_rate", p, w)


@register_metric(input="per_example", greater_is_better=False, terms=_stale_claim_terms)
def stale_claim_rate(n_claims: Any, n_stale: Any) -> float:
    """The stale-fact rate: claims supported only by a superseded version of a document (not
    by any current version), over all claims, pooled over answers.

    Args:
        n_claims: (n,) claims per answer.
        n_stale: (n,) of those, the stale ones (``<= n_claims``).

    ``nan`` when no answer makes a claim.
    """
    return _stale_claim_terms(n_claims, n_stale).value()


def _citation_terms(n_citations: Any, abstained: Any = None) -> RatioTerms:
    c = check_counts(n_citations, "n_citations")
    answered = (
        np.ones(c.size, dtype=np.bool_)
        if abstained is None
        else ~check_flags(abstained, "abstained", c.size)
    )
    return _terms("citation_score", (c > 0) & answered, answered)


@register_metric(input="per_example", greater_is_better=True, terms=_citation_terms)
def citation_score(n_citations: Any, abstained: Any = None) -> float:
    """The citation rate: the share of answers that cite at least one source.

    Args:
        n_citations: (n,) sources cited per answer.
        abstained: optional (n,) booleans, True where the model abstained; abstentions are
            left out (an abstention has nothing to cite).

    ``nan`` when every example is an abstention.
    """
    return _citation_terms(n_citations, abstained).value()


@dataclass(frozen=True)
class CitationCounts:
    """Per-answer citation counts, shape (n,) each: distinct cited ids, distinct gold ids,
    and distinct cited ids that are gold."""

    n_cited: npt.NDArray[np.intp]
    n_gold: npt.NDArray[np.intp]
    n_correct: npt.NDArray[np.intp]


def citation_counts(
    cited_ids: Sequence[Collection[str]], gold_ids: Sequence[Collection[str]]
) -> CitationCounts:
    """Count, per answer, the distinct document ids it cites, the gold ids, and their overlap
    (ids compare as exact strings; a repeated citation counts once)."""
    if len(cited_ids) != len(gold_ids):
        raise InputError(
            f"cited_ids has {len(cited_ids)} answers but gold_ids has {len(gold_ids)}; "
            f"they must be aligned one-to-one"
        )
    if not cited_ids:
        raise InputError("cited_ids is empty; a metric needs at least one example")
    for name, rows in (("cited_ids", cited_ids), ("gold_ids", gold_ids)):
        for i, row in enumerate(rows):
            if isinstance(row, str):
                raise InputError(
                    f"{name}[{i}] is a string ({row!r}); pass a collection of document ids "
                    f"per answer, e.g. [{row!r}]"
                )
    cited = [set(map(str, row)) for row in cited_ids]
    gold = [set(map(str, row)) for row in gold_ids]
    return CitationCounts(
        np.array([len(c) for c in cited], dtype=np.intp),
        np.array([len(g) for g in gold], dtype=np.intp),
        np.array([len(c & g) for c, g in zip(cited, gold, strict=True)], dtype=np.intp),
    )


def _citation_precision_terms(n_cited: Any, n_correct: Any) -> RatioTerms:
    p, w = _part_of(n_correct, n_cited, "n_correct", "n_cited")
    return _terms("citation_precision_score", p, w)


@register_metric(input="per_example", greater_is_better=True, terms=_citation_precision_terms)
def citation_precision_score(n_cited: Any, n_correct: Any) -> float:
    """Citation precision against gold documents: cited ids that are gold, over all cited ids,
    pooled over answers (:func:`citation_counts` gives both arrays).

    A citation on a question with no gold document (unanswerable) counts as wrong. ``nan``
    when no answer cites anything.
    """
    return _citation_precision_terms(n_cited, n_correct).value()


def _citation_recall_terms(n_gold: Any, n_correct: Any) -> RatioTerms:
    p, w = _part_of(n_correct, n_gold, "n_correct", "n_gold")
    return _terms("citation_recall_score", p, w)


@register_metric(input="per_example", greater_is_better=True, terms=_citation_recall_terms)
def citation_recall_score(n_gold: Any, n_correct: Any) -> float:
    """Citation recall against gold documents: gold ids that are cited, over all gold ids,
    pooled over answers. Questions without gold documents add nothing. ``nan`` when no
    question has a gold document."""
    return _citation_recall_terms(n_gold, n_correct).value()


def _abstention_flags(answerable: Any, abstained: Any) -> tuple[Any, Any]:
    a = check_flags(answerable, "answerable")
    return a, check_flags(abstained, "abstained", a.size)


def _abstention_precision_terms(answerable: Any, abstained: Any) -> RatioTerms:
    a, s = _abstention_flags(answerable, abstained)
    return _terms("abstention_precision_score", s & ~a, s)


@register_metric(input="per_example", greater_is_better=True, terms=_abstention_precision_terms)
def abstention_precision_score(answerable: Any, abstained: Any) -> float:
    """Abstention precision: of the questions the model abstained on, the share that were
    unanswerable (an abstention on an answerable question is a wrong refusal).

    Args:
        answerable: (n,) booleans, True where the knowledge base answers the question.
        abstained: (n,) booleans, True where the model abstained explicitly.

    ``nan`` when the model never abstains.
    """
    return _abstention_precision_terms(answerable, abstained).value()


def _abstention_recall_terms(answerable: Any, abstained: Any) -> RatioTerms:
    a, s = _abstention_flags(answerable, abstained)
    return _terms("abstention_recall_score", s & ~a, ~a)


@register_metric(input="per_example", greater_is_better=True, terms=_abstention_recall_terms)
def abstention_recall_score(answerable: Any, abstained: Any) -> float:
    """Abstention recall: of the unanswerable questions, the share the model abstained on
    (the rest it answered anyway, persuasively or not). ``nan`` when every question is
    answerable."""
    return _abstention_recall_terms(answerable, abstained).value()


def _answer_correctness_terms(correct: Any, mask: Any = None) -> RatioTerms:
    c = check_flags(correct, "correct")
    m = _mask(mask, c.size)
    return _terms("answer_correctness_score", c & m, m)


@register_metric(input="per_example", greater_is_better=True, terms=_answer_correctness_terms)
def answer_correctness_score(correct: Any, mask: Any = None) -> float:
    """Answer correctness: the share of answers judged correct against the reference.

    Args:
        correct: (n,) booleans from the correctness judge (how it judges is its business).
        mask: optional (n,) booleans restricting the examples (e.g. answerable questions).

    ``nan`` when ``mask`` selects no example.
    """
    return _answer_correctness_terms(correct, mask).value()


# -- tool calls -----------------------------------------------------------------------------


def _tool_selection_terms(expected_tool: Any, called_tool: Any) -> RatioTerms:
    e = check_tool_names(expected_tool, "expected_tool")
    c = check_tool_names(called_tool, "called_tool", len(e))
    right = np.array([x == y for x, y in zip(e, c, strict=True)], dtype=np.bool_)
    return _terms("tool_selection_accuracy_score", right, np.ones(len(e)))


@register_metric(input="per_example", greater_is_better=True, terms=_tool_selection_terms)
def tool_selection_accuracy_score(expected_tool: Any, called_tool: Any) -> float:
    """Tool-selection accuracy: the share of requests mapped to the expected tool, where
    ``None`` is "no tool" (so calling a tool when none was expected is wrong, and so is
    calling none when one was). Arguments are not looked at.

    Args:
        expected_tool, called_tool: (n,) tool names, or ``None`` for "no tool".
    """
    return _tool_selection_terms(expected_tool, called_tool).value()


def _tool_call_terms(expected_tool: Any, called_tool: Any, arguments_match: Any) -> RatioTerms:
    e = check_tool_names(expected_tool, "expected_tool")
    c = check_tool_names(called_tool, "called_tool", len(e))
    match = check_flags(arguments_match, "arguments_match", len(e))
    right = np.array(
        [x == y and (x is None or bool(m)) for x, y, m in zip(e, c, match, strict=True)],
        dtype=np.bool_,
    )
    return _terms("tool_call_accuracy_score", right, np.ones(len(e)))


@register_metric(input="per_example", greater_is_better=True, terms=_tool_call_terms)
def tool_call_accuracy_score(expected_tool: Any, called_tool: Any, arguments_match: Any) -> float:
    """Tool-call accuracy: the share of requests with the right tool **and** arguments equal
    to the expected ones after JSON-Schema normalisation.

    Args:
        expected_tool, called_tool: (n,) tool names, or ``None`` for "no tool".
        arguments_match: (n,) booleans, True where the called arguments equal the expected
            ones after normalisation (``tunegate.generative.arguments_equal``); ignored where
            "no tool" was expected (no tool called is then right).
    """
    return _tool_call_terms(expected_tool, called_tool, arguments_match).value()


def _argument_validity_terms(called_tool: Any, arguments_valid: Any) -> RatioTerms:
    c = check_tool_names(called_tool, "called_tool")
    v = check_flags(arguments_valid, "arguments_valid", len(c))
    called = np.array([x is not None for x in c], dtype=np.bool_)
    return _terms("argument_validity_score", v & called, called)


@register_metric(input="per_example", greater_is_better=True, terms=_argument_validity_terms)
def argument_validity_score(called_tool: Any, arguments_valid: Any) -> float:
    """Argument validity: of the tool calls made, the share whose arguments are valid against
    the called tool's JSON Schema (a call to an undeclared tool should come in as invalid).

    Args:
        called_tool: (n,) tool names, or ``None`` where no tool was called (left out).
        arguments_valid: (n,) booleans (``tunegate.generative.arguments_valid``).

    ``nan`` when no tool is called.
    """
    return _argument_validity_terms(called_tool, arguments_valid).value()


def _format_validity_terms(valid: Any) -> RatioTerms:
    v = check_flags(valid, "valid")
    return _terms("format_validity_score", v, np.ones(v.size))


@register_metric(input="per_example", greater_is_better=True, terms=_format_validity_terms)
def format_validity_score(valid: Any) -> float:
    """Format validity: the share of outputs that parse and are valid against the declared
    JSON Schema (``tunegate.generative.format_valid`` gives the flags)."""
    return _format_validity_terms(valid).value()


# -- production -----------------------------------------------------------------------------


def _escalation_terms(escalated: Any) -> RatioTerms:
    e = check_flags(escalated, "escalated")
    return _terms("escalation_rate", e, np.ones(e.size))


@register_metric(input="per_example", greater_is_better=False, terms=_escalation_terms)
def escalation_rate(escalated: Any) -> float:
    """The escalation rate: the share of outputs a human took over (production monitoring of
    generative workflows; a rise week after week is a rollback trigger).

    Args:
        escalated: (n,) booleans, True where a human took over.
    """
    return _escalation_terms(escalated).value()


# -- intervals ------------------------------------------------------------------------------


def metric_terms(name: str, *args: Any, **kwargs: Any) -> RatioTerms:
    """The per-example :class:`RatioTerms` of the registered ``per_example`` metric ``name``
    on these arguments (the same arguments as the metric itself)."""
    spec = metric_registry().get(name)
    if spec is None or spec.terms is None:
        known = sorted(n for n, s in metric_registry().items() if s.terms is not None)
        raise InputError(f"{name!r} is not a per-example ratio metric; known: {known}")
    terms: Callable[..., RatioTerms] = spec.terms
    return terms(*args, **kwargs)


@dataclass(frozen=True)
class RatioBootstrap:
    """Bias-corrected intervals of a ratio metric for model A, model B and ``B - A`` (paired:
    the same resampled examples), from :func:`paired_ratio_bootstrap`."""

    metric: str
    n_resamples: int
    confidence: float
    seed: int
    a: Interval
    b: Interval | None = None
    diff: Interval | None = None


def _ratio_of_sums(num: FloatArray, den: FloatArray) -> FloatArray:
    total = den.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, num.sum(axis=-1) / total, np.nan)


def paired_ratio_bootstrap(
    terms_a: RatioTerms,
    terms_b: RatioTerms | None = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RatioBootstrap:
    """Bootstrap a ratio metric of model A (and B, and ``B - A``) on the same resampled
    examples, with bias-corrected percentile intervals that contain their estimates (see
    :func:`~tunegate.metrics.bias_corrected_interval`).

    A resample whose denominator is 0 (every drawn example abstained, say) gives ``nan`` and
    is ignored; with no finite resample the bounds are ``nan``. Both terms must come from the
    same metric on the same examples (same n, same order).
    """
    if terms_b is not None:
        if terms_b.metric != terms_a.metric:
            raise InputError(
                f"terms_a is {terms_a.metric!r} but terms_b is {terms_b.metric!r}; "
                f"compare one metric at a time"
            )
        if terms_b.n != terms_a.n:
            raise InputError(
                f"terms_a has {terms_a.n} examples but terms_b has {terms_b.n}; both models "
                f"must be scored on the same examples, in the same order"
            )
    if not 0.5 < confidence < 1.0:
        raise InputError(f"confidence must be in (0.5, 1), got {confidence}")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be >= 1, got {n_resamples}")
    rows = [terms_a.numerator, terms_a.denominator]
    if terms_b is not None:
        rows += [terms_b.numerator, terms_b.denominator]
    values = np.stack(rows)

    def stat(m: FloatArray) -> FloatArray:  # (rows, k, n) -> (k, models)
        pairs = range(0, len(rows), 2)
        return np.stack([_ratio_of_sums(m[i], m[i + 1]) for i in pairs], axis=1)

    samples = _resampled(values, stat, n_resamples, seed)  # (n_resamples, models)
    est_a = terms_a.value()
    a = bias_corrected_interval(samples[:, 0], est_a, confidence)
    b = diff = None
    if terms_b is not None:
        est_b = terms_b.value()
        b = bias_corrected_interval(samples[:, 1], est_b, confidence)
        diff = bias_corrected_interval(samples[:, 1] - samples[:, 0], est_b - est_a, confidence)
    return RatioBootstrap(terms_a.metric, n_resamples, confidence, seed, a, b, diff)
