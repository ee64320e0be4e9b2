"""Error triage: suggest a category per failure by registered rules; a person confirms it.

Every failure (a correcting override, or an evaluation error) gets one category of the
taxonomy :class:`TriageCategory`. Suggestion rules are registered with :func:`triage_rule`
(a name, a priority, a duplicate check); the first rule, by ascending priority, that fires
gives the suggestion and its evidence. A person confirms or corrects it through a file round
trip (:func:`export_triage` / :func:`import_triage`) or :func:`confirm_triage`; confirmed
labels are stored as ``store.put("triage", failure_id, {...})``. :func:`recommend` turns the
confirmed categories into a recommendation with the thresholds of ``workflow.triage``.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tunegate.config import RuleSpec, TriagePolicy, Workflow
from tunegate.errors import InputError
from tunegate.records import EvalRun, EvalSuite, ExampleSource, Override, Ticket, utcnow

__all__ = [
    "FailureCase",
    "Recommendation",
    "TriageCategory",
    "TriageContext",
    "TriageImportReport",
    "TriageRule",
    "TriageSuggestion",
    "confirm_triage",
    "confirmed_triage",
    "export_triage",
    "failures_from_eval_run",
    "failures_from_overrides",
    "failures_from_store",
    "import_triage",
    "recommend",
    "recommend_from_store",
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


_WORD = re.compile(r"[a-z][a-z0-9]*(?:['’-][a-z0-9]+)*")
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
    return {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOP}


@dataclass(frozen=True)
class FailureCase:
    """One failure to triage."""

    id: str
    """The override id, or ``<run id>:<example id>`` for an evaluation error."""
    text: str
    model_label: str | None
    """What the model said (None or a string outside the labels = unparseable output)."""
    final_label: str
    """The correct label (the analyst's, or the suite's)."""
    source: str = "override"
    """``override`` or ``eval``."""
    reason_code: str | None = None
    """The override's reason code (R1..R4), None for evaluation errors."""
    ticket_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Ticket metadata; ``tool_error`` (any truthy value) marks a failed tool call."""


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


_RULES: dict[str, TriageRule] = {}


def triage_rule(
    name: str, category: TriageCategory, *, priority: int
) -> Callable[[RuleFn], RuleFn]:
    """Register a suggestion rule. Lower ``priority`` is checked first; names are unique."""

    def deco(fn: RuleFn) -> RuleFn:
        if name in _RULES:
            raise ValueError(f"a triage rule named {name!r} is already registered")
        _RULES[name] = TriageRule(name, category, priority, fn, (fn.__doc__ or "").strip())
        return fn

    return deco


def registered_rules() -> list[TriageRule]:
    """The rules in the order they are checked."""
    return sorted(_RULES.values(), key=lambda r: (r.priority, r.name))


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
        if _rule_fires(rule, case.text) and rule.label != case.model_label:
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


def _rule_fires(rule: RuleSpec, text: str) -> bool:
    flags = re.IGNORECASE
    if rule.all_of and not all(re.search(p, text, flags) for p in rule.all_of):
        return False
    if rule.any_of and not any(re.search(p, text, flags) for p in rule.any_of):
        return False
    return not any(re.search(p, text, flags) for p in rule.none_of)


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


# -- failures from records -------------------------------------------------------------------


def failures_from_overrides(
    overrides: Iterable[Override], tickets: Iterable[Ticket]
) -> list[FailureCase]:
    """Correcting overrides (final != model label) with their ticket text."""
    by_id = {t.id: t for t in tickets}
    out = []
    for o in overrides:
        t = by_id.get(o.ticket_id)
        if t is None or not o.is_correction:
            continue
        out.append(
            FailureCase(
                id=o.id,
                text=t.text,
                model_label=o.model_label,
                final_label=o.final_label,
                source="override",
                reason_code=str(o.reason_code.value),
                ticket_id=o.ticket_id,
                metadata=dict(t.metadata),
            )
        )
    return out


def failures_from_eval_run(run: EvalRun, suite: EvalSuite) -> list[FailureCase]:
    """The examples an evaluation run got wrong (argmax != y_true)."""
    by_id = {e.id: e for e in suite.examples}
    out = []
    for ex_id, y, row in zip(run.example_ids, run.y_true, run.proba, strict=True):
        pred = max(range(len(row)), key=row.__getitem__) if row else None
        if pred == y or ex_id not in by_id:
            continue
        ex = by_id[ex_id]
        out.append(
            FailureCase(
                id=f"{run.id}:{ex_id}",
                text=ex.text,
                model_label=run.labels[pred] if pred is not None else None,
                final_label=run.labels[y],
                source="eval",
                metadata=dict(ex.metadata),
            )
        )
    return out


def failures_from_store(store: Any, *, since: Any = None) -> list[FailureCase]:
    """Every correcting override in the store, as failure cases."""
    overrides = [o for o in store.overrides(since=since) if o.is_correction]
    ids = sorted({o.ticket_id for o in overrides})
    tickets = store.tickets(ids=ids) if ids else []
    return failures_from_overrides(overrides, tickets)


def triage_context_from_store(
    store: Any,
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


# -- the file round trip -----------------------------------------------------------------------

_COLUMNS = [
    "failure_id",
    "source",
    "reason_code",
    "model_label",
    "final_label",
    "suggested_category",
    "rule",
    "evidence",
    "category",
    "note",
    "text",
]


def export_triage(
    path: str | Path, cases: Sequence[FailureCase], suggestions: Sequence[TriageSuggestion]
) -> int:
    """Write one row per case for review (CSV, or JSONL when the suffix is .jsonl).

    The ``category`` column is left empty: a reviewer fills it with a category (accepting or
    correcting ``suggested_category``); rows left empty are skipped on import. Returns rows.
    """
    p = Path(path)
    sug = {s.failure_id: s for s in suggestions}
    rows = []
    for c in cases:
        s = sug.get(c.id)
        rows.append(
            {
                "failure_id": c.id,
                "source": c.source,
                "reason_code": c.reason_code or "",
                "model_label": c.model_label or "",
                "final_label": c.final_label,
                "suggested_category": s.category.value if s else "",
                "rule": s.rule if s else "",
                "evidence": s.evidence if s else "",
                "category": "",
                "note": "",
                "text": c.text,
            }
        )
    if p.suffix.lower() == ".jsonl":
        with p.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        with p.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)


@dataclass
class TriageImportReport:
    """What an import did."""

    confirmed: int = 0
    """Rows stored with a category."""
    corrected: int = 0
    """Of those, rows whose category differs from the suggestion."""
    skipped: int = 0
    """Rows with an empty category (not yet reviewed)."""
    errors: list[str] = field(default_factory=list)
    """``file:line: message`` per bad row (nothing is stored when there are any)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_rows(p: Path) -> list[tuple[int, dict[str, Any]]]:
    if not p.exists():
        raise InputError(f"{p}: no such file; export one with `tunegate triage export {p}`")
    if p.suffix.lower() == ".jsonl":
        rows: list[tuple[int, dict[str, Any]]] = []
        for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append((lineno, {"__error__": f"not valid JSON: {exc.msg}"}))
                continue
            rows.append(
                (
                    lineno,
                    value if isinstance(value, dict) else {"__error__": "expected a JSON object"},
                )
            )
        return rows
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"failure_id", "category"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(
                f"{p}:1: missing column(s) {sorted(missing)}; expected the columns "
                f"written by `tunegate triage export`: {_COLUMNS}"
            )
        return [(i, dict(row)) for i, row in enumerate(reader, start=2)]


