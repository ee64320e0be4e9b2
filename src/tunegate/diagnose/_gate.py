"""The five-condition fine-tuning gate.

:func:`collect_evidence` reads what the gate needs from a store into a :class:`GateEvidence`;
:func:`decide_gate` is a pure function of that evidence and the workflow; :func:`evaluate_gate`
does both. The gate is open only when all five conditions pass:

1. **trend** — ``gate.reason_code`` overrides are stable or increasing over the last
   ``gate.trend_weeks`` complete weeks (see :func:`tunegate.diagnose.stable_or_increasing`).
2. **root_cause** — an attribution finding is recorded and confirmed by a person.
3. **data** — at least ``gate.min_reviewed_examples`` reviewed examples, meeting every
   ``data_targets`` minimum.
4. **instructions_tried** — an instructions Attempt exists and did *not* fix the problem: it
   fixed fewer than ``gate.instruction_fix_success`` of the missed-signal overrides, or its
   verdict failed. When it did fix them, fine-tuning is not needed.
5. **baseline** — an EvalRun of the champion exists to compare a fine-tuned candidate with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tunegate.config import Workflow
from tunegate.diagnose._overrides import OverrideTrend, override_trend_from_store
from tunegate.documents import Finding
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalRun,
    Example,
    ExampleSource,
    ModelStatus,
    Override,
    ReviewStatus,
    VerdictOutcome,
)

__all__ = [
    "GateCondition",
    "GateEvidence",
    "GateReport",
    "collect_evidence",
    "data_shortfalls",
    "decide_gate",
    "evaluate_gate",
    "reviewed_examples",
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


@dataclass(frozen=True)
class GateReport:
    """The gate's answer."""

    open: bool
    conditions: list[GateCondition]
    fine_tuning_needed: bool | None
    """False when an instructions attempt fixed the problem; True when the gate is open;
    None when the evidence is not yet there."""
    message: str

    @property
    def exit_code(self) -> int:
        """0 when open, the GateClosedError exit code (1) when closed."""
        from tunegate.errors import GateClosedError

        return 0 if self.open else GateClosedError.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "fine_tuning_needed": self.fine_tuning_needed,
            "message": self.message,
            "conditions": [asdict(c) for c in self.conditions],
        }


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
    eval_runs: list[EvalRun] = field(default_factory=list)
    """Evaluation runs of the champion (and of attempt baselines)."""


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


def _latest_instruction_attempt(attempts: list[Attempt], champion: str | None) -> Attempt | None:
    pool = [a for a in attempts if a.kind == AttemptKind.INSTRUCTIONS]
    if champion is not None and any(a.baseline_version == champion for a in pool):
        pool = [a for a in pool if a.baseline_version == champion]
    return max(pool, key=lambda a: a.created_at) if pool else None


