"""The gate's five conditions as registered pure functions of the gathered evidence.

Each condition is registered with :func:`gate_condition` (a number, a name, a duplicate
check) and judges :class:`GateEvidence` against the workflow into a :class:`ConditionFinding`;
:func:`tunegate.diagnose.decide_gate` applies them in order of their number. The conditions
are described in :mod:`tunegate.diagnose._gate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunegate._registries import NamedRegistry
from tunegate.config import Workflow
from tunegate.diagnose._contrastive import finding_phrases
from tunegate.diagnose._overrides import OverrideTrend
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalRun,
    Example,
    ModelKind,
    ReviewStatus,
    VerdictOutcome,
)

__all__ = [
    "ConditionFinding",
    "GateCondition",
    "GateConditionSpec",
    "GateEvidence",
    "data_shortfalls",
    "gate_condition",
    "gate_conditions",
    "instructions_fixed",
]


@dataclass(frozen=True)
class GateCondition:
    """One condition's outcome."""

    number: int
    name: str
    passed: bool
    summary: str
    """One line: what was found."""
    next_step: str
    """What to do next (also when passed: what it enables)."""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateEvidence:
    """Everything the gate reads, gathered from the store (or built directly in tests)."""

    trend: OverrideTrend
    findings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(finding id, payload) of attribution findings; payload ``confirmed`` is a bool."""
    reviewed_examples: list[Example] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    champion: str | None = None
    """The champion's model version id (alias ``champion``), if any."""
    champion_kind: ModelKind | None = None
    """The champion's kind; a prompted LLM (``ModelKind.is_llm``) makes condition (4) read
    prompt attempts instead of instructions attempts."""
    eval_runs: list[EvalRun] = field(default_factory=list)
    """Evaluation runs of the champion (and of attempt baselines)."""


@dataclass(frozen=True)
class ConditionFinding:
    """What one condition found (the registry adds its number and name)."""

    passed: bool
    summary: str
    next_step: str
    evidence: dict[str, Any] = field(default_factory=dict)


ConditionFn = Callable[[GateEvidence, Workflow], ConditionFinding]


@dataclass(frozen=True)
class GateConditionSpec:
    """A registered gate condition."""

    number: int
    name: str
    fn: ConditionFn
    description: str

    def judge(self, evidence: GateEvidence, workflow: Workflow) -> GateCondition:
        """The condition's outcome over ``evidence`` (pure)."""
        f = self.fn(evidence, workflow)
        return GateCondition(self.number, self.name, f.passed, f.summary, f.next_step, f.evidence)


_CONDITIONS: NamedRegistry[GateConditionSpec] = NamedRegistry("gate condition")


def gate_condition(number: int, name: str) -> Callable[[ConditionFn], ConditionFn]:
    """Register a gate condition; names and numbers are unique, conditions run by number."""

    def deco(fn: ConditionFn) -> ConditionFn:
        if any(c.number == number for c in _CONDITIONS):
            raise ValueError(f"a gate condition numbered {number} is already registered")
        _CONDITIONS.add(name, GateConditionSpec(number, name, fn, (fn.__doc__ or "").strip()))
        return fn

    return deco


def gate_conditions() -> list[GateConditionSpec]:
    """The registered conditions, by number."""
    return sorted(_CONDITIONS, key=lambda c: c.number)


def data_shortfalls(examples: list[Example], workflow: Workflow) -> list[dict[str, Any]]:
    """Per data target: ``{name, label, have, need}`` for every target not met.

    An example is in a slice when the workflow's slice predicate matches its text/metadata or
    its ``slice_tags`` name the slice.
    """
    out = []
    tagged = [
        (e, set(e.slice_tags) | set(workflow.slice_tags(e.text, e.metadata))) for e in examples
    ]
    for t in workflow.data_targets:
        have = sum(
            1
            for e, tags in tagged
            if e.label == t.label
            and (t.slice is None or t.slice in tags)
            and (t.not_slice is None or t.not_slice not in tags)
        )
        if have < t.min:
            out.append({"name": t.name, "label": t.label, "have": have, "need": t.min})
    return out


def _latest_instruction_attempt(
    attempts: list[Attempt], champion: str | None, kind: AttemptKind = AttemptKind.INSTRUCTIONS
) -> Attempt | None:
    pool = [a for a in attempts if a.kind == kind]
    if champion is not None and any(a.baseline_version == champion for a in pool):
        pool = [a for a in pool if a.baseline_version == champion]
    return max(pool, key=lambda a: a.created_at) if pool else None


def _lever(evidence: GateEvidence, workflow: Workflow) -> AttemptKind:
    """The cheapest lever condition (4) asks for: the system prompt when the champion is a
    prompted LLM or the workflow's baseline is one (a LoRA adapter of the local LLM is still
    steered by its prompt), the instructions otherwise."""
    kind = evidence.champion_kind
    llm = (kind is not None and kind.is_llm) or workflow.baseline != "zero-shot"
    return AttemptKind.PROMPT if llm else AttemptKind.INSTRUCTIONS


