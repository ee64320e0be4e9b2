"""The five-condition gate over constructed evidence, and over a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tunegate.config import Workflow
from tunegate.diagnose import (
    GateEvidence,
    data_shortfalls,
    decide_gate,
    evaluate_gate,
    override_trend,
)
from tunegate.documents import Finding
from tunegate.records import (
    Attempt,
    AttemptKind,
    Decision,
    EvalRun,
    Example,
    Override,
    ReasonCode,
    ReviewStatus,
    Route,
    Verdict,
    VerdictOutcome,
)

MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)
CHAMP = "zs-champion"


def _records(counts: list[int]) -> tuple[list[Decision], list[Override]]:
    decisions, overrides = [], []
    for w, c in enumerate(counts):
        for i in range(60):
            at = MONDAY + timedelta(weeks=w, days=i % 7)
            tid = f"t{w}_{i}"
            decisions.append(
                Decision(
                    id=f"d{tid}",
                    ticket_id=tid,
                    model_version=CHAMP,
                    label="account_unlock",
                    probabilities={"account_unlock": 1},
                    h_norm=0,
                    route=Route.AUTO,
                    created_at=at,
                )
            )
            if i < c:
                overrides.append(
                    Override(
                        id=f"o{tid}",
                        ticket_id=tid,
                        model_label="account_unlock",
                        final_label="security_incident",
                        reason_code=ReasonCode.R2,
                        created_at=at,
                    )
                )
    return decisions, overrides


def _examples(workflow: Workflow) -> list[Example]:
    out = []
    for i in range(160):
        out.append(
            Example(
                text=f"authenticator push prompts I did not request {i}",
                label="security_incident",
                review_status=ReviewStatus.REVIEWED,
            )
        )
    for i in range(160):
        out.append(
            Example(
                text=f"locked out after wrong password {i}",
                label="account_unlock",
                review_status=ReviewStatus.REVIEWED,
            )
        )
    for i in range(60):
        out.append(
            Example(
                text=f"vpn drops after the mfa code {i}",
                label="vpn_issue",
                review_status=ReviewStatus.REVIEWED,
            )
        )
    return out


def _verdict(outcome: VerdictOutcome = VerdictOutcome.PASS) -> Verdict:
    return Verdict(outcome=outcome, baseline_run="r1", candidate_run="r2", rules=[])


def _attempt(
    share: float | None, outcome: VerdictOutcome = VerdictOutcome.PASS, at: datetime | None = None
) -> Attempt:
    details = {} if share is None else {"fixed_share": share, "missed_signal_total": 40}
    return Attempt(
        kind=AttemptKind.INSTRUCTIONS,
        baseline_version=CHAMP,
        candidate_version="zs-new",
        verdict=_verdict(outcome),
        details=details,
        created_at=at or MONDAY + timedelta(weeks=9),
    )


def _run() -> EvalRun:
    return EvalRun(
        model_version=CHAMP,
        suite_hash="abc" * 10,
        labels=["a", "b"],
        metrics={},
        example_ids=[],
        y_true=[],
        proba=[],
    )


def _evidence(workflow: Workflow, counts: list[int], **kw: object) -> GateEvidence:
    decisions, overrides = _records(counts)
    base: dict[str, object] = {
        "trend": override_trend(overrides, decisions, workflow),
        "findings": [
            (
                "fnd_1",
                {
                    "confirmed": True,
                    "label": "security_incident",
                    "tokens": [{"term": "authenticator"}],
                },
            )
        ],
        "reviewed_examples": _examples(workflow),
        "attempts": [_attempt(0.1)],
        "champion": CHAMP,
        "eval_runs": [_run()],
    }
    base.update(kw)
    return GateEvidence(**base)  # type: ignore[arg-type]


RISING = [3, 2, 3, 2, 3, 2, 10, 14, 17, 21]


def test_open_when_all_five_hold(workflow: Workflow) -> None:
    report = decide_gate(_evidence(workflow, RISING), workflow)
    assert report.open and report.exit_code == 0 and report.fine_tuning_needed is True
    assert [c.passed for c in report.conditions] == [True] * 5
    assert [c.number for c in report.conditions] == [1, 2, 3, 4, 5]
    assert all(c.next_step for c in report.conditions)


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"counts": [30, 25, 20, 12, 8, 5, 4]}, "trend"),
        ({"counts": [3, 2, 3, 2, 3, 2]}, "trend"),
        ({"findings": []}, "root_cause"),
        ({"findings": [("fnd_1", {"confirmed": False})]}, "root_cause"),
        ({"reviewed_examples": []}, "data"),
        ({"attempts": []}, "instructions_tried"),
        ({"attempts": [_attempt(None)]}, "instructions_tried"),
        ({"eval_runs": []}, "baseline"),
    ],
)
def test_each_condition_can_close_the_gate(
    workflow: Workflow, change: dict[str, object], failed: str
) -> None:
    counts = change.pop("counts", RISING)
    report = decide_gate(_evidence(workflow, counts, **change), workflow)  # type: ignore[arg-type]
    assert not report.open and report.exit_code == 1
    assert [c.name for c in report.conditions if not c.passed] == [failed]
    assert failed in report.message


def test_unconfirmed_finding_names_the_confirm_command(workflow: Workflow) -> None:
    ev = _evidence(workflow, RISING, findings=[("fnd_9", {"confirmed": False})])
    cond = decide_gate(ev, workflow).conditions[1]
    assert "tunegate attribute --confirm fnd_9" in cond.next_step


def test_instruction_fix_boundary_and_not_needed(workflow: Workflow) -> None:
    threshold = workflow.gate.instruction_fix_success
    fixed = decide_gate(_evidence(workflow, RISING, attempts=[_attempt(threshold)]), workflow)
    assert not fixed.open and fixed.fine_tuning_needed is False
    assert "not needed" in fixed.message and "not needed" in fixed.conditions[3].summary
    almost = decide_gate(
        _evidence(workflow, RISING, attempts=[_attempt(threshold - 0.01)]), workflow
    )
    assert almost.open
    # a fix that breaks the suite is not a fix
    broke = decide_gate(
        _evidence(workflow, RISING, attempts=[_attempt(0.9, VerdictOutcome.FAIL)]), workflow
    )
    assert broke.open and "verdict failed" in broke.conditions[3].summary


def test_latest_instruction_attempt_counts(workflow: Workflow) -> None:
    old = _attempt(0.1, at=MONDAY)
    new = _attempt(0.8, at=MONDAY + timedelta(weeks=10))
    assert (
        decide_gate(_evidence(workflow, RISING, attempts=[old, new]), workflow).fine_tuning_needed
        is False
    )
    other_kind = Attempt(
        kind=AttemptKind.RULES,
        baseline_version=CHAMP,
        candidate_version="r",
        details={"fixed_share": 0.1},
    )
    report = decide_gate(_evidence(workflow, RISING, attempts=[other_kind]), workflow)
    assert not report.conditions[3].passed


def test_data_targets_are_checked(workflow: Workflow) -> None:
    exs = _examples(workflow)
    assert data_shortfalls(exs, workflow) == []
    fewer = [e for e in exs if e.label != "vpn_issue"]
    assert data_shortfalls(fewer, workflow) == [
        {"name": "mfa_vpn_issues", "label": "vpn_issue", "have": 0, "need": 50}
    ]
    report = decide_gate(_evidence(workflow, RISING, reviewed_examples=fewer), workflow)
    assert "mfa_vpn_issues: 0/50" in report.conditions[2].summary
    pending = [e.model_copy(update={"review_status": ReviewStatus.PENDING}) for e in exs]
    assert (
        not decide_gate(_evidence(workflow, RISING, reviewed_examples=pending), workflow)
        .conditions[2]
        .passed
    )


def test_baseline_falls_back_to_the_attempts_baseline(workflow: Workflow) -> None:
    report = decide_gate(_evidence(workflow, RISING, champion=None), workflow)
    assert report.conditions[4].passed
    report = decide_gate(_evidence(workflow, RISING, champion=None, attempts=[]), workflow)
    assert "no champion registered" in report.conditions[4].summary


def test_evaluate_gate_over_a_store(tmp_path: Path, workflow: Workflow) -> None:
    from tunegate.records import ModelKind, ModelStatus, ModelVersion, Ticket
    from tunegate.store import Store

    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    decisions, overrides = _records(RISING)
    store.add_tickets(
        Ticket(id=d.ticket_id, text=f"ticket {d.ticket_id}", created_at=d.created_at)
        for d in decisions
    )
    store.add_decisions(decisions)
    store.add_overrides(overrides)
    store.add_examples(_examples(workflow))
    store.save_model_version(
        ModelVersion(id=CHAMP, kind=ModelKind.ZERO_SHOT, status=ModelStatus.CHAMPION)
    )
    store.set_alias("champion", CHAMP, actor="test")
    store.save_eval_run(_run())
    store.documents(Finding).put(
        "fnd_1", Finding(id="fnd_1", reason_code="R2", label="security_incident")
    )
    report = evaluate_gate(store, workflow)
    assert [c.name for c in report.conditions if not c.passed] == [
        "root_cause",
        "instructions_tried",
    ]
    from tunegate.diagnose import confirm_finding

    confirm_finding(store, "fnd_1", reviewer="lead")
    store.save_attempt(_attempt(0.2))
    assert evaluate_gate(store, workflow).open
    store.save_attempt(_attempt(0.7, at=MONDAY + timedelta(weeks=11)))
    report = evaluate_gate(store, workflow)
    assert not report.open and report.fine_tuning_needed is False
    store.close()


def test_a_failed_instructions_attempt_without_recent_overrides_counts_as_tried(
    workflow: Workflow,
) -> None:
    """Condition (4) is "tried and did not fix it: fixed too little, or its verdict failed";
    with no missed-signal overrides to measure, a failed verdict alone must satisfy it."""
    failed = decide_gate(
        _evidence(workflow, RISING, attempts=[_attempt(None, VerdictOutcome.FAIL)]), workflow
    ).conditions[3]
    assert failed.passed and "verdict failed" in failed.summary
    unmeasured = decide_gate(
        _evidence(workflow, RISING, attempts=[_attempt(None, VerdictOutcome.PASS)]), workflow
    ).conditions[3]
    assert not unmeasured.passed
    assert "no missed-signal (R2) overrides" in unmeasured.summary
    assert "details.fixed_share" not in unmeasured.summary
