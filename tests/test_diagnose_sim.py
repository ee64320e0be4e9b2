"""Diagnosis on the MFA-rollout simulation (real weights; slow).

Done-when of issue 6: before the rollout the gate stays closed (no trend); after six or more
weeks it opens only once an instruction attempt is recorded and has not fixed the problem; if
the instruction attempt does fix it, the gate says fine-tuning is not needed. Attribution
surfaces the planted signal (authenticator / MFA / push terms for security_incident).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.documents import Finding, FindingTerm
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalSuite,
    ModelKind,
    ModelStatus,
    ModelVersion,
    Verdict,
    VerdictOutcome,
)

pytestmark = pytest.mark.slow

# words of the simulation's MFA security-incident phrasings (tunegate/simulate/phrasing.yaml)
PLANTED = {"authenticator", "mfa", "2fa", "push", "pushes", "prompt", "prompts", "approve",
           "approval", "notification", "notifications", "duo", "okta", "verify"}


# words of a lockout (the context the model routes as account_unlock)
LOCKOUT = {"locked", "locked out", "lockout", "unlock"}


def _simulated_store(folder: Any, seed: int) -> dict[str, Any]:
    from tunegate.simulate import SimConfig, simulate
    from tunegate.store import Store

    workflow = parse_workflow(starter_yaml())
    config = SimConfig(weeks=12, rollout_week=6, seed=seed)
    result = simulate(config, folder / "out", workflow=workflow)
    store = Store(f"sqlite:///{folder / 'sim.db'}")
    store.add_tickets(s.ticket for s in result.production)
    store.add_decisions(result.decisions)
    store.add_overrides(result.overrides)
    store.add_examples(result.history_examples)
    store.add_examples(result.confirmations)
    store.save_suite(EvalSuite(name="sim", examples=result.eval_examples).frozen())
    start = datetime(config.start_date.year, config.start_date.month, config.start_date.day,
                     tzinfo=UTC)
    return {"store": store, "workflow": workflow, "result": result, "start": start,
            "rollout": start + timedelta(weeks=config.rollout_week)}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, encoder_path: str) -> Iterator[dict[str, Any]]:
    built = _simulated_store(tmp_path_factory.mktemp("sim"), 7)
    yield built
    built["store"].close()


def _failed(report: Any) -> list[str]:
    return [c.name for c in report.conditions if not c.passed]


def test_gate_on_the_simulation(sim: dict[str, Any]) -> None:
    from tunegate.diagnose import confirm_finding, evaluate_gate, try_instructions

    store, workflow = sim["store"], sim["workflow"]
    wf: Workflow = workflow
    champion = sim["result"].champion_version
    store.save_model_version(ModelVersion(
        id=champion, kind=ModelKind.ZERO_SHOT, status=ModelStatus.CHAMPION,
        config={"instructions": wf.instructions}))
    store.set_alias("champion", champion, actor="test", reason="pre-rollout champion")
    store.documents(Finding).put("fnd_sim", Finding(
        id="fnd_sim", reason_code="R2", label="security_incident",
        tokens=[FindingTerm(term="authenticator", label="security_incident", z=3.0,
                            overrides_with=5, reference_with=0, attr_analyst=0.01,
                            attr_predicted=0.02, margin=-0.01, cue="misleading")]))
    confirm_finding(store, "fnd_sim", reviewer="lead")

    # after the rollout, with everything but the instruction attempt: closed on (4) and (5)
    report = evaluate_gate(store, wf)
    assert not report.open
    assert _failed(report) == ["instructions_tried", "baseline"]
    assert report.conditions[0].passed  # the R2 trend is there

    # a real instruction attempt: evaluated on the suite and on recent R2 overrides
    attempt = try_instructions(
        wf, "IT service desk ticket; unexpected MFA push prompts mean a security incident; "
            "ticket about", store, store.suites()[0])
    share = attempt.details["fixed_share"]
    assert attempt.details["missed_signal_total"] > 50
    assert share is not None and share < wf.gate.instruction_fix_success
    report = evaluate_gate(store, wf)
    assert report.open, report.message
    assert report.fine_tuning_needed is True

    # before the rollout: no trend, so closed even with the finding, the attempt and the
    # baseline present (the MFA data targets cannot be met yet either: no MFA tickets)
    before = evaluate_gate(store, wf, as_of=sim["rollout"])
    assert not before.open and _failed(before) == ["trend", "data"]
    assert "standing error floor" in before.conditions[0].summary

    # an instruction attempt that does fix the problem: fine-tuning is not needed
    verdict = Verdict(outcome=VerdictOutcome.PASS, baseline_run="b", candidate_run="c", rules=[])
    store.save_attempt(Attempt(
        kind=AttemptKind.INSTRUCTIONS, baseline_version=champion, candidate_version="zs-better",
        verdict=verdict, details={"fixed_share": 0.8, "missed_signal_total": 120},
        created_at=attempt.created_at + timedelta(minutes=1)))
    fixed = evaluate_gate(store, wf)
    assert not fixed.open and fixed.fine_tuning_needed is False
    assert "not needed" in fixed.message


def test_patterns_and_triage_on_the_simulation(sim: dict[str, Any]) -> None:
    from tunegate.diagnose import (
        failures_from_store,
        patterns_from_store,
        suggest,
        triage_context_from_store,
    )

    store, wf = sim["store"], sim["workflow"]
    found = patterns_from_store(store, wf, top=30)
    names = {g for p in found for g in p.ngram.split()}
    assert len(names & PLANTED) >= 2, names
    top_pair = found[0].label_pairs[0]
    assert top_pair[:2] == ("account_unlock", "security_incident")
    cases = failures_from_store(store)
    ctx = triage_context_from_store(store, wf, cases)
    assert "authenticator" in ctx.recurring_unknown  # absent from the pre-rollout history
    cats = {s.category.value for s in suggest(cases, ctx)}
    assert {"missing_facts", "prompt_misunderstanding", "reasoning_failure"} <= cats


def test_attribution_surfaces_the_planted_signal(sim: dict[str, Any]) -> None:
    from tunegate.diagnose import attribute_overrides

    store, wf = sim["store"], sim["workflow"]
    findings = attribute_overrides(store, wf, method="occlusion", max_per_side=100,
                                   reference_attributed=30)
    assert findings and findings[0]["label"] == "security_incident"
    top = findings[0]
    assert top["model_labels"].get("account_unlock", 0) >= top["n_overrides"] / 2
    terms = [t["term"] for t in top["tokens"]]
    assert len(set(terms) & PLANTED) >= 2, terms
    stored = store.documents(Finding).get(top["id"])
    assert stored is not None and stored.confirmed is False
    # the monitor's next gap reads the same Finding documents (it once read another kind)
    from tunegate.monitor import next_gap_from_store

    gap = next_gap_from_store(store, wf, model_version=sim["result"].champion_version)
    assert set(gap.attribution) & PLANTED, gap.attribution


def _check_contrastive_finding(store: Any, wf: Workflow) -> dict[str, Any]:
    """The top contrastive finding: account_unlock tickets moved to security_incident. Its top
    term is the workflow's ``mfa_related`` slice (the MFA/authenticator family), scored as a
    term and ranked by the overridden tickets it accounts for beyond the contrast rate; a pair
    joining a word of the planted MFA phrasings with a lockout word is among its top ten."""
    from tunegate.diagnose import confirm_finding, contrast_overrides, evaluate_gate

    findings = contrast_overrides(store, wf, seed=3)
    top = findings[0]
    assert (top["predicted_label"], top["label"]) == ("account_unlock", "security_incident")
    first = top["tokens"][0]
    assert (first["term"], first["kind"]) == ("[mfa_related]", "slice"), top["tokens"][:3]
    n_o, n_c = top["n_overrides"], top["n_reference"]
    # most of the overrides, against a minority of the correctly handled tickets
    assert first["overrides_with"] >= 0.6 * n_o and first["reference_with"] <= 0.3 * n_c, first
    assert first["q_value"] < 1e-20
    assert first["excess"] == pytest.approx(
        first["overrides_with"] - n_o * first["reference_with"] / n_c
    )
    assert all(t["excess"] < first["excess"] for t in top["tokens"][1:])
    pairs = [t for t in top["tokens"][:10] if t["kind"] == "pair"]
    joined = [t for t in pairs if set(t["parts"]) & PLANTED and set(t["parts"]) & LOCKOUT]
    assert joined, [t["term"] for t in top["tokens"][:10]]
    assert joined[0]["overrides_with"] >= 20 and joined[0]["reference_with"] <= 5, joined[0]
    assert all(e["ticket_id"] for e in top["examples"])
    # the same seed, the same finding (deterministic)
    again = contrast_overrides(store, wf, seed=3, save=False)[0]
    assert [t["term"] for t in again["tokens"]] == [t["term"] for t in top["tokens"]]
    # confirmed, the gate's condition 2 names the slice readably, with its counts
    confirm_finding(store, top["id"], reviewer="lead")
    summary = evaluate_gate(store, wf).conditions[1].summary
    want = (
        f"mfa_related (slice) ({first['overrides_with']} of {n_o} vs "
        f"{first['reference_with']} of {n_c})"
    )
    assert want in summary, summary
    return top


def test_contrastive_finding_names_mfa_with_lockout(sim: dict[str, Any]) -> None:
    _check_contrastive_finding(sim["store"], sim["workflow"])


@pytest.mark.parametrize("seed", [11, 23])
def test_contrastive_finding_on_more_seeds(seed: int, tmp_path: Any, encoder_path: str) -> None:
    built = _simulated_store(tmp_path, seed)
    try:
        _check_contrastive_finding(built["store"], built["workflow"])
    finally:
        built["store"].close()
