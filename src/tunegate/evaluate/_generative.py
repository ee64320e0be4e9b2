"""Run a generator over a generative suite, and compare two runs under the generative verdict
rules (docs/generative.md#verdict-rules).

:func:`run_generative_eval` generates, scores (:func:`tunegate.generative.score_outputs`),
computes :func:`generative_metrics` and stores the :class:`~tunegate.records.GenerativeRun`.
:func:`compare_generative` aligns two runs on one suite and applies one rule after another,
each a :class:`~tunegate.records.RuleResult` with the paired interval of its figure
(:func:`~tunegate.metrics.paired_ratio_bootstrap`; latency:
:func:`~tunegate.metrics.paired_median_ratio`), judged exactly like the classify verdict
(:func:`~tunegate.evaluate.harm_rule`): with ``d`` the harm (a rise of the hallucination rate,
a drop of an accuracy), ``[lo, hi]`` its interval and ``tol`` the rule's tolerance, **fail**
when ``d > tol`` and ``lo > 0``, **pass** when ``hi <= tol``, else **inconclusive**.

Rules (tolerances from :class:`~tunegate.config.GenerativeRules`):

* ``hallucination``: rise of ``unsupported_claim_rate`` (answer examples), ``+2`` points;
* ``tool_call_accuracy``: drop of ``tool_call_accuracy_score`` (tool examples), ``3`` points;
* ``abstention_recall`` / ``abstention_precision``: drop below the baseline (tolerance 0);
  precision passes as "not applicable" when neither run ever abstains;
* ``latency``: relative rise of the median of the paired per-example latency ratios, +15%;
* ``core_correctness``: drop of correctness on the core slice, 2 points;
* ``preservation``: drop of correctness on the preservation slice, 2 points, whatever core
  gained (inconclusive when the suite has no preservation slice).

A rule about a kind the suite does not hold (``tool_call_accuracy`` on a suite without tool
examples) gives no finding; one whose figure is undefined on both runs (no claims at all) is
inconclusive ("not measurable").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.config import GenerativeRules, Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.evaluate._verdict_rules import (
    _harm_outcome,
    confidence_label,
    harm_rule,
    verdict_outcome,
)
from tunegate.metrics import (
    Interval,
    RatioTerms,
    citation_counts,
    metric_terms,
    paired_median_ratio,
    paired_ratio_bootstrap,
)
from tunegate.records import (
    ExampleScore,
    GenerativeRun,
    GenerativeSuite,
    RuleResult,
    SuiteSlice,
    Verdict,
    VerdictOutcome,
)

if TYPE_CHECKING:
    from tunegate.generative import Generator, SupportChecker
    from tunegate.store import Store

__all__ = [
    "compare_generative",
    "generative_metrics",
    "generative_terms",
    "load_generative_run",
    "run_generative_eval",
]

_ANSWER_METRICS = (
    "unsupported_claim_rate",
    "stale_claim_rate",
    "citation_score",
    "citation_precision_score",
    "citation_recall_score",
    "abstention_precision_score",
    "abstention_recall_score",
    "answer_correctness_score",
)
_TOOL_METRICS = (
    "tool_selection_accuracy_score",
    "tool_call_accuracy_score",
    "argument_validity_score",
)


def _masked(terms: RatioTerms, mask: np.ndarray, name: str | None = None) -> RatioTerms:
    """``terms`` with the rows outside ``mask`` contributing nothing (kept for alignment)."""
    m = mask.astype(np.float64)
    return RatioTerms(name or terms.metric, terms.numerator * m, terms.denominator * m)


def generative_terms(scores: Sequence[ExampleScore]) -> dict[str, RatioTerms]:
    """The per-example :class:`~tunegate.metrics.RatioTerms` of every generative metric over
    ``scores``, aligned with them (rows of the other kind contribute 0 / 0): the answer
    metrics over answer examples, the tool metrics over tool examples, and over all examples
    ``correctness_score`` (the correct share), ``format_validity_score`` and
    ``retrieved_gold_score`` (examples with gold documents whose retrieval returned one)."""
    if not scores:
        raise InputError("no scores: a metric needs at least one example")
    is_answer = np.array([s.kind == "answer" for s in scores], dtype=bool)
    is_tool = ~is_answer
    out: dict[str, RatioTerms] = {}
    n_claims = [s.n_claims for s in scores]
    counts = citation_counts([s.cited for s in scores], [s.gold for s in scores])
    answerable = [s.answerable for s in scores]
    abstained = [s.abstained for s in scores]
    answer_args: dict[str, tuple[Any, ...]] = {
        "unsupported_claim_rate": (n_claims, [s.n_unsupported for s in scores]),
        "stale_claim_rate": (n_claims, [s.n_stale for s in scores]),
        "citation_score": (counts.n_cited, abstained),
        "citation_precision_score": (counts.n_cited, counts.n_correct),
        "citation_recall_score": (counts.n_gold, counts.n_correct),
        "abstention_precision_score": (answerable, abstained),
        "abstention_recall_score": (answerable, abstained),
        "answer_correctness_score": ([s.correct for s in scores],),
    }
    for name in _ANSWER_METRICS:
        out[name] = _masked(metric_terms(name, *answer_args[name]), is_answer)
    expected = [s.expected_tool for s in scores]
    called = [s.called_tool for s in scores]
    tool_args: dict[str, tuple[Any, ...]] = {
        "tool_selection_accuracy_score": (expected, called),
        "tool_call_accuracy_score": (expected, called, [s.arguments_match for s in scores]),
        "argument_validity_score": (called, [s.arguments_valid for s in scores]),
    }
    for name in _TOOL_METRICS:
        out[name] = _masked(metric_terms(name, *tool_args[name]), is_tool)
    everyone = np.ones(len(scores), dtype=bool)
    out["correctness_score"] = _masked(
        metric_terms("answer_correctness_score", [s.correct for s in scores]),
        everyone,
        "correctness_score",
    )
    out["format_validity_score"] = metric_terms(
        "format_validity_score", [s.format_valid for s in scores]
    )
    has_gold = np.array([s.retrieved_gold is not None for s in scores], dtype=bool)
    out["retrieved_gold_score"] = RatioTerms(
        "retrieved_gold_score",
        np.array([bool(s.retrieved_gold) for s in scores], dtype=np.float64),
        has_gold.astype(np.float64),
    )
    return out


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _figures(scores: Sequence[ExampleScore]) -> dict[str, Any]:
    values: dict[str, Any] = {k: _value(t.value()) for k, t in generative_terms(scores).items()}
    latency = np.array([s.latency_ms for s in scores], dtype=np.float64)
    tokens = np.array([s.prompt_tokens + s.completion_tokens for s in scores], dtype=np.float64)
    values["latency_p50_ms"] = float(np.median(latency))
    values["tokens_mean"] = float(tokens.mean())
    values["n"] = len(scores)
    return values


def generative_metrics(scores: Sequence[ExampleScore]) -> dict[str, Any]:
    """``{"overall": {metric: value}, "slices": {name: {metric: value}}}`` over ``scores``:
    every metric of :func:`generative_terms` (``None`` where undefined: a zero denominator),
    ``latency_p50_ms``, ``tokens_mean`` and ``n``. Slices: each suite slice present
    (``core``, ``edge``, ``preservation``) and each tag as ``tag:<name>``."""
    if not scores:
        raise InputError("no scores: a metric needs at least one example")
    groups: dict[str, list[ExampleScore]] = {}
    for s in scores:
        groups.setdefault(SuiteSlice(s.slice).value, []).append(s)
        for tag in s.tags:
            groups.setdefault(f"tag:{tag}", []).append(s)
    return {
        "overall": _figures(scores),
        "slices": {name: _figures(group) for name, group in sorted(groups.items())},
    }


def run_generative_eval(
    store: Store,
    workflow: Workflow,
    suite: GenerativeSuite,
    generator: Generator,
    *,
    checker: SupportChecker | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerativeRun:
    """Run ``generator`` over every example of ``suite``, score the outputs
    (:func:`~tunegate.generative.score_outputs` with ``checker``), compute
    :func:`generative_metrics`, and store the run (a ``generative_run`` document keyed by
    its id). A progress bar (or plain lines off a terminal) follows the examples;
