"""Error triage: suggest a category per failure by registered rules; a person confirms it.

Every failure (a correcting override, or an evaluation error: :mod:`._failures`) gets one
category of the taxonomy :class:`TriageCategory`. Suggestion rules are registered with
:func:`triage_rule` (a name, a priority, a duplicate check); each is a pure function of the
failure and the :class:`TriageContext` gathered once (:func:`triage_context_from_store`), and
the first rule, by ascending priority, that fires gives the suggestion and its evidence. A
person confirms or corrects it (:mod:`._triage_review`); :mod:`._recommend` turns the
confirmed categories into a recommendation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from tunegate._matching import RuleMatcher
from tunegate._registries import NamedRegistry
from tunegate.config import RuleSpec, Workflow
from tunegate.diagnose._failures import FailureCase
from tunegate.records import ExampleSource
from tunegate.text import words

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "TriageCategory",
    "TriageContext",
    "TriageRule",
    "TriageSuggestion",
    "registered_rules",
    "suggest",
    "triage_context_from_store",
    "triage_rule",
]


class TriageCategory(StrEnum):
    """The failure taxonomy."""

    MISSING_FACTS = "missing_facts"
    STALE_FACTS = "stale_facts"
    PROMPT_MISUNDERSTANDING = "prompt_misunderstanding"
    TOOL_USE_FAILURE = "tool_use_failure"
    REASONING_FAILURE = "reasoning_failure"
    POLICY_VIOLATION = "policy_violation"
    FORMATTING_FAILURE = "formatting_failure"


_VERSION = re.compile(r"\b(?:v?\d+(?:\.\d+)+|(?:19|20)\d\d(?:-\d\d(?:-\d\d)?)?)\b", re.IGNORECASE)
_NAMED_VERSION = re.compile(r"\b([a-z][a-z]+)\s+v?(\d+(?:\.\d+)*)\b", re.IGNORECASE)


def named_versions(text: str) -> set[tuple[str, str]]:
    """(name, number) pairs such as ("windows", "11") or ("office", "2019")."""
    return {
        (m.group(1).lower(), m.group(2))
        for m in _NAMED_VERSION.finditer(text)
        if m.group(1).lower() not in _STOP
    }


_STOP_TEXT = """
    the and for with from that this have has had not but are was were been being you your
    our they them their its can could will would should please thanks thank hello since when
    what which who where why how all any some just also very too out about into over again
    get got getting keep keeps still now today yesterday morning every"""
_STOP = frozenset(_STOP_TEXT.split())


def content_words(text: str) -> set[str]:
    """Lowercased words of 3+ letters that are not stopwords."""
    return {w for w in words(text, pattern="alpha") if len(w) >= 3 and w not in _STOP}


@dataclass
class TriageContext:
    """What the suggestion rules know beyond the failure itself."""

    labels: list[str]
    """Valid labels of the workflow."""
    build_vocabulary: set[str] = field(default_factory=set)
    """Content words of the data the champion was built on (historical examples, prompts)."""
    shifted_terms: dict[str, float] = field(default_factory=dict)
    """Word -> recent/build document-frequency ratio, for words whose frequency shifted."""
    recurring_unknown: set[str] = field(default_factory=set)
    """Words absent from the build vocabulary that recur across failures."""
    rules: list[RuleSpec] = field(default_factory=list)
    """Workflow rules (or a supplied list) checked for contradictions."""
    build_versions: dict[str, set[str]] = field(default_factory=dict)
    """Name -> version numbers seen with it in the build data (``windows`` -> {``10``})."""

    @classmethod
    def build(
        cls,
        labels: Sequence[str],
        *,
        build_texts: Iterable[str] = (),
        recent_texts: Iterable[str] = (),
        failure_texts: Iterable[str] = (),
        rules: Sequence[RuleSpec] = (),
        min_recurrence: int = 3,
        shift_ratio: float = 3.0,
        min_shift_count: int = 5,
    ) -> TriageContext:
        """Derive the vocabulary facts from texts.

        * ``build_vocabulary``: content words of ``build_texts``.
        * ``recurring_unknown``: words not in it that occur in >= ``min_recurrence`` failures.
        * ``shifted_terms``: words in both periods (>= ``min_shift_count`` documents in one of
          them) whose document frequency changed by a factor >= ``shift_ratio`` either way
          (add-one smoothed).
        """
        build_texts_list = list(build_texts)
        build_docs = [content_words(t) for t in build_texts_list]
        recent_docs = [content_words(t) for t in recent_texts]
        vocab: set[str] = set().union(*build_docs) if build_docs else set()
        fail_df: Counter[str] = Counter(w for t in failure_texts for w in content_words(t))
        unknown = {w for w, c in fail_df.items() if c >= min_recurrence and w not in vocab}
        shifted: dict[str, float] = {}
        if build_docs and recent_docs:
            b_df: Counter[str] = Counter(w for d in build_docs for w in d)
            r_df: Counter[str] = Counter(w for d in recent_docs for w in d)
            nb, nr = len(build_docs), len(recent_docs)
            for w in set(b_df) & set(r_df):
                if max(b_df[w], r_df[w]) < min_shift_count:
                    continue
                ratio = ((r_df[w] + 1) / (nr + 1)) / ((b_df[w] + 1) / (nb + 1))
                if ratio >= shift_ratio or ratio <= 1.0 / shift_ratio:
                    shifted[w] = ratio
        versions: dict[str, set[str]] = {}
        for text in build_texts_list:
            for name, number in named_versions(text):
                versions.setdefault(name, set()).add(number)
        return cls(list(labels), vocab, shifted, unknown, list(rules), versions)


@dataclass(frozen=True)
class TriageSuggestion:
    """A suggested category and the rule (and evidence) that produced it."""

    failure_id: str
    category: TriageCategory
    rule: str
    evidence: str


RuleFn = Callable[[FailureCase, TriageContext], str | None]


@dataclass(frozen=True)
class TriageRule:
    """A registered suggestion rule: returns evidence text when it fires, else None."""

    name: str
    category: TriageCategory
    priority: int
    fn: RuleFn
    description: str


_RULES: NamedRegistry[TriageRule] = NamedRegistry("triage rule")


def triage_rule(
    name: str, category: TriageCategory, *, priority: int
) -> Callable[[RuleFn], RuleFn]:
    """Register a suggestion rule. Lower ``priority`` is checked first; names are unique."""

    def deco(fn: RuleFn) -> RuleFn:
        _RULES.add(name, TriageRule(name, category, priority, fn, (fn.__doc__ or "").strip()))
        return fn

    return deco


def registered_rules() -> list[TriageRule]:
    """The rules in the order they are checked."""
    return sorted(_RULES, key=lambda r: (r.priority, r.name))


@triage_rule("unparseable_output", TriageCategory.FORMATTING_FAILURE, priority=10)
def _unparseable(case: FailureCase, ctx: TriageContext) -> str | None:
    """The model's output is missing or is not one of the workflow's labels."""
    if case.model_label is None or case.model_label not in ctx.labels:
        return f"model output {case.model_label!r} is not a valid label"
    return None


@triage_rule("tool_error", TriageCategory.TOOL_USE_FAILURE, priority=20)
def _tool_error(case: FailureCase, ctx: TriageContext) -> str | None:
    """The ticket's metadata records a failed tool or lookup call (``tool_error``)."""
    err = case.metadata.get("tool_error")
    return f"tool call failed: {err}" if err else None


