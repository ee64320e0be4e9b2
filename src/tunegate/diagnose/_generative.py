"""Triage and recommendation for generative workflows (``answer`` / ``tool_call``).

:func:`triage_generative` assigns every failed example of a :class:`~tunegate.records.
GenerativeRun` to one category of :class:`~tunegate.diagnose.TriageCategory` **from the
evidence the run recorded** (the example's score, the output, the suite example), never by
hand. Each category is a registered rule (:func:`generative_triage_rule`: a name, a priority,
a duplicate check); the first rule by ascending priority that fires gives the category and
its evidence, so the precedence is the priority order:

==  =====================  ==================================================================
10  formatting_failure     the output does not follow the kind's JSON Schema (``format_valid``
                           is false) or fails an ``is-json`` check
20  tool_use_failure       ``tool_call``: the wrong tool (or a call where none was expected,
                           or none where one was), arguments invalid against the tool's
                           schema, or arguments that differ from the expected ones
30  stale_facts            claims supported only by a superseded version (``n_stale``), or a
                           cited version superseded when the question was asked
40  missing_facts          an answerable question for which retrieval returned no gold
                           document (``retrieved_gold is False``)
50  policy_violation       a declared rule broken (see :func:`declared_rule_broken`)
60  reasoning_failure      a ``reasoning``-tagged example answered wrongly, or a numeric
                           reference and an answer whose numbers differ from it
70  prompt_misunderstanding everything else: answered wrongly with the facts at hand, or
                           abstained on an answerable question
==  =====================  ==================================================================

:func:`recommend_generative` turns the shares into one recommendation with the issue's
thresholds (40% facts, 25% policy / formatting / tool use) and the knowledge base's change
rate. The cheap fixes it names are :data:`~tunegate.diagnose.CHEAP_FIXES`
(:mod:`._generative_fixes`). See docs/diagnosis.md, "Generative workflows".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tunegate._registries import NamedRegistry
from tunegate.config import Workflow
from tunegate.diagnose._generative_fixes import FIXES_FOR_ACTION
from tunegate.diagnose._triage import TriageCategory
from tunegate.errors import InputError
from tunegate.records import (
    ExampleScore,
    GenerativeOutput,
    GenerativeRun,
    GenerativeSuite,
    GenerativeSuiteExample,
)

__all__ = [
    "CHANGE_RATE_THRESHOLD",
    "GenerativeCase",
    "GenerativeFailure",
    "GenerativeRecommendation",
    "GenerativeTriage",
    "GenerativeTriageRule",
    "declared_rule_broken",
    "generative_triage_rule",
    "generative_triage_rules",
    "is_failure",
    "recommend_generative",
    "triage_generative",
]


def is_failure(score: ExampleScore) -> bool:
    """An example failed when its output is not correct, or makes a claim no cited passage
    supports, or a claim only a superseded version supports."""
    return not score.correct or score.n_unsupported > 0 or score.n_stale > 0


@dataclass(frozen=True)
class GenerativeCase:
    """One failed example with everything a triage rule may read."""

    score: ExampleScore
    output: GenerativeOutput
    example: GenerativeSuiteExample
    workflow: Workflow


RuleFn = Callable[[GenerativeCase], str | None]


@dataclass(frozen=True)
class GenerativeTriageRule:
    """A registered rule: returns evidence text when it fires, else None."""

    name: str
    category: TriageCategory
    priority: int
    fn: RuleFn
    description: str


_RULES: NamedRegistry[GenerativeTriageRule] = NamedRegistry("generative triage rule")


def generative_triage_rule(
    name: str, category: TriageCategory, *, priority: int
) -> Callable[[RuleFn], RuleFn]:
    """Register a generative triage rule. Lower ``priority`` is checked first; names are
    unique."""

    def deco(fn: RuleFn) -> RuleFn:
        if any(r.priority == priority for r in _RULES):
            raise ValueError(f"a generative triage rule with priority {priority} exists")
        _RULES.add(
            name, GenerativeTriageRule(name, category, priority, fn, (fn.__doc__ or "").strip())
        )
        return fn

    return deco


def generative_triage_rules() -> list[GenerativeTriageRule]:
    """The rules in the order they are checked (their precedence)."""
    return sorted(_RULES, key=lambda r: r.priority)


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@generative_triage_rule("schema_invalid", TriageCategory.FORMATTING_FAILURE, priority=10)
def _formatting(case: GenerativeCase) -> str | None:
    """The output does not follow the kind's JSON Schema, or fails an ``is-json`` check."""
    s, out = case.score, case.output
    if not s.format_valid:
        detail = s.evidence or str(out.metadata.get("format_error") or "")
        return "the output does not follow the output schema" + (
            f": {_short(detail)}" if detail else ""
        )
    text = out.answer or ""
    for check in case.example.checks:
        if check.type == "is-json" and not check.negate and not check.passes(text):
            return "the output fails the example's is-json check"
    return None


