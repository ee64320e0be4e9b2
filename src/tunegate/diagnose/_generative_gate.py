"""The fine-tuning gate of a generative workflow: the classify gate's five conditions, adapted.

:func:`collect_generative_evidence` reads what the gate needs from a store into a
:class:`GenerativeGateEvidence`; :func:`decide_generative_gate` is a pure function of that
evidence and the workflow; :func:`generative_gate` does both. Results are the classify gate's
:class:`~tunegate.diagnose.GateReport` and :class:`~tunegate.diagnose.GateCondition`. The gate
is open only when all five conditions pass:

1. **failures_triaged** — the champion's newest run on the suite is triaged and has at least
   ``triage.min_failures`` failed examples.
2. **not_a_cheap_problem** — the recommendation is ``fine_tune``: the failures are not mostly
   missing/stale facts (>= 40%), broken rules, formatting or tool use (>= 25% each).
3. **cheap_fixes_tried** — Attempts with verdicts exist against the champion on this suite for
   retrieval (``answer`` workflows), constrained output (unless the champion already
   constrains it), and every kind of fix the recommendation names.
4. **gap_remains** — the best cheap fix whose verdict did not fail fixed less than
   ``gate.instruction_fix_success`` of the champion's failures (else: ship that fix).
5. **reviewed_data** — at least ``gate.min_reviewed_examples`` reviewed examples of the
   workflow's kind whose input is not in the suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tunegate._registries import NamedRegistry
from tunegate.config import Workflow
from tunegate.diagnose._gate import GateCondition, GateReport, _champion_id
from tunegate.diagnose._gate_conditions import ConditionFinding
from tunegate.diagnose._generative import (
    GenerativeRecommendation,
    GenerativeTriage,
    recommend_generative,
    triage_generative,
)
from tunegate.diagnose._generative_fixes import (
    CHEAP_FIXES,
    FIXES_FOR_ACTION,
    _merge,
    latest_generative_run,
)
from tunegate.errors import InputError, NotFoundError
from tunegate.records import (
    Attempt,
    AttemptKind,
    GeneratorConfig,
    ModelKind,
    ReviewStatus,
    VerdictOutcome,
)

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "GENERATIVE_FIX_KINDS",
    "GenerativeGateEvidence",
    "collect_generative_evidence",
    "decide_generative_gate",
    "generative_gate",
    "generative_gate_condition",
    "generative_gate_conditions",
]

GENERATIVE_FIX_KINDS = (
    AttemptKind.RETRIEVAL,
    AttemptKind.PROMPT,
    AttemptKind.FORMAT,
    AttemptKind.VERIFICATION,
)
"""Attempt kinds that are cheap fixes of a generative workflow."""


@dataclass
class GenerativeGateEvidence:
    """Everything the generative gate reads (gathered from a store, or built in tests)."""

    suite_hash: str
    champion: str | None = None
    champion_kind: ModelKind | None = None
    champion_config: GeneratorConfig | None = None
    triage: GenerativeTriage | None = None
    """The triage of the champion's newest run on the suite (None: no run)."""
    recommendation: GenerativeRecommendation | None = None
    attempts: list[Attempt] = field(default_factory=list)
    """Every stored attempt; the conditions pick the champion's cheap fixes on the suite."""
    reviewed: int = 0
    """Reviewed examples of the workflow's kind whose input is not in the suite."""
    pending: int = 0
    """Examples of the workflow's kind still awaiting review."""
    in_suite: int = 0
    """Reviewed examples left out because their input is in the suite."""


ConditionFn = Callable[[GenerativeGateEvidence, Workflow], ConditionFinding]


@dataclass(frozen=True)
class _Spec:
    number: int
    name: str
    fn: ConditionFn
    description: str


_CONDITIONS: NamedRegistry[_Spec] = NamedRegistry("generative gate condition")


def generative_gate_condition(number: int, name: str) -> Callable[[ConditionFn], ConditionFn]:
    """Register a generative gate condition (unique name and number; run by number)."""

    def deco(fn: ConditionFn) -> ConditionFn:
        if any(c.number == number for c in _CONDITIONS):
            raise ValueError(f"a generative gate condition numbered {number} exists")
        _CONDITIONS.add(name, _Spec(number, name, fn, (fn.__doc__ or "").strip()))
        return fn

    return deco


def generative_gate_conditions() -> list[tuple[int, str, str]]:
    """(number, name, description) of the registered conditions, by number."""
    return [(c.number, c.name, c.description) for c in sorted(_CONDITIONS, key=lambda c: c.number)]