def _latest_lever_attempt(evidence: GateEvidence, workflow: Workflow) -> Attempt | None:
    return _latest_instruction_attempt(
        evidence.attempts, evidence.champion, _lever(evidence, workflow)
    )


def instructions_fixed(evidence: GateEvidence, workflow: Workflow) -> bool:
    """The latest instructions attempt (prompt attempt, for a prompted-LLM champion) fixed at
    least ``gate.instruction_fix_success`` of the missed-signal overrides without a failed
    verdict: fine-tuning is not needed."""
    attempt = _latest_lever_attempt(evidence, workflow)
    if attempt is None:
        return False
    share = attempt.details.get("fixed_share")
    outcome = attempt.verdict.outcome.value if attempt.verdict else None
    return (
        share is not None
        and share >= workflow.gate.instruction_fix_success
        and outcome != VerdictOutcome.FAIL.value
    )


@gate_condition(1, "trend")
def trend(evidence: GateEvidence, workflow: Workflow) -> ConditionFinding:
    """``gate.reason_code`` overrides are stable or increasing over the last
    ``gate.trend_weeks`` complete weeks."""
    td = evidence.trend.decision
    trend_ev = {
        "reason_code": evidence.trend.reason_code,
        "window": td.window,
        "mean": td.mean,
        "p_decrease": td.test.p_decrease,
        "sen_slope": td.test.slope,
        "weeks": [w.isoformat() for w in evidence.trend.weeks[-td.weeks :]] if td.weeks else [],
    }
    if td.passed:
        return ConditionFinding(
            True,
            f"{evidence.trend.reason_code} overrides stable or increasing over "
            f"{td.weeks} weeks "
            f"(mean {td.mean:.1f}/week, Sen's slope {td.test.slope:+.2f}/week, "
            f"p(decrease)={td.test.p_decrease:.3f})",
            "the problem persists on its own; find its root cause (`tunegate attribute`)",
            trend_ev,
        )
    return ConditionFinding(
        False,
        "; ".join(td.reasons),
        "keep collecting overrides and re-run `tunegate gate`; a falling or small override "
        "count is not a reason to fine-tune",
        trend_ev,
    )


@gate_condition(2, "root_cause")
def root_cause(evidence: GateEvidence, workflow: Workflow) -> ConditionFinding:
    """An attribution finding is recorded and confirmed by a person."""
    confirmed = [(k, v) for k, v in evidence.findings if v.get("confirmed")]
    if confirmed:
        # the most recently confirmed finding (document keys are random ids, not an order)
        fid, f = max(confirmed, key=lambda kv: (str(kv[1].get("confirmed_at") or ""), kv[0]))
        words = ", ".join(finding_phrases(f, 6)) or "no terms"
        if f.get("kind") == "contrast":
            summary = (
                f"confirmed finding {fid}: {words} ({f.get('predicted_label')} -> "
                f"{f.get('label')}; tickets with the term of the {f.get('n_overrides')} "
                f"{f.get('reason_code')} overrides vs of the {f.get('n_reference')} correctly "
                "handled ones)"
            )
        else:
            summary = f"confirmed finding {fid}: under-weighted {words} for {f.get('label')!r}"
        return ConditionFinding(
            True,
            summary,
            "use the finding to target the data (reviewed examples in the affected slice)",
            {
                "finding": fid,
                "confirmed_findings": len(confirmed),
                "findings": len(evidence.findings),
            },
        )
    if evidence.findings:
        fid = evidence.findings[-1][0]
        return ConditionFinding(
            False,
            f"{len(evidence.findings)} attribution finding(s), none confirmed",
            f"review the finding and confirm it: `tunegate attribute --confirm {fid}`",
            {"findings": len(evidence.findings)},
        )
    return ConditionFinding(
        False,
        "no attribution finding recorded",
        "run `tunegate attribute` on the missed-signal overrides, then confirm the finding",
        {"findings": 0},
    )


@gate_condition(3, "data")
def data(evidence: GateEvidence, workflow: Workflow) -> ConditionFinding:
    """At least ``gate.min_reviewed_examples`` reviewed examples, meeting every
    ``data_targets`` minimum."""
    gate = workflow.gate
    reviewed = [e for e in evidence.reviewed_examples if e.review_status == ReviewStatus.REVIEWED]
    short = data_shortfalls(reviewed, workflow)
    enough = len(reviewed) >= gate.min_reviewed_examples
    data_ev = {
        "reviewed": len(reviewed),
        "min_reviewed": gate.min_reviewed_examples,
        "shortfalls": short,
    }
    if enough and not short:
        return ConditionFinding(
            True,
            f"{len(reviewed)} reviewed examples; every data target met",
            "build the dataset (`tunegate dataset build`)",
            data_ev,
        )
    parts = []
    if not enough:
        more = gate.min_reviewed_examples - len(reviewed)
        parts.append(
            f"{len(reviewed)} reviewed examples, need {gate.min_reviewed_examples} ({more} more)"
        )
    parts += [f"target {s['name']}: {s['have']}/{s['need']} {s['label']}" for s in short]
    return ConditionFinding(
        False,
        "; ".join(parts),
        "review more overrides/examples in the review queue",
        data_ev,
    )