@triage_rule("contradicts_rule", TriageCategory.POLICY_VIOLATION, priority=30)
def _contradicts_rule(case: FailureCase, ctx: TriageContext) -> str | None:
    """A workflow rule fires on the text with a label different from the model's."""
    for rule in ctx.rules:
        if RuleMatcher(rule).fires(case.text) and rule.label != case.model_label:
            return f"rule {rule.name!r} assigns {rule.label!r}, the model said {case.model_label!r}"
    return None


@triage_rule("ambiguous_input", TriageCategory.PROMPT_MISUNDERSTANDING, priority=40)
def _ambiguous(case: FailureCase, ctx: TriageContext) -> str | None:
    """The analyst coded the override R1 (ambiguous input)."""
    return "override reason R1 (ambiguous input)" if case.reason_code == "R1" else None


@triage_rule("changed_fact", TriageCategory.STALE_FACTS, priority=50)
def _changed_fact(case: FailureCase, ctx: TriageContext) -> str | None:
    """The text uses words whose frequency shifted since the build period, or a version/date
    not seen in the build data."""
    words = content_words(case.text)
    shifted = sorted(w for w in words if w in ctx.shifted_terms)
    if shifted:
        detail = ", ".join(f"{w} (x{ctx.shifted_terms[w]:.1f})" for w in shifted[:5])
        return f"terms whose frequency shifted since the build period: {detail}"
    changed = sorted(
        f"{name} {num} (build data: {', '.join(sorted(ctx.build_versions[name]))})"
        for name, num in named_versions(case.text)
        if name in ctx.build_versions and num not in ctx.build_versions[name]
    )
    if changed:
        return f"a changed version: {'; '.join(changed[:3])}"
    if ctx.build_vocabulary:
        versions = [v for v in _VERSION.findall(case.text) if v.lower() not in ctx.build_vocabulary]
        if versions:
            return f"versions/dates not in the build data: {', '.join(versions[:5])}"
    return None


@triage_rule("unknown_vocabulary", TriageCategory.MISSING_FACTS, priority=60)
def _unknown_vocabulary(case: FailureCase, ctx: TriageContext) -> str | None:
    """The text uses recurring words absent from the data the champion was built on."""
    words = sorted(content_words(case.text) & ctx.recurring_unknown)
    if words:
        return f"recurring words absent from the build data: {', '.join(words[:8])}"
    return None


def suggest(cases: Iterable[FailureCase], ctx: TriageContext) -> list[TriageSuggestion]:
    """One suggestion per case: the first registered rule that fires, else reasoning_failure."""
    rules = registered_rules()
    out = []
    for case in cases:
        for rule in rules:
            evidence = rule.fn(case, ctx)
            if evidence:
                out.append(TriageSuggestion(case.id, rule.category, rule.name, evidence))
                break
        else:
            out.append(
                TriageSuggestion(
                    case.id,
                    TriageCategory.REASONING_FAILURE,
                    "fallback",
                    "no rule fired: the facts and rules were available, the model weighed "
                    "them wrong",
                )
            )
    return out


def triage_context_from_store(
    store: Store,
    workflow: Workflow,
    cases: Sequence[FailureCase],
    *,
    rules: Sequence[RuleSpec] | None = None,
) -> TriageContext:
    """Build data = historical examples + the label prompts; recent texts = the tickets since
    the newest historical example (or all tickets when there is none)."""
    historical = store.examples(source=ExampleSource.HISTORICAL)
    build_texts = [e.text for e in historical] + list(workflow.label_prompts().values())
    cutoff = max((e.created_at for e in historical), default=None)
    recent = [t.text for t in store.tickets(since=cutoff)]
    return TriageContext.build(
        workflow.label_names,
        build_texts=build_texts,
        recent_texts=recent,
        failure_texts=[c.text for c in cases],
        rules=list(rules) if rules is not None else workflow.rules,
    )