def _argument_errors(case: GenerativeCase, name: str, arguments: dict[str, Any]) -> list[str]:
    """Schema errors of ``arguments`` for tool ``name``: the example's own tools
    (``metadata["tools"]``, as preservation examples bring them) first, then the workflow's."""
    from tunegate.config import ToolSpec

    specs = case.example.metadata.get("tools")
    for spec in specs if isinstance(specs, list) else []:
        if isinstance(spec, dict) and spec.get("name") == name:
            try:
                return ToolSpec.model_validate(spec).argument_errors(arguments)
            except ValueError:
                return []
    tool = next((t for t in case.workflow.tools if t.name == name), None)
    return tool.argument_errors(arguments) if tool is not None else []


@generative_triage_rule("wrong_tool_call", TriageCategory.TOOL_USE_FAILURE, priority=20)
def _tool_use(case: GenerativeCase) -> str | None:
    """A ``tool_call`` example: the wrong tool, invalid arguments, or different arguments."""
    s, out, ex = case.score, case.output, case.example
    if s.kind != "tool_call":
        return None
    if s.expected_tool != s.called_tool:
        if s.called_tool is None:
            return f"no tool called; expected {s.expected_tool!r}"
        if s.expected_tool is None:
            return f"called {s.called_tool!r} where no tool was needed"
        return f"called {s.called_tool!r}; expected {s.expected_tool!r}"
    if s.called_tool is None:
        return None
    got = out.tool_call.arguments if out.tool_call is not None else {}
    if not s.arguments_valid:
        errors = _argument_errors(case, s.called_tool, got)
        why = f": {'; '.join(errors[:3])}" if errors else ""
        return f"arguments of {s.called_tool!r} do not satisfy its schema{why}"
    if not s.arguments_match:
        want = ex.expected_tool.arguments if ex.expected_tool is not None else {}
        return f"{s.called_tool!r} called with arguments {_short(got)}; expected {_short(want)}"
    return None


def _retrieved(output: GenerativeOutput) -> list[dict[str, Any]]:
    items = output.metadata.get("retrieved")
    return [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []


@generative_triage_rule("superseded_source", TriageCategory.STALE_FACTS, priority=30)
def _stale(case: GenerativeCase) -> str | None:
    """Claims supported only by a superseded version, or a cited version that was superseded
    when the question was asked (the retrieved passage says so, or the gold names another
    version of the same document)."""
    s, out, ex = case.score, case.output, case.example
    when = f" when the question was asked ({ex.asked_at:%Y-%m-%d})" if ex.asked_at else ""
    for ref in out.cited:
        for r in _retrieved(out):
            same = r.get("doc_id") == ref.id and (
                ref.version is None or str(r.get("version")) == ref.version
            )
            if same and r.get("stale"):
                return (
                    f"cited {ref.id} version {r.get('version')}, superseded by version "
                    f"{r.get('current_version')}{when}"
                )
        gold = {g.id: g.version for g in ex.gold_documents if g.version is not None}
        if ref.version is not None and ref.id in gold and gold[ref.id] != ref.version:
            return f"cited {ref.id} version {ref.version}; the version in force is {gold[ref.id]}"
    if s.n_stale > 0:
        return f"{s.n_stale} of {s.n_claims} claims are supported only by a superseded version"
    return None


@generative_triage_rule("gold_not_retrieved", TriageCategory.MISSING_FACTS, priority=40)
def _missing(case: GenerativeCase) -> str | None:
    """An answerable question for which retrieval returned no gold document."""
    s, out = case.score, case.output
    if not s.answerable or s.retrieved_gold is not False:
        return None
    shown = sorted({str(r.get("doc_id")) for r in _retrieved(out)})
    got = f"; retrieved {', '.join(shown[:5])}" if shown else ""
    return f"no gold document ({', '.join(s.gold) or '?'}) among the retrieved passages{got}"


def declared_rule_broken(case: GenerativeCase) -> str | None:
    """The declared rules of a generative workflow, and which one the output broke.

    Declared means written down, not inferred:

    * a negated check of the example (promptfoo ``not-…`` asserts: "must not contain …"),
      which the output passes although it must not;
    * the workflow's abstention rule (``answer.abstention`` / ``abstention_patterns``): an
      unanswerable question must be answered with the abstention, and this one was answered;
    * the grounding rule of an ``answer`` workflow: every claim is supported by a passage the
      answer cites; a claim no cited passage supports breaks it (the hallucination rate).
    """
    s, out, ex, wf = case.score, case.output, case.example, case.workflow
    text = out.answer or ""
    for check in ex.checks:
        if check.negate and not check.passes(text):
            return f"declared check not-{check.type} {_short(check.value)} broken"
    if s.kind == "answer" and not s.answerable and not s.abstained:
        return (
            "answered an unanswerable question instead of the declared abstention "
            f"({wf.answer.abstention!r})"
        )
    if s.kind == "answer" and s.n_unsupported > 0:
        return (
            f"{s.n_unsupported} of {s.n_claims} claims are not supported by the passages the "
            "answer cites (grounding rule)"
        )
    return None


@generative_triage_rule("declared_rule_broken", TriageCategory.POLICY_VIOLATION, priority=50)
def _policy(case: GenerativeCase) -> str | None:
    """A declared rule is broken (:func:`declared_rule_broken`)."""
    return declared_rule_broken(case)


_NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?")
_ONLY_NUMBER = re.compile(r"\s*[-+]?\d+(?:,\d{3})*(?:\.\d+)?\s*\.?\s*")


def _numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text)]