def _fix_attempts(evidence: GenerativeGateEvidence) -> list[Attempt]:
    """The champion's cheap-fix attempts on the suite that have a verdict."""
    return [
        a
        for a in evidence.attempts
        if a.kind in GENERATIVE_FIX_KINDS
        and a.verdict is not None
        and a.baseline_version == evidence.champion
        and a.details.get("suite_hash") == evidence.suite_hash
    ]


def _applicable(name: str, config: GeneratorConfig | None) -> bool:
    """A catalogue fix that would change the champion's config (``constrained`` is no fix
    for a champion that already constrains its output)."""
    if config is None:
        return True
    for key, value in CHEAP_FIXES[name].change.items():
        if key == "retrieval":
            if _merge(config.retrieval, value) != config.retrieval:
                return True
        elif getattr(config, key) != value:
            return True
    return False


def _required(evidence: GenerativeGateEvidence, workflow: Workflow) -> dict[AttemptKind, list[str]]:
    """Attempt kind -> the catalogue fixes that would satisfy it."""
    cfg = evidence.champion_config
    names: list[str] = []
    if workflow.kind == "answer":
        names += FIXES_FOR_ACTION["retrieval"]
    names.append("constrained")
    rec = evidence.recommendation
    if rec is not None:
        names += rec.fixes
    out: dict[AttemptKind, list[str]] = {}
    for name in dict.fromkeys(names):
        if name in CHEAP_FIXES and _applicable(name, cfg):
            out.setdefault(CHEAP_FIXES[name].kind, []).append(name)
    return out


@generative_gate_condition(1, "failures_triaged")
def failures_triaged(evidence: GenerativeGateEvidence, workflow: Workflow) -> ConditionFinding:
    """The champion's newest run on the suite is triaged, with at least
    ``triage.min_failures`` failed examples."""
    need = workflow.triage.min_failures
    if evidence.champion is None:
        return ConditionFinding(
            False,
            "no champion registered",
            "register a generator version and promote it (or pass the champion)",
            {"champion": None},
        )
    if evidence.champion_kind is not ModelKind.GENERATOR:
        kind = evidence.champion_kind.value if evidence.champion_kind else "unknown"
        return ConditionFinding(
            False,
            f"champion {evidence.champion} is a {kind} model, not a generator",
            "promote a generator version of this workflow",
            {"champion": evidence.champion, "kind": kind},
        )
    tri = evidence.triage
    if tri is None:
        return ConditionFinding(
            False,
            f"no run of champion {evidence.champion} on suite {evidence.suite_hash[:12]}",
            "evaluate the champion on the suite (tunegate.evaluate.run_generative_eval)",
            {"champion": evidence.champion, "suite_hash": evidence.suite_hash},
        )
    ev = {
        "run": tri.run_id,
        "examples": tri.examples,
        "failures": tri.total,
        "min_failures": need,
        "counts": tri.counts,
    }
    if tri.total >= need:
        return ConditionFinding(
            True,
            f"{tri.total} failed examples of {tri.examples} triaged (run {tri.run_id}; "
            f"need {need})",
            "read the recommendation",
            ev,
        )
    return ConditionFinding(
        False,
        f"{tri.total} failed examples of {tri.examples} triaged (run {tri.run_id}); a "
        f"recommendation needs {need} ({need - tri.total} more)",
        "freeze a larger suite, or add the failing questions you see in production to it",
        ev,
    )


@generative_gate_condition(2, "not_a_cheap_problem")
def not_a_cheap_problem(evidence: GenerativeGateEvidence, workflow: Workflow) -> ConditionFinding:
    """The recommendation is ``fine_tune``: the failures are not mostly missing or stale
    facts, broken rules, formatting or tool use."""
    rec = evidence.recommendation
    if rec is None:
        return ConditionFinding(False, "no triage to recommend from", "see condition (1)", {})
    ev: dict[str, Any] = {
        "action": rec.action,
        "shares": rec.shares,
        "also": rec.also,
        "fixes": rec.fixes,
    }
    if rec.change_rate is not None:
        ev["change_rate"] = rec.change_rate
    if rec.action == "fine_tune":
        return ConditionFinding(True, rec.reasons[0], "fine-tuning may help; see (3)-(5)", ev)
    if rec.action == "none":
        return ConditionFinding(False, "the champion fails no example", "nothing to fix", ev)
    fixes = ", ".join(rec.fixes) or "the cheap fixes"
    return ConditionFinding(
        False,
        rec.reasons[0],
        f"fix it without training: try {fixes} (try_generative_fix), then re-run the gate on "
        "the champion's new run",
        ev,
    )