def decide_gate(evidence: GateEvidence, workflow: Workflow) -> GateReport:
    """Judge the five conditions over ``evidence`` (pure)."""
    gate = workflow.gate
    conds: list[GateCondition] = []

    # (1) trend
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
        conds.append(
            GateCondition(
                1,
                "trend",
                True,
                f"{evidence.trend.reason_code} overrides stable or increasing over "
                f"{td.weeks} weeks "
                f"(mean {td.mean:.1f}/week, Sen's slope {td.test.slope:+.2f}/week, "
                f"p(decrease)={td.test.p_decrease:.3f})",
                "the problem persists on its own; find its root cause (`tunegate attribute`)",
                trend_ev,
            )
        )
    else:
        conds.append(
            GateCondition(
                1,
                "trend",
                False,
                "; ".join(td.reasons),
                "keep collecting overrides and re-run `tunegate gate`; a falling or small override "
                "count is not a reason to fine-tune",
                trend_ev,
            )
        )

    # (2) root cause
    confirmed = [(k, v) for k, v in evidence.findings if v.get("confirmed")]
    if confirmed:
        fid, f = confirmed[-1]
        terms = [t.get("term") if isinstance(t, dict) else t for t in f.get("tokens", [])][:8]
        conds.append(
            GateCondition(
                2,
                "root_cause",
                True,
                f"confirmed finding {fid}: under-weighted {terms} for {f.get('label')!r}",
                "use the finding to target the data (reviewed examples in the affected slice)",
                {
                    "finding": fid,
                    "confirmed_findings": len(confirmed),
                    "findings": len(evidence.findings),
                },
            )
        )
    elif evidence.findings:
        fid = evidence.findings[-1][0]
        conds.append(
            GateCondition(
                2,
                "root_cause",
                False,
                f"{len(evidence.findings)} attribution finding(s), none confirmed",
                f"review the finding and confirm it: `tunegate attribute --confirm {fid}`",
                {"findings": len(evidence.findings)},
            )
        )
    else:
        conds.append(
            GateCondition(
                2,
                "root_cause",
                False,
                "no attribution finding recorded",
                "run `tunegate attribute` on the missed-signal overrides, then confirm the finding",
                {"findings": 0},
            )
        )

    # (3) data
    reviewed = [e for e in evidence.reviewed_examples if e.review_status == ReviewStatus.REVIEWED]
    short = data_shortfalls(reviewed, workflow)
    enough = len(reviewed) >= gate.min_reviewed_examples
    data_ev = {
        "reviewed": len(reviewed),
        "min_reviewed": gate.min_reviewed_examples,
        "shortfalls": short,
    }
    if enough and not short:
        conds.append(
            GateCondition(
                3,
                "data",
                True,
                f"{len(reviewed)} reviewed examples; every data target met",
                "build the dataset (`tunegate dataset build`)",
                data_ev,
            )
        )
    else:
        parts = []
        if not enough:
            more = gate.min_reviewed_examples - len(reviewed)
            parts.append(
                f"{len(reviewed)} reviewed examples, need "
                f"{gate.min_reviewed_examples} ({more} more)"
            )
        parts += [f"target {s['name']}: {s['have']}/{s['need']} {s['label']}" for s in short]
        conds.append(
            GateCondition(
                3,
                "data",
                False,
                "; ".join(parts),
                "review more overrides/examples in the review queue",
                data_ev,
            )
        )

    # (4) instructions tried and not enough
    attempt = _latest_instruction_attempt(evidence.attempts, evidence.champion)
    fine_tuning_needed: bool | None = None
    if attempt is None:
        conds.append(
            GateCondition(
                4,
                "instructions_tried",
                False,
                "no instructions attempt recorded",
                'try the cheapest fix first: `tunegate try instructions "..."`',
                {"attempts": len(evidence.attempts)},
            )
        )
    else:
        share = attempt.details.get("fixed_share")
        outcome = attempt.verdict.outcome.value if attempt.verdict else None
        att_ev = {
            "attempt": attempt.id,
            "fixed_share": share,
            "threshold": gate.instruction_fix_success,
            "verdict": outcome,
            "missed_signal_overrides": attempt.details.get("missed_signal_total"),
        }
        if share is None:
            conds.append(
                GateCondition(
                    4,
                    "instructions_tried",
                    False,
                    f"attempt {attempt.id} has no missed-signal measurement (details.fixed_share)",
                    "re-run `tunegate try instructions` so it is measured on recent overrides",
                    att_ev,
                )
            )
        elif share >= gate.instruction_fix_success and outcome != VerdictOutcome.FAIL.value:
            fine_tuning_needed = False
            conds.append(
                GateCondition(
                    4,
                    "instructions_tried",
                    False,
                    f"attempt {attempt.id} fixed {share:.0%} of the missed-signal overrides "
                    f"(>= {gate.instruction_fix_success:.0%}) with verdict {outcome}: "
                    "fine-tuning is not needed",
                    "ship the instructions change (promote it) instead of fine-tuning",
                    att_ev,
                )
            )
        else:
            why = (
                f"fixed only {share:.0%} of the missed-signal overrides "
                f"(< {gate.instruction_fix_success:.0%})"
                if share < gate.instruction_fix_success
                else f"fixed {share:.0%} but its verdict failed (it regresses elsewhere)"
            )
            conds.append(
                GateCondition(
                    4,
                    "instructions_tried",
                    True,
                    f"attempt {attempt.id} {why}",
                    "the cheap fix was not enough; fine-tuning is justified if the rest holds",
                    att_ev,
                )
            )

    # (5) baseline
    champ = evidence.champion
    if champ is None and attempt is not None:
        champ = attempt.baseline_version
    runs = [r for r in evidence.eval_runs if champ is not None and r.model_version == champ]
    if runs:
        run = max(runs, key=lambda r: r.created_at)
        conds.append(
            GateCondition(
                5,
                "baseline",
                True,
                f"champion {champ} evaluated (run {run.id}, suite {run.suite_hash[:12]})",
                "a fine-tuned candidate will be compared with this run",
                {"champion": champ, "run": run.id, "suite_hash": run.suite_hash},
            )
        )
    else:
        conds.append(
            GateCondition(
                5,
                "baseline",
                False,
                "no champion registered" if champ is None else f"no EvalRun for champion {champ}",
                "evaluate the champion on the frozen suite (`tunegate eval`)",
                {"champion": champ},
            )
        )

    is_open = all(c.passed for c in conds)
    if is_open:
        fine_tuning_needed = True
        message = "gate OPEN: all five conditions hold; fine-tuning is justified"
    elif fine_tuning_needed is False:
        message = (
            "gate CLOSED: fine-tuning is not needed — the instructions change fixed the "
            "missed-signal overrides; ship it"
        )
    else:
        failed = [f"({c.number}) {c.name}" for c in conds if not c.passed]
        message = f"gate CLOSED: {', '.join(failed)} not met"
    return GateReport(is_open, conds, fine_tuning_needed, message)