``progress(done, total)`` is also called after each example."""
    from tunegate.documents import GenerativeRunDocument
    from tunegate.generative import score_outputs

    workflow.require_kind("a generative evaluation", "answer", "tool_call")
    if suite.kind != workflow.kind:
        raise InputError(
            f"suite {suite.name!r} is a {suite.kind} suite but the workflow's kind is "
            f"{workflow.kind}; freeze a suite of {workflow.kind} examples"
        )
    if not suite.examples:
        raise InputError(f"suite {suite.name!r} has no examples")
    from tunegate._progress import make_progress

    outputs = []
    total = len(suite.examples)
    with make_progress() as bar:
        task = bar.add_task(f"{generator.version_id} on {suite.name}", total=total, status="")
        for i, example in enumerate(suite.examples, start=1):
            outputs.append(generator.generate(example))
            bar.update(task, completed=i)
            if progress is not None:
                progress(i, total)
        bar.update(task, status="scoring")
        scores = score_outputs(workflow, suite, outputs, checker=checker)
    run = GenerativeRun(
        model_version=generator.version_id,
        suite_name=suite.name,
        suite_hash=suite.hash or suite.compute_hash(),
        kind=suite.kind,
        outputs=outputs,
        scores=scores,
        metrics=generative_metrics(scores),
    )
    store.documents(GenerativeRunDocument).put(run.id, GenerativeRunDocument(run=run))
    return run


def load_generative_run(store: Store, run_id: str) -> GenerativeRun:
    """A stored generative run; :class:`~tunegate.errors.NotFoundError` when absent."""
    from tunegate.documents import GenerativeRunDocument

    doc = store.documents(GenerativeRunDocument).get(run_id)
    if doc is None:
        raise NotFoundError(f"no generative run {run_id!r}; run a generative evaluation first")
    return doc.run


# -- the verdict ---------------------------------------------------------------------------


def _aligned(baseline: GenerativeRun, candidate: GenerativeRun) -> list[ExampleScore]:
    """The candidate's scores in the baseline's example order (both runs on one suite)."""
    if baseline.suite_hash != candidate.suite_hash:
        raise InputError(
            f"run {candidate.id} was made on suite {candidate.suite_hash[:12]}, run "
            f"{baseline.id} on {baseline.suite_hash[:12]}; compare runs on one suite"
        )
    pos = {s.example_id: s for s in candidate.scores}
    ids = [s.example_id for s in baseline.scores]
    if len(pos) != len(ids) or set(pos) != set(ids):
        raise InputError(
            f"runs {baseline.id} and {candidate.id} cover different examples; re-run both on "
            f"the same suite"
        )
    return [pos[i] for i in ids]


def _harm(
    rule: str,
    a: RatioTerms,
    b: RatioTerms,
    tolerance: float,
    *,
    what: str,
    direction: str,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> RuleResult:
    boot = paired_ratio_bootstrap(a, b, n_resamples=n_resamples, confidence=confidence, seed=seed)
    assert boot.diff is not None and boot.b is not None
    d = boot.diff
    harm = d if direction == "rise" else Interval(-d.estimate, -d.high, -d.low)
    return harm_rule(
        rule,
        harm,
        tolerance,
        baseline=boot.a.estimate,
        candidate=boot.b.estimate,
        what=what,
        direction=direction,
        confidence=confidence,
    )


def _latency_rule(
    base: Sequence[ExampleScore],
    cand: Sequence[ExampleScore],
    limit: float,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> RuleResult | None:
    a = np.array([s.latency_ms for s in base], dtype=np.float64)
    b = np.array([s.latency_ms for s in cand], dtype=np.float64)
    if not (a > 0).any() or not (b > 0).any():
        return None  # nothing timed (e.g. outputs read from a log): no finding, as classify
    ratio = paired_median_ratio(a, b, n_resamples=n_resamples, confidence=confidence, seed=seed)
    rise = Interval(ratio.estimate - 1.0, ratio.low - 1.0, ratio.high - 1.0)
    outcome, reason = _harm_outcome(rise.estimate, rise.low, rise.high, limit)
    if math.isnan(rise.estimate):
        message = f"latency: {reason} (no example with a positive baseline latency)"
    else:
        message = (
            f"median latency {np.median(a):.1f} -> {np.median(b):.1f} ms; median of the paired "
            f"ratios {rise.estimate:+.1%} ({confidence_label(confidence)} CI {rise.low:+.1%} "
            f"to {rise.high:+.1%}); a rise of at most {limit:.0%} is tolerated: {reason}"
        )
    return RuleResult(
        rule="latency",
        outcome=outcome,
        baseline=float(np.median(a)),
        candidate=float(np.median(b)),
        difference=_value(rise.estimate),
        ci_low=_value(rise.low),
        ci_high=_value(rise.high),
        threshold=limit,
        message=message,
    )


def compare_generative(
    baseline_run: GenerativeRun,
    candidate_run: GenerativeRun,
    *,
    rules: GenerativeRules | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Apply the generative verdict rules (module docstring) to two runs on one suite ->
    :class:`~tunegate.records.Verdict`: fail if any rule fails, else inconclusive if any is,
    else pass (exit codes 0 / 1 / 2). ``rules`` defaults to
    :class:`~tunegate.config.GenerativeRules` (``workflow.generative_rules``)."""
    r = rules or GenerativeRules()
    base = list(baseline_run.scores)
    cand = _aligned(baseline_run, candidate_run)
    for x, y in zip(base, cand, strict=True):
        if (x.kind, x.answerable, x.expected_tool, sorted(x.gold)) != (
            y.kind,
            y.answerable,
            y.expected_tool,
            sorted(y.gold),
        ):
            raise InputError(
                f"the two runs disagree on the targets of example {x.example_id!r}; were they "
                f"scored against the same suite?"
            )
    ta, tb = generative_terms(base), generative_terms(cand)
    opts: dict[str, Any] = {"confidence": r.confidence, "n_resamples": n_resamples, "seed": seed}
    has_answer = any(s.kind == "answer" for s in base)
    has_tool = any(s.kind == "tool_call" for s in base)
    found: list[RuleResult] = []
    if has_answer:
        found.append(
            _harm(
                "hallucination",
                ta["unsupported_claim_rate"],
                tb["unsupported_claim_rate"],
                r.max_hallucination_increase,
                what="unsupported-claim (hallucination) rate",
                direction="rise",
                **opts,
            )
        )
    if has_tool:
        found.append(
            _harm(
                "tool_call_accuracy",
                ta["tool_call_accuracy_score"],
                tb["tool_call_accuracy_score"],
                r.max_tool_call_accuracy_drop,
                what="tool-call accuracy",
                direction="drop",
                **opts,
            )
        )
    if has_answer:
        found.append(
            _harm(
                "abstention_recall",
                ta["abstention_recall_score"],
                tb["abstention_recall_score"],
                r.abstention_tolerance,
                what="abstention recall",
                direction="drop",
                **opts,
            )
        )
        pa, pb = ta["abstention_precision_score"], tb["abstention_precision_score"]
        if math.isnan(pa.value()) and math.isnan(pb.value()):
            found.append(
                RuleResult(
                    rule="abstention_precision",
                    outcome=VerdictOutcome.PASS,
                    threshold=r.abstention_tolerance,
                    message="abstention precision: not applicable, neither run abstained "
                    "(abstention_recall judges the missed abstentions)",
                )
            )
        else:
            found.append(
                _harm(
                    "abstention_precision",
                    pa,
                    pb,
                    r.abstention_tolerance,
                    what="abstention precision",
                    direction="drop",
                    **opts,
                )
            )
    latency = _latency_rule(base, cand, r.max_latency_increase, **opts)
    if latency is not None:
        found.append(latency)
    core = np.array([SuiteSlice(s.slice) is SuiteSlice.CORE for s in base], dtype=bool)
    if core.any():
        found.append(
            _harm(
                "core_correctness",
                _masked(ta["correctness_score"], core),
                _masked(tb["correctness_score"], core),
                r.core_tolerance,
                what="core correctness",
                direction="drop",
                **opts,
            )
        )
    kept = np.array([SuiteSlice(s.slice) is SuiteSlice.PRESERVATION for s in base], dtype=bool)
    if kept.any():
        found.append(
            _harm(
                "preservation",
                _masked(ta["correctness_score"], kept),
                _masked(tb["correctness_score"], kept),
                r.preservation_tolerance,
                what="preservation correctness",
                direction="drop",
                **opts,
            )
        )
    else:
        found.append(
            RuleResult(
                rule="preservation",
                outcome=VerdictOutcome.INCONCLUSIVE,
                threshold=r.preservation_tolerance,
                message="the suite has no preservation slice; add the packaged preservation "
                "examples (tool use, citation, summarisation, abstention, reasoning)",
            )
        )
    return Verdict(
        outcome=verdict_outcome(found),
        baseline_run=baseline_run.id,
        candidate_run=candidate_run.id,
        rules=found,
    )