def import_triage(
    path: str | Path, store: Any, *, reviewer: str = "unknown", known_ids: set[str] | None = None
) -> TriageImportReport:
    """Validate an edited export and store each reviewed row as ``("triage", failure_id)``.

    All rows are validated first; any error raises :class:`InputError` listing every bad line
    (``file:line: ...``) and nothing is stored. ``known_ids`` (optional) rejects unknown ids.
    """
    p = Path(path)
    report = TriageImportReport()
    allowed = [c.value for c in TriageCategory]
    staged: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for lineno, row in _read_rows(p):
        where = f"{p}:{lineno}"
        if "__error__" in row:
            report.errors.append(f"{where}: {row['__error__']}")
            continue
        fid = str(row.get("failure_id") or "").strip()
        category = str(row.get("category") or "").strip().lower()
        if not fid:
            report.errors.append(f"{where}: empty failure_id")
            continue
        if fid in seen:
            report.errors.append(f"{where}: failure_id {fid!r} repeats line {seen[fid]}")
            continue
        seen[fid] = lineno
        if known_ids is not None and fid not in known_ids:
            report.errors.append(f"{where}: unknown failure_id {fid!r}")
            continue
        if not category:
            report.skipped += 1
            continue
        if category not in allowed:
            report.errors.append(f"{where}: category {category!r} is not one of {allowed}")
            continue
        suggested = str(row.get("suggested_category") or "").strip() or None
        if suggested and suggested != category:
            report.corrected += 1
        staged.append(
            (
                fid,
                _triage_payload(
                    category,
                    reviewer=reviewer,
                    suggested=suggested,
                    rule=row.get("rule") or None,
                    note=str(row.get("note") or ""),
                    row=row,
                ),
            )
        )
    if report.errors:
        raise InputError(
            f"{len(report.errors)} bad row(s), nothing imported; fix them and "
            f"import again:\n" + "\n".join(report.errors)
        )
    for fid, payload in staged:
        store.put("triage", fid, payload)
        report.confirmed += 1
    if staged:
        store.audit(
            "triage.import",
            reviewer,
            {"file": str(p), "confirmed": report.confirmed, "corrected": report.corrected},
        )
    return report