@generative_triage_rule("wrong_reasoning", TriageCategory.REASONING_FAILURE, priority=60)
def _reasoning(case: GenerativeCase) -> str | None:
    """A ``reasoning``-tagged example answered wrongly, or a numeric reference and an answer
    whose numbers all differ from it."""
    s, out, ex = case.score, case.output, case.example
    if s.abstained or s.kind != "answer":
        return None
    text = out.answer or ""
    ref = ex.reference or ""
    got = _numbers(text)
    if _ONLY_NUMBER.fullmatch(ref):
        want = _numbers(ref)[0]
        if got and all(abs(g - want) > 1e-9 * max(1.0, abs(want)) for g in got):
            shown = ", ".join(f"{g:g}" for g in got[:3])
            return f"the reference is {want:g}; the answer says {shown}"
    if "reasoning" in set(s.tags) | set(ex.tags):
        return "a reasoning example answered wrongly" + (
            f" (reference {_short(ref)})" if ref else ""
        )
    return None


@generative_triage_rule("misread_request", TriageCategory.PROMPT_MISUNDERSTANDING, priority=70)
def _misunderstanding(case: GenerativeCase) -> str | None:
    """Everything else: the facts were at hand and the model answered wrongly, or it
    abstained on an answerable question (always fires: the last rule)."""
    s, out, ex = case.score, case.output, case.example
    had = " although a gold document was retrieved" if s.retrieved_gold else ""
    if s.abstained and s.answerable:
        return f"abstained on an answerable question{had}"
    text = out.answer or ""
    for check in ex.checks:
        if not check.negate and not check.passes(text):
            return f"check {check.type} {_short(check.value)} failed{had}"
    if s.kind == "tool_call":
        return "the tool call matches but the output was judged wrong"
    if ex.reference:
        return f"the answer does not match the reference {_short(ex.reference)!r}{had}"
    return f"the answer was judged wrong{had}"


@dataclass(frozen=True)
class GenerativeFailure:
    """One failed example, its category and the evidence that put it there."""

    example_id: str
    category: TriageCategory
    rule: str
    evidence: str
    slice: str
    tags: list[str] = field(default_factory=list)


def _shares(counts: Counter[str], total: int) -> tuple[dict[str, int], dict[str, float]]:
    full = {c.value: counts.get(c.value, 0) for c in TriageCategory}
    return full, {k: (v / total if total else 0.0) for k, v in full.items()}


@dataclass(frozen=True)
class GenerativeTriage:
    """A run's failures by category: the list, counts and shares overall and per slice."""

    run_id: str
    model_version: str
    suite_hash: str
    kind: str
    examples: int
    """Examples in the run."""
    failures: list[GenerativeFailure]
    counts: dict[str, int]
    """Category -> failures (every category present, 0 when none)."""
    shares: dict[str, float]
    """Category -> share of the failures (0 when there are none)."""
    slices: dict[str, dict[str, Any]]
    """Slice -> ``{"examples", "failures", "counts", "shares"}``."""

    @property
    def total(self) -> int:
        """Failed examples."""
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total"] = self.total
        return out

    def annotate(self, run: GenerativeRun) -> GenerativeRun:
        """``run`` with each failed score's ``failure`` and ``evidence`` filled in."""
        if run.id != self.run_id:
            raise InputError(f"this triage is of run {self.run_id}, not {run.id}")
        by_id = {f.example_id: f for f in self.failures}
        scores = [
            s.model_copy(update={"failure": f.category.value, "evidence": f.evidence})
            if (f := by_id.get(s.example_id)) is not None
            else s
            for s in run.scores
        ]
        return run.model_copy(update={"scores": scores})