@gate_condition(4, "instructions_tried")
def instructions_tried(evidence: GateEvidence, workflow: Workflow) -> ConditionFinding:
    """An instructions Attempt (a prompt Attempt when the champion is a prompted LLM) exists
    and did *not* fix the problem: it fixed fewer than ``gate.instruction_fix_success`` of the
    missed-signal overrides, or its verdict failed."""
    gate = workflow.gate
    lever = _lever(evidence, workflow)
    attempt = _latest_lever_attempt(evidence, workflow)
    if attempt is None:
        if lever is AttemptKind.PROMPT:
            return ConditionFinding(
                False,
                f"no prompt attempt recorded (the champion {evidence.champion} is a prompted "
                "LLM: its cheapest fix is the system prompt)",
                "try the cheapest fix first: `tunegate try prompt FILE`",
                {"attempts": len(evidence.attempts), "lever": lever.value},
            )
        return ConditionFinding(
            False,
            "no instructions attempt recorded",
            'try the cheapest fix first: `tunegate try instructions "..."`',
            {"attempts": len(evidence.attempts)},
        )
    share = attempt.details.get("fixed_share")
    outcome = attempt.verdict.outcome.value if attempt.verdict else None
    att_ev = {
        "attempt": attempt.id,
        "fixed_share": share,
        "threshold": gate.instruction_fix_success,
        "verdict": outcome,
        "missed_signal_overrides": attempt.details.get("missed_signal_total"),
    }
    retry = "`tunegate try instructions`"
    ship = "ship the instructions change (promote it) instead of fine-tuning"
    if lever is AttemptKind.PROMPT:
        att_ev["lever"] = lever.value
        retry = "`tunegate try prompt FILE`"
        ship = (
            f"ship the prompt (`tunegate promote {attempt.candidate_version}`) instead of "
            "fine-tuning"
        )
    if share is None:
        # No recent missed-signal overrides to measure the fix on: a failed verdict still
        # shows the instructions change was tried and is not the fix (the docstring's "or").
        if outcome == "fail":
            return ConditionFinding(
                True,
                f"attempt {attempt.id}'s verdict failed (it regresses the suite); no recent "
                "missed-signal overrides to measure its fix on",
                "the cheap fix was not enough; fine-tuning is justified if the rest holds",
                att_ev,
            )
        return ConditionFinding(
            False,
            f"attempt {attempt.id} could not be measured: no missed-signal "
            f"({gate.reason_code}) overrides in its window, and its verdict was {outcome}",
            f"re-run {retry} once recent overrides exist (`--weeks` widens the window)",
            att_ev,
        )
    if instructions_fixed(evidence, workflow):
        return ConditionFinding(
            False,
            f"attempt {attempt.id} fixed {share:.0%} of the missed-signal overrides "
            f"(>= {gate.instruction_fix_success:.0%}) with verdict {outcome}: "
            "fine-tuning is not needed",
            ship,
            att_ev,
        )
    why = (
        f"fixed only {share:.0%} of the missed-signal overrides "
        f"(< {gate.instruction_fix_success:.0%})"
        if share < gate.instruction_fix_success
        else f"fixed {share:.0%} but its verdict failed (it regresses elsewhere)"
    )
    return ConditionFinding(
        True,
        f"attempt {attempt.id} {why}",
        "the cheap fix was not enough; fine-tuning is justified if the rest holds",
        att_ev,
    )


@gate_condition(5, "baseline")
def baseline(evidence: GateEvidence, workflow: Workflow) -> ConditionFinding:
    """An EvalRun of the champion (else of the latest instructions attempt's baseline) exists
    to compare a fine-tuned candidate with."""
    champ = evidence.champion
    if champ is None:
        attempt = _latest_instruction_attempt(evidence.attempts, evidence.champion)
        if attempt is not None:
            champ = attempt.baseline_version
    runs = [r for r in evidence.eval_runs if champ is not None and r.model_version == champ]
    if runs:
        run = max(runs, key=lambda r: r.created_at)
        return ConditionFinding(
            True,
            f"champion {champ} evaluated (run {run.id}, suite {run.suite_hash[:12]})",
            "a fine-tuned candidate will be compared with this run",
            {"champion": champ, "run": run.id, "suite_hash": run.suite_hash},
        )
    return ConditionFinding(
        False,
        "no champion registered" if champ is None else f"no EvalRun for champion {champ}",
        "evaluate the champion on the frozen suite (`tunegate eval`)",
        {"champion": champ},
    )
