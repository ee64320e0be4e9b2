"""Monitoring counts production tickets that match a known attack pattern (the robustness
slice's injected instructions), by pattern and period, and the review says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tunegate.config import Workflow
from tunegate.evaluate import PerturbationContext, perturb
from tunegate.monitor import attack_pattern_counts, run_monitor
from tunegate.records import Decision, Route, Ticket
from tunegate.report import monitor_review_markdown

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday: week 2026-W10


def _tickets(workflow: Workflow) -> list[Ticket]:
    ctx = PerturbationContext("vpn_issue", workflow.label_names)
    plain = [
        Ticket(
            id=f"t{i:02d}",
            text=f"The vpn drops every hour ({i}).",
            created_at=T0 + timedelta(hours=i),
        )
        for i in range(20)
    ]
    attacked = []
    for i, day in ((0, 1), (1, 8), (2, 9)):
        got = perturb("injection", "The vpn drops every hour.", ctx, seed=i, key="m")
        assert got is not None
        attacked.append(Ticket(id=f"a{i}", text=got.text, created_at=T0 + timedelta(days=day)))
    return plain + attacked


def test_attack_pattern_counts(workflow: Workflow) -> None:
    tickets = _tickets(workflow)
    found = attack_pattern_counts(tickets)
    assert (found.n_tickets, found.n_matched) == (23, 3)
    assert found.example_ids == ["a0", "a1", "a2"]
    assert found.by_period == {"2026-W10": 1, "2026-W11": 2}
    assert sum(found.by_pattern.values()) >= 3
    assert found.rate == 3 / 23
    assert attack_pattern_counts(tickets, period="month").by_period == {"2026-03": 3}
    assert attack_pattern_counts([]).to_dict()["rate"] == 0.0


def test_run_monitor_reports_attack_patterns(workflow: Workflow, tmp_path: Path) -> None:
    from tunegate.store import Store

    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    tickets = _tickets(workflow)
    store.add_tickets(tickets)
    k = len(workflow.label_names)
    store.add_decisions(
        Decision(
            ticket_id=t.id,
            model_version="m1",
            probabilities={n: 1.0 / k for n in workflow.label_names},
            label="vpn_issue",
            h_norm=1.0,
            route=Route.CLARIFY,
            created_at=t.created_at,
        )
        for t in tickets
    )
    result = run_monitor(store, workflow, drift=False)
    assert result.attack_patterns is not None and result.attack_patterns.n_matched == 3
    assert result.to_dict()["attack_patterns"]["n_matched"] == 3
    md = monitor_review_markdown(result)
    assert "## Attack patterns" in md
    assert "3 of 23 tickets (13.04%) match an injected-instruction pattern" in md