def triage_generative(
    run: GenerativeRun, suite: GenerativeSuite, workflow: Workflow
) -> GenerativeTriage:
    """Assign each failed example of ``run`` (:func:`is_failure`) to one category by the
    registered rules, in order of priority (module docstring); pure."""
    workflow.require_kind("generative triage", "answer", "tool_call")
    if suite.hash and run.suite_hash != suite.hash:
        raise InputError(
            f"run {run.id} is of suite {run.suite_hash[:12]}, not of {suite.name!r} "
            f"({suite.hash[:12]}); pass the suite the run was made on"
        )
    examples = {e.id: e for e in suite.examples}
    missing = [s.example_id for s in run.scores if s.example_id not in examples]
    if missing:
        raise InputError(f"run {run.id} scores examples not in suite {suite.name!r}: {missing[:5]}")
    rules = generative_triage_rules()
    failures: list[GenerativeFailure] = []
    per_slice_total: Counter[str] = Counter()
    for score, output in zip(run.scores, run.outputs, strict=True):
        per_slice_total[score.slice.value] += 1
        if not is_failure(score):
            continue
        case = GenerativeCase(score, output, examples[score.example_id], workflow)
        for rule in rules:
            evidence = rule.fn(case)
            if evidence:
                failures.append(
                    GenerativeFailure(
                        score.example_id,
                        rule.category,
                        rule.name,
                        evidence,
                        score.slice.value,
                        list(score.tags),
                    )
                )
                break
    counts, shares = _shares(Counter(f.category.value for f in failures), len(failures))
    slices: dict[str, dict[str, Any]] = {}
    for name, n in sorted(per_slice_total.items()):
        picked = [f for f in failures if f.slice == name]
        c, sh = _shares(Counter(f.category.value for f in picked), len(picked))
        slices[name] = {"examples": n, "failures": len(picked), "counts": c, "shares": sh}
    return GenerativeTriage(
        run.id,
        run.model_version,
        run.suite_hash,
        run.kind,
        len(run.scores),
        failures,
        counts,
        shares,
        slices,
    )


# -- the recommendation ------------------------------------------------------------------------

FACTS_SHARE = 0.40
"""Missing + stale facts at or above this share of the failures: a retrieval problem."""
RULE_SHARE = 0.25
"""Policy violations, formatting or tool-use failures at or above this share: a cheap fix."""
CHANGE_RATE_THRESHOLD = 0.05
"""A knowledge base whose documents change faster than this share a month is better served
by retrieval than by re-fine-tuning (the issue's 5-10% a month, at its lower end)."""

_EPS = 1e-9


