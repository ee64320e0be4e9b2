"""The five-condition fine-tuning gate.

:func:`collect_evidence` reads what the gate needs from a store into a :class:`GateEvidence`;
:func:`decide_gate` is a pure function of that evidence and the workflow; :func:`evaluate_gate`
does both. The gate is open only when all five conditions pass:

1. **trend** — ``gate.reason_code`` overrides are stable or increasing over the last
   ``gate.trend_weeks`` complete weeks (see :func:`tunegate.diagnose.stable_or_increasing`).
2. **root_cause** — an attribution finding is recorded and confirmed by a person.
3. **data** — at least ``gate.min_reviewed_examples`` reviewed examples, meeting every
   ``data_targets`` minimum.
4. **instructions_tried** — an instructions Attempt (a prompt Attempt when the champion is a
   prompted LLM) exists and did *not* fix the problem: it fixed fewer than
   ``gate.instruction_fix_success`` of the missed-signal overrides, or its verdict failed.
   When it did fix them, fine-tuning is not needed.
5. **baseline** — an EvalRun of the champion exists to compare a fine-tuned candidate with.

Each condition is a registered pure function (:mod:`._gate_conditions`,
:func:`~tunegate.diagnose.gate_condition`); :func:`decide_gate` applies them by number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.diagnose._gate_conditions import (
    GateCondition,
    GateEvidence,
    data_shortfalls,
    gate_conditions,
    instructions_fixed,
)
from tunegate.diagnose._overrides import override_trend_from_store
from tunegate.documents import Finding
from tunegate.errors import NotFoundError
from tunegate.records import (
    EvalRun,
    Example,
    ExampleSource,
    ModelKind,
    ModelStatus,
    Override,
    ReviewStatus,
)

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "GateCondition",
    "GateEvidence",
    "GateReport",
    "collect_evidence",
    "data_shortfalls",
    "decide_gate",
    "evaluate_gate",
    "require_open_gate",
    "reviewed_examples",
]


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


def decide_gate(evidence: GateEvidence, workflow: Workflow) -> GateReport:
    """Judge the registered conditions over ``evidence``, in order of their number (pure)."""
    conds = [c.judge(evidence, workflow) for c in gate_conditions()]
    is_open = all(c.passed for c in conds)
    fine_tuning_needed: bool | None = False if instructions_fixed(evidence, workflow) else None
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


def _champion_id(store: Store) -> str | None:
    champ: str | None = store.get_alias("champion")
    if champ:
        return champ
    versions = [v for v in store.model_versions() if v.status == ModelStatus.CHAMPION]
    return max(versions, key=lambda v: v.created_at).id if versions else None


def _champion_kind(store: Store, champion: str | None) -> ModelKind | None:
    """The champion's kind (None without one, or when the alias names an unknown version)."""
    if champion is None:
        return None
    try:
        kind: ModelKind = store.get_model_version(champion).kind
    except NotFoundError:
        return None
    return kind


def reviewed_examples(
    store: Store, workflow: Workflow, *, as_of: datetime | None = None
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
    store: Store, workflow: Workflow, *, as_of: datetime | None = None
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
        champion_kind=_champion_kind(store, champion),
        trend=override_trend_from_store(store, workflow, as_of=as_of),
        findings=[(k, f.model_dump(mode="json")) for k, f in store.documents(Finding).items()],
        reviewed_examples=reviewed_examples(store, workflow, as_of=as_of),
        attempts=attempts,
        champion=champion,
        eval_runs=runs,
    )


def evaluate_gate(store: Store, workflow: Workflow, *, as_of: datetime | None = None) -> GateReport:
    """Collect the evidence from ``store`` and judge the five conditions."""
    return decide_gate(collect_evidence(store, workflow, as_of=as_of), workflow)


def require_open_gate(
    store: Store, workflow: Workflow, *, despite: str | None = None, actor: str = "tunegate"
) -> GateReport:
    """The gate, which must be open before a fine-tune.

    Closed: raises :class:`~tunegate.errors.GateClosedError` naming the failed conditions,
    unless ``despite`` gives a reason to train anyway; that reason and the failed conditions
    are then recorded in the audit log (``finetune_despite_gate``) and the report returned.
    """
    from tunegate.errors import GateClosedError, InputError

    report = evaluate_gate(store, workflow)
    if report.open:
        return report
    failed = [c for c in report.conditions if not c.passed]
    if despite is None:
        lines = "; ".join(f"({c.number}) {c.name}: {c.summary}" for c in failed)
        raise GateClosedError(
            f"{report.message}. Failed: {lines}. Run `tunegate gate` for the evidence; to "
            "train anyway, give a reason (`--despite-gate REASON`, recorded in the audit log)"
        )
    if not despite.strip():
        raise InputError("--despite-gate needs a reason (it is recorded in the audit log)")
    store.audit(
        "finetune_despite_gate",
        actor,
        {"reason": despite, "failed": [f"{c.number}:{c.name}" for c in failed]},
    )
    return report