@generative_gate_condition(3, "cheap_fixes_tried")
def cheap_fixes_tried(evidence: GenerativeGateEvidence, workflow: Workflow) -> ConditionFinding:
    """Attempts with verdicts exist against the champion on this suite for retrieval
    (``answer`` workflows), constrained output (unless the champion already constrains it)
    and every kind of fix the recommendation names."""
    done = {a.kind for a in _fix_attempts(evidence)}
    required = _required(evidence, workflow)
    missing = {k: v for k, v in required.items() if k not in done}
    ev = {
        "required": sorted(k.value for k in required),
        "tried": sorted(k.value for k in done),
        "missing": {k.value: v for k, v in missing.items()},
    }
    if not done:
        names = sorted({n for v in required.values() for n in v}) or ["one of CHEAP_FIXES"]
        return ConditionFinding(
            False,
            f"no cheap fix tried against champion {evidence.champion} on this suite",
            f"try {', '.join(names)} (try_generative_fix)",
            ev,
        )
    if missing:
        parts = [f"{k.value} (e.g. {', '.join(v[:3])})" for k, v in missing.items()]
        return ConditionFinding(
            False,
            f"cheap fixes not yet tried: {'; '.join(parts)}",
            "try them (try_generative_fix) and re-run the gate",
            ev,
        )
    return ConditionFinding(
        True,
        f"cheap fixes tried: {', '.join(sorted(k.value for k in done))}",
        "see whether the best of them leaves a gap (4)",
        ev,
    )


def _best_fix(evidence: GenerativeGateEvidence) -> Attempt | None:
    usable = [
        a
        for a in _fix_attempts(evidence)
        if a.verdict is not None and a.verdict.outcome is not VerdictOutcome.FAIL
    ]
    if not usable:
        return None
    return max(usable, key=lambda a: (a.details.get("fixed_share") or 0.0, a.created_at))


def cheap_fix_enough(evidence: GenerativeGateEvidence, workflow: Workflow) -> Attempt | None:
    """The cheap fix that makes fine-tuning unnecessary: the best one whose verdict did not
    fail, when it fixed at least ``gate.instruction_fix_success`` of the failures."""
    best = _best_fix(evidence)
    share = best.details.get("fixed_share") if best is not None else None
    if best is not None and share is not None and share >= workflow.gate.instruction_fix_success:
        return best
    return None


@generative_gate_condition(4, "gap_remains")
def gap_remains(evidence: GenerativeGateEvidence, workflow: Workflow) -> ConditionFinding:
    """The best cheap fix whose verdict did not fail fixed less than
    ``gate.instruction_fix_success`` of the champion's failures."""
    threshold = workflow.gate.instruction_fix_success
    attempts = _fix_attempts(evidence)
    if not attempts:
        return ConditionFinding(
            False, "no cheap fix to measure the gap with", "see condition (3)", {}
        )
    best = _best_fix(evidence)
    if best is None:
        return ConditionFinding(
            True,
            f"every cheap fix tried ({len(attempts)}) failed its verdict: none is shippable",
            "the gap remains; fine-tuning is justified if the rest holds",
            {"attempts": [a.id for a in attempts]},
        )
    share = best.details.get("fixed_share")
    ev = {
        "attempt": best.id,
        "candidate": best.candidate_version,
        "kind": best.kind.value,
        "fixed_share": share,
        "threshold": threshold,
        "failed_before": best.details.get("failed_before"),
        "failed_after": best.details.get("failed_after"),
        "verdict": best.verdict.outcome.value if best.verdict else None,
    }
    if cheap_fix_enough(evidence, workflow) is not None:
        return ConditionFinding(
            False,
            f"{best.description} fixed {share:.0%} of the failures (at least {threshold:.0%}) "
            f"with verdict {ev['verdict']}: fine-tuning is not needed",
            f"ship the cheap fix: promote {best.candidate_version}",
            ev,
        )
    shown = "none" if share is None else f"{share:.0%}"
    return ConditionFinding(
        True,
        f"the best cheap fix ({best.description}) fixed {shown} of the failures (below "
        f"{threshold:.0%}); {best.details.get('failed_after')} failures remain",
        "the gap remains; fine-tuning is justified if the rest holds",
        ev,
    )


@generative_gate_condition(5, "reviewed_data")
def reviewed_data(evidence: GenerativeGateEvidence, workflow: Workflow) -> ConditionFinding:
    """At least ``gate.min_reviewed_examples`` reviewed examples of the workflow's kind whose
    input is not in the suite."""
    need = workflow.gate.min_reviewed_examples
    ev = {
        "reviewed": evidence.reviewed,
        "pending": evidence.pending,
        "in_suite": evidence.in_suite,
        "min_reviewed": need,
    }
    if evidence.reviewed >= need:
        return ConditionFinding(
            True,
            f"{evidence.reviewed} reviewed {workflow.kind} examples (need {need})",
            "build the fine-tuning set from them",
            ev,
        )
    extra = f"; {evidence.pending} await review" if evidence.pending else ""
    left = (
        f"; {evidence.in_suite} more are in the suite and cannot train" if evidence.in_suite else ""
    )
    return ConditionFinding(
        False,
        f"{evidence.reviewed} reviewed {workflow.kind} examples, need {need} "
        f"({need - evidence.reviewed} more){extra}{left}",
        "review more examples (review_status: reviewed) or ingest reviewed ones",
        ev,
    )