@dataclass(frozen=True)
class GenerativeRecommendation:
    """What to do about a generative workflow's failures, in plain language."""

    action: str
    """``retrieval`` | ``rules`` | ``constrained_output`` | ``tool_schemas`` | ``fine_tune`` |
    ``none`` (no failures)."""
    reasons: list[str]
    """One line per threshold crossed (or why none was), then the change-rate line."""
    shares: dict[str, float]
    counts: dict[str, int]
    total: int
    fixes: list[str] = field(default_factory=list)
    """Names in :data:`~tunegate.diagnose.CHEAP_FIXES` to try, for the action and ``also``."""
    also: list[str] = field(default_factory=list)
    """Other actions whose thresholds were crossed too."""
    change_rate: float | None = None
    """The knowledge base's share of documents changed per month, when given."""
    retrieval_beats_finetuning: bool = False
    """``change_rate`` is above :data:`CHANGE_RATE_THRESHOLD`."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rate(change_rate: Any) -> float | None:
    if change_rate is None:
        return None
    value = float(getattr(change_rate, "rate", change_rate))
    if not value >= 0.0:
        raise InputError(f"change_rate must be a non-negative share, got {change_rate!r}")
    return value


def recommend_generative(
    triage: GenerativeTriage,
    change_rate: Any = None,
    *,
    facts_share: float = FACTS_SHARE,
    policy_share: float = RULE_SHARE,
    formatting_share: float = RULE_SHARE,
    tool_share: float = RULE_SHARE,
    change_rate_threshold: float = CHANGE_RATE_THRESHOLD,
) -> GenerativeRecommendation:
    """One recommendation from the triage's shares (pure).

    Thresholds are inclusive ("at or above"): missing + stale facts >= 40% -> ``retrieval``;
    policy violations >= 25% -> ``rules``; formatting >= 25% -> ``constrained_output``; tool
    use >= 25% -> ``tool_schemas``. When several cross, the largest share leads and the
    others are in ``also``; when none does, ``fine_tune`` (what remains is named). The
    knowledge base's ``change_rate`` (a share per month, or a :class:`~tunegate.kb.
    KbChangeRate`) above ``change_rate_threshold`` adds the line "retrieval beats
    re-fine-tuning on freshness", with the figure.
    """
    counts, shares, total = dict(triage.counts), dict(triage.shares), triage.total
    rate = _rate(change_rate)
    fast = rate is not None and rate > change_rate_threshold
    rate_line: list[str] = []
    if rate is not None:
        if fast:
            rate_line.append(
                f"The knowledge base changes {rate:.1%} of its documents a month (above "
                f"{change_rate_threshold:.0%}): retrieval beats re-fine-tuning on freshness. "
                "Facts trained into weights go out of date with every change; keep them in "
                "retrieval and fine-tune only behaviour."
            )
        else:
            rate_line.append(
                f"The knowledge base changes {rate:.1%} of its documents a month (at most "
                f"{change_rate_threshold:.0%}): slow enough that freshness alone does not "
                "rule out fine-tuning."
            )
    if total == 0:
        return GenerativeRecommendation(
            "none",
            ["No failed examples: nothing to fix.", *rate_line],
            shares,
            counts,
            0,
            change_rate=rate,
            retrieval_beats_finetuning=fast,
        )

    def at_least(n: int, threshold: float) -> bool:
        return n / total >= threshold - _EPS

    facts_n = counts["missing_facts"] + counts["stale_facts"]
    facts = facts_n / total
    pol, fmt = counts["policy_violation"], counts["formatting_failure"]
    tool = counts["tool_use_failure"]
    checks = [
        (
            facts_n,
            facts_share,
            "retrieval",
            (
                f"Missing or out-of-date facts are {facts:.0%} of the failures (at least "
                f"{facts_share:.0%}: {counts['missing_facts']} missing, "
                f"{counts['stale_facts']} stale). This is a retrieval problem: fix what the "
                "model is shown (top-k, chunk size, filters, reranking, query rewriting, "
                "freshness), not its weights."
            ),
        ),
        (
            pol,
            policy_share,
            "rules",
            (
                f"Broken rules are {pol / total:.0%} of the failures (at least "
                f"{policy_share:.0%}). Enforce the rules in code (check answers against their "
                "sources, explicit abstention criteria, output checks) rather than hoping "
                "training teaches them."
            ),
        ),
        (
            fmt,
            formatting_share,
            "constrained_output",
            (
                f"Malformed outputs are {fmt / total:.0%} of the failures (at least "
                f"{formatting_share:.0%}). Constrain the output to its JSON Schema "
                "(constrained decoding); training cannot guarantee a format."
            ),
        ),
        (
            tool,
            tool_share,
            "tool_schemas",
            (
                f"Wrong tools or arguments are {tool / total:.0%} of the failures (at least "
                f"{tool_share:.0%}). Tighten the tool schemas (descriptions, enums, required "
                "arguments) and constrain tool calls to them."
            ),
        ),
    ]
    crossed = [(n / total, action, line) for n, t, action, line in checks if at_least(n, t)]
    if crossed:
        crossed.sort(key=lambda t: -t[0])
        actions = [t[1] for t in crossed]
        fixes = list(dict.fromkeys(n for a in actions for n in FIXES_FOR_ACTION.get(a, ())))
        return GenerativeRecommendation(
            actions[0],
            [t[2] for t in crossed] + rate_line,
            shares,
            counts,
            total,
            fixes=fixes,
            also=actions[1:],
            change_rate=rate,
            retrieval_beats_finetuning=fast,
        )
    remaining = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    named = ", ".join(f"{k.replace('_', ' ')} {v / total:.0%}" for k, v in remaining)
    reasons = [
        f"No cheap-fix threshold is crossed (facts {facts:.0%}, rules {pol / total:.0%}, "
        f"format {fmt / total:.0%}, tools {tool / total:.0%}). What remains ({named}) is "
        "behaviour, which fine-tuning may improve, if the fine-tuning gate agrees.",
        *rate_line,
    ]
    return GenerativeRecommendation(
        "fine_tune",
        reasons,
        shares,
        counts,
        total,
        change_rate=rate,
        retrieval_beats_finetuning=fast,
    )