def _champion_id(store: Any) -> str | None:
    champ: str | None = store.get_alias("champion")
    if champ:
        return champ
    versions = [v for v in store.model_versions() if v.status == ModelStatus.CHAMPION]
    return max(versions, key=lambda v: v.created_at).id if versions else None


def reviewed_examples(
    store: Any, workflow: Workflow, *, as_of: datetime | None = None
) -> list[Example]:
    """Reviewed labelled examples: the store's reviewed examples plus reviewed overrides (the
    latest per ticket, text joined from the ticket) whose ticket no example already covers —
    the same pool the dataset builder draws from."""
    examples = [
        e
        for e in store.examples(review_status=ReviewStatus.REVIEWED)
        if as_of is None or e.created_at <= as_of
    ]
    covered = {e.ticket_id for e in examples if e.ticket_id}
    latest: dict[str, Override] = {}
    for o in sorted(store.overrides(until=as_of), key=lambda o: (o.created_at, o.id)):
        latest[o.ticket_id] = o
    picked = [
        o
        for tid, o in latest.items()
        if o.review_status == ReviewStatus.REVIEWED and tid not in covered
    ]
    tickets = (
        {t.id: t for t in store.tickets(ids=sorted({o.ticket_id for o in picked}))}
        if picked
        else {}
    )
    for o in picked:
        t = tickets.get(o.ticket_id)
        if t is None:
            continue
        examples.append(
            Example(
                id=f"ex_{o.id}",
                text=t.text,
                label=o.final_label,
                source=ExampleSource.OVERRIDE,
                reviewer=o.analyst,
                review_status=ReviewStatus.REVIEWED,
                slice_tags=workflow.slice_tags(t.text, t.metadata),
                metadata=dict(t.metadata),
                ticket_id=t.id,
                created_at=o.created_at,
            )
        )
    return examples


def collect_evidence(
    store: Any, workflow: Workflow, *, as_of: datetime | None = None
) -> GateEvidence:
    """Read the gate's evidence from ``store``."""
    champion = _champion_id(store)
    attempts = list(store.attempts())
    baselines = {a.baseline_version for a in attempts}
    if champion is not None:
        baselines.add(champion)
    runs: list[EvalRun] = []
    for version in sorted(baselines):
        runs.extend(store.eval_runs(model_version=version))
    return GateEvidence(
        trend=override_trend_from_store(store, workflow, as_of=as_of),
        findings=[(k, f.model_dump(mode="json")) for k, f in store.documents(Finding).items()],
        reviewed_examples=reviewed_examples(store, workflow, as_of=as_of),
        attempts=attempts,
        champion=champion,
        eval_runs=runs,
    )


def evaluate_gate(store: Any, workflow: Workflow, *, as_of: datetime | None = None) -> GateReport:
    """Collect the evidence from ``store`` and judge the five conditions."""
    return decide_gate(collect_evidence(store, workflow, as_of=as_of), workflow)