def decide_generative_gate(evidence: GenerativeGateEvidence, workflow: Workflow) -> GateReport:
    """Judge the registered conditions over ``evidence``, by number (pure)."""
    conds = []
    for spec in sorted(_CONDITIONS, key=lambda c: c.number):
        f = spec.fn(evidence, workflow)
        conds.append(
            GateCondition(spec.number, spec.name, f.passed, f.summary, f.next_step, f.evidence)
        )
    is_open = all(c.passed for c in conds)
    enough = cheap_fix_enough(evidence, workflow)
    needed: bool | None = None
    if is_open:
        needed = True
        message = "gate OPEN: all five conditions hold; fine-tuning is justified"
    elif enough is not None:
        needed = False
        message = (
            f"gate CLOSED: fine-tuning is not needed; the cheap fix {enough.candidate_version} "
            "fixes the failures; ship it"
        )
    else:
        failed = [f"({c.number}) {c.name}" for c in conds if not c.passed]
        message = f"gate CLOSED: {', '.join(failed)} not met"
    return GateReport(is_open, conds, needed, message)


def kb_change_rate(store: Store, workflow: Workflow, months: int = 6) -> float | None:
    """The knowledge base's change rate over the last ``months`` months (None: no KB)."""
    from tunegate.kb import KnowledgeBase

    if not store.kb_versions():
        return None
    now = datetime.now(UTC)
    year, month = now.year, now.month - (months - 1)
    while month < 1:
        year, month = year - 1, month + 12
    try:
        return (
            KnowledgeBase(store, workflow.retrieval)
            .change_rate(start=datetime(year, month, 1, tzinfo=UTC), months=months)
            .rate
        )
    except InputError:
        return None


def collect_generative_evidence(
    store: Store,
    workflow: Workflow,
    suite_hash: str,
    champion: str | None = None,
    *,
    change_rate: float | None = None,
) -> GenerativeGateEvidence:
    """Read the gate's evidence: the champion (``champion``, else alias ``champion``), its
    newest run on the suite (a hash, a unique prefix or a name) and its triage, the
    recommendation (with ``change_rate``, else the knowledge base's over six months), the
    attempts and the reviewed examples."""
    from tunegate.evaluate._suites import get_generative_suite
    from tunegate.io import stored_generative_examples

    workflow.require_kind("the generative gate", "answer", "tool_call")
    suite = get_generative_suite(store, suite_hash)
    champ = champion or _champion_id(store)
    ev = GenerativeGateEvidence(suite_hash=suite.hash, champion=champ)
    if champ is not None:
        try:
            mv = store.get_model_version(champ)
        except NotFoundError:
            mv = None
        if mv is not None:
            ev.champion_kind = mv.kind
            if mv.kind is ModelKind.GENERATOR:
                ev.champion_config = GeneratorConfig.model_validate(mv.config)
                run = latest_generative_run(store, champ, suite.hash)
                if run is not None:
                    ev.triage = triage_generative(run, suite, workflow)
                    rate = (
                        change_rate
                        if change_rate is not None
                        else (
                            kb_change_rate(store, workflow) if workflow.kind == "answer" else None
                        )
                    )
                    ev.recommendation = recommend_generative(ev.triage, rate)
    ev.attempts = list(store.attempts())
    suite_inputs = {e.text_hash for e in suite.examples}
    mine = [e for e in stored_generative_examples(store) if e.kind == workflow.kind]
    reviewed = [e for e in mine if e.review_status is ReviewStatus.REVIEWED]
    ev.in_suite = sum(1 for e in reviewed if e.text_hash in suite_inputs)
    ev.reviewed = len(reviewed) - ev.in_suite
    ev.pending = sum(1 for e in mine if e.review_status is ReviewStatus.PENDING)
    return ev


def generative_gate(
    store: Store,
    workflow: Workflow,
    suite_hash: str,
    champion: str | None = None,
    *,
    change_rate: float | None = None,
) -> GateReport:
    """Collect the evidence from ``store`` and judge the five generative conditions."""
    return decide_generative_gate(
        collect_generative_evidence(store, workflow, suite_hash, champion, change_rate=change_rate),
        workflow,
    )