def _triage_payload(
    category: str,
    *,
    reviewer: str,
    suggested: str | None = None,
    rule: Any = None,
    note: str = "",
    row: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    row = row or {}
    return {
        "category": category,
        "suggested_category": suggested,
        "rule": rule,
        "confirmed": True,
        "reviewer": reviewer,
        "confirmed_at": utcnow().isoformat(),
        "note": note,
        "source": row.get("source") or None,
        "reason_code": row.get("reason_code") or None,
        "model_label": row.get("model_label") or None,
        "final_label": row.get("final_label") or None,
    }


def confirm_triage(
    store: Any, failure_id: str, category: str, *, reviewer: str = "unknown", note: str = ""
) -> dict[str, Any]:
    """Confirm (or correct) one failure's category and store it; returns the stored payload."""
    value = category.strip().lower()
    allowed = [c.value for c in TriageCategory]
    if value not in allowed:
        raise InputError(f"category {category!r} is not one of {allowed}")
    previous = store.get("triage", failure_id) or {}
    payload = _triage_payload(
        value,
        reviewer=reviewer,
        note=note,
        suggested=previous.get("suggested_category"),
        rule=previous.get("rule"),
        row=previous,
    )
    store.put("triage", failure_id, payload)
    store.audit("triage.confirm", reviewer, {"failure_id": failure_id, "category": value})
    return payload


def confirmed_triage(store: Any) -> dict[str, str]:
    """failure_id -> confirmed category, for every confirmed triage record in the store."""
    return {k: v["category"] for k, v in store.list("triage") if v.get("confirmed")}


# -- recommendations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """What to do about the triaged failures, and why."""

    action: str
    """``retrieval`` | ``rules`` | ``constrained_output`` | ``fine_tune`` | ``instructions`` |
    ``insufficient_data``."""
    reasons: list[str]
    """One line per threshold that was crossed (or why none was)."""
    shares: dict[str, float]
    """Category -> share of the triaged failures."""
    counts: dict[str, int]
    total: int
    needed: int = 0
    """Further triaged failures needed before a recommendation (insufficient_data only)."""
    also: list[str] = field(default_factory=list)
    """Other actions whose thresholds were crossed too."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(
    categories: Iterable[str | TriageCategory],
    policy: TriagePolicy,
    *,
    recurring_share: float | None = None,
    trend_stable: bool | None = None,
    min_recurring_share: float = 0.5,
) -> Recommendation:
    """Turn confirmed categories into one recommendation (thresholds in ``policy``).

    In order: fewer than ``policy.min_failures`` -> ``insufficient_data`` (with how many more);
    facts share (missing + stale) > ``facts_share`` -> ``retrieval``; policy share >
    ``policy_share`` -> ``rules``; formatting share > ``formatting_share`` ->
    ``constrained_output``. When several cross, the largest share leads and the others are in
    ``also``. With none crossed, ``fine_tune`` only for stable, repetitive behaviour:
    reasoning failures are the largest category, at least ``min_recurring_share`` of them fall
    in recurring missed-signal patterns (``recurring_share``), and the override trend is stable
    or increasing (``trend_stable``). Otherwise ``instructions``.
    """
    counts = Counter(TriageCategory(c).value for c in categories)
    total = sum(counts.values())
    all_counts = {c.value: counts.get(c.value, 0) for c in TriageCategory}
    shares = {k: (v / total if total else 0.0) for k, v in all_counts.items()}
    if total < policy.min_failures:
        need = policy.min_failures - total
        return Recommendation(
            "insufficient_data",
            [
                f"{total} confirmed triaged failures; a recommendation needs "
                f"{policy.min_failures}: "
                f"triage {need} more (`tunegate triage export` / `triage confirm`)"
            ],
            shares,
            all_counts,
            total,
            needed=need,
        )
    facts = shares["missing_facts"] + shares["stale_facts"]
    crossed: list[tuple[float, str, str]] = []
    if facts > policy.facts_share:
        crossed.append(
            (
                facts,
                "retrieval",
                f"missing/stale facts are {facts:.0%} of failures "
                f"(> {policy.facts_share:.0%}): give the model the facts at inference time "
                "(retrieval over reviewed "
                "examples or documents) instead of baking them into weights",
            )
        )
    if shares["policy_violation"] > policy.policy_share:
        crossed.append(
            (
                shares["policy_violation"],
                "rules",
                f"policy violations are {shares['policy_violation']:.0%} of failures "
                f"(> {policy.policy_share:.0%}): move the policy into deterministic rules",
            )
        )
    if shares["formatting_failure"] > policy.formatting_share:
        crossed.append(
            (
                shares["formatting_failure"],
                "constrained_output",
                f"formatting failures are {shares['formatting_failure']:.0%} of failures "
                f"(> {policy.formatting_share:.0%}): constrain the output to the "
                "label set",
            )
        )
    if crossed:
        crossed.sort(key=lambda t: -t[0])
        return Recommendation(
            crossed[0][1],
            [t[2] for t in crossed],
            shares,
            all_counts,
            total,
            also=[t[1] for t in crossed[1:]],
        )
    reasoning = shares["reasoning_failure"]
    largest = max(shares, key=lambda k: shares[k])
    reasons = [
        f"no cheap-fix threshold crossed (facts {facts:.0%}, policy "
        f"{shares['policy_violation']:.0%}, formatting {shares['formatting_failure']:.0%})"
    ]
    repetitive = recurring_share is not None and recurring_share >= min_recurring_share
    if largest == "reasoning_failure" and repetitive and trend_stable:
        reasons.append(
            f"reasoning failures lead ({reasoning:.0%}), {recurring_share:.0%} of them fall in "
            f"recurring missed-signal patterns and the trend is stable or increasing: stable, "
            f"repetitive behaviour that fine-tuning can learn (subject to the gate)"
        )
        return Recommendation("fine_tune", reasons, shares, all_counts, total)
    if largest != "reasoning_failure":
        reasons.append(f"the largest category is {largest} ({shares[largest]:.0%}), not reasoning")
    if not repetitive:
        shown = "unknown" if recurring_share is None else f"{recurring_share:.0%}"
        reasons.append(
            f"reasoning failures are not concentrated in recurring patterns "
            f"({shown} < {min_recurring_share:.0%})"
        )
    if not trend_stable:
        reasons.append("the override trend is not shown to be stable or increasing")
    reasons.append(
        "improve the instructions / label descriptions first (`tunegate try instructions`)"
    )
    return Recommendation("instructions", reasons, shares, all_counts, total)


def recommend_from_store(store: Any, workflow: Workflow) -> Recommendation:
    """:func:`recommend` over the store's confirmed triage, with the trend and the share of
    reasoning failures whose text contains a recurring missed-signal pattern."""
    from tunegate.diagnose._overrides import override_trend_from_store, patterns_from_store
    from tunegate.text import ngrams

    confirmed = confirmed_triage(store)
    if len(confirmed) < workflow.triage.min_failures:
        return recommend(confirmed.values(), workflow.triage)
    trend = override_trend_from_store(store, workflow)
    patterns = {p.ngram for p in patterns_from_store(store, workflow)}
    reasoning_ids = [k for k, v in confirmed.items() if v == TriageCategory.REASONING_FAILURE]
    cases = {c.id: c for c in failures_from_store(store)}
    texts = [cases[i].text for i in reasoning_ids if i in cases]
    share = (sum(1 for t in texts if ngrams(t) & patterns) / len(texts)) if texts else None
    return recommend(
        confirmed.values(),
        workflow.triage,
        recurring_share=share,
        trend_stable=trend.decision.passed,
    )
