"""The registries of decisions: verdict rules, gate conditions, triage rules, and the one rule
matcher shared by the rules backend and triage; the verdict names its confidence level."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tunegate._matching import RuleMatcher
from tunegate._registries import NamedRegistry
from tunegate.config import RuleSpec, Workflow
from tunegate.diagnose import (
    FailureCase,
    GateEvidence,
    TriageCategory,
    TriageContext,
    decide_gate,
    gate_condition,
    gate_conditions,
    override_trend,
    registered_rules,
    suggest,
)
from tunegate.evaluate import (
    PairedLatency,
    VerdictEvidence,
    compare_runs,
    confidence_label,
    verdict_rule,
    verdict_rules,
)
from tunegate.evaluate._run import evaluation_metrics
from tunegate.metrics import Interval
from tunegate.models import RulesClassifier
from tunegate.records import EvalRun, EvalSuite, SuiteExample, SuiteSlice
from tunegate.report import comparison_html, run_html, verdict_markdown

# -- a small suite and two runs ----------------------------------------------------------------


def _suite(workflow: Workflow) -> EvalSuite:
    labels = workflow.label_names
    ex = [
        SuiteExample(id=f"{s.value}{i}", text=f"{s.value} text {i}", label=labels[i % 8], slice=s)
        for s, n in ((SuiteSlice.CORE, 120), (SuiteSlice.EDGE, 40), (SuiteSlice.PRESERVATION, 80))
        for i in range(n)
    ]
    return EvalSuite(name="registries", examples=ex).frozen()


def _run(suite: EvalSuite, workflow: Workflow, wrong: set[str]) -> EvalRun:
    labels = workflow.label_names
    k = len(labels)
    y = [labels.index(e.label) for e in suite.examples]
    c = 0.8
    proba = []
    for e, yi in zip(suite.examples, y, strict=True):
        row = [(1 - c) / (k - 1)] * k
        row[(yi + 1) % k if e.id in wrong else yi] = c
        proba.append(row)
    ids = [e.id for e in suite.examples]
    metrics, _ = evaluation_metrics(
        np.asarray(y, dtype=np.intp),
        np.asarray(proba, dtype=np.float64),
        [1.0] * len(y),
        suite,
        ids,
        labels,
        workflow,
        seed=0,
    )
    return EvalRun(
        model_version="m",
        suite_hash=suite.hash,
        labels=labels,
        metrics=metrics,
        example_ids=[e.id for e in suite.examples],
        y_true=y,
        proba=proba,
        latency_ms=[1.0] * len(y),
    )


@dataclass(frozen=True)
class _ProbeResult:
    accuracy: float


@dataclass(frozen=True)
class _Probe:
    """Stands in for a ProbeComparison (only the fields the rule reads)."""

    dataset: str
    before: _ProbeResult
    after: _ProbeResult
    drop: Interval
    confidence: float


def _with_confidence(workflow: Workflow, level: float) -> Workflow:
    policy = workflow.regression.model_copy(update={"confidence": level, "n_bootstrap": 200})
    return workflow.model_copy(update={"regression": policy})


# -- verdict rules -----------------------------------------------------------------------------


def test_verdict_rules_registered_in_policy_order() -> None:
    assert [r.name for r in verdict_rules()] == [
        "core_improvement",
        "preservation",
        "preservation_probe",
        "protected_fnr",
        "ece",
        "latency_p50",
        "robustness",
        "selective_risk",
        "oos_auto_rate",
    ]
    assert all(r.description for r in verdict_rules())


def test_duplicate_verdict_rule_refused() -> None:
    before = len(verdict_rules())
    with pytest.raises(ValueError, match="verdict rule named 'ece' is already registered"):
        verdict_rule("ece")(lambda ev: [])
    assert len(verdict_rules()) == before


def test_verdict_is_exactly_the_registered_rules_findings(workflow: Workflow) -> None:
    wf = _with_confidence(workflow, 0.95)
    suite = _suite(wf)
    base = _run(suite, wf, {f"core{i}" for i in range(30)})
    cand = _run(suite, wf, {f"core{i}" for i in range(10)})
    probe = _Probe(
        "banking77", _ProbeResult(0.9), _ProbeResult(0.89), Interval(0.01, -0.01, 0.03), 0.95
    )
    latency = PairedLatency(
        baseline_version="m",
        candidate_version="m",
        rounds=5,
        batch_size=16,
        n_texts=80,
        n_pairs=25,
        baseline_wall_ms=10.0,
        candidate_wall_ms=10.5,
        baseline_cpu_ms=9.0,
        candidate_cpu_ms=9.4,
        wall_ratio=Interval(1.05, 1.0, 1.1),
        cpu_ratio=Interval(1.04, 1.0, 1.1),
        confidence=0.95,
        seed=0,
        seconds=1.0,
    )
    cmp = compare_runs(base, cand, suite, wf, probe=probe, latency=latency)  # type: ignore[arg-type]
    evidence = VerdictEvidence(
        bootstrap=cmp.bootstrap,
        mcnemar=cmp.mcnemar,
        subset_sizes=cmp.subset_sizes,
        labels=cmp.labels,
        protected_labels=wf.protected_labels,
        policy=wf.regression,
        with_latency=True,
        probe=probe,  # type: ignore[arg-type]
        latency=latency,
    )
    by_rule = {r.name: r.fn(evidence) for r in verdict_rules()}
    assert [f for findings in by_rule.values() for f in findings] == cmp.verdict.rules
    # with a probe and latency every rule gives a finding; oos_auto_rate needs an
    # out-of-scope slice, which this suite does not have
    assert not by_rule.pop("oos_auto_rate")
    assert not by_rule.pop("robustness")  # the runs were not scored on a robustness slice
    assert all(by_rule.values()), "with a probe and latency every rule gives a finding"
    # every protected class configured in the workflow has its own finding
    assert [f.rule for f in by_rule["protected_fnr"]] == [
        f"protected_fnr:{label}" for label in wf.protected_labels
    ]
    assert wf.protected_labels


@pytest.mark.parametrize(("level", "shown"), [(0.9, "90%"), (0.975, "97.5%"), (0.95, "95%")])
def test_confidence_label(level: float, shown: str) -> None:
    assert confidence_label(level) == shown


def test_verdict_text_names_the_configured_confidence_level(workflow: Workflow) -> None:
    wf = _with_confidence(workflow, 0.90)
    suite = _suite(wf)
    base = _run(suite, wf, {f"core{i}" for i in range(30)} | {"preservation1"})
    cand = _run(suite, wf, {f"core{i}" for i in range(10)} | {"preservation2", "preservation3"})
    probe = _Probe(
        "banking77", _ProbeResult(0.9), _ProbeResult(0.89), Interval(0.01, -0.01, 0.03), 0.9
    )
    cmp = compare_runs(base, cand, suite, wf, probe=probe)  # type: ignore[arg-type]
    with_ci = [r.message for r in cmp.verdict.rules if " CI " in r.message]
    # core, preservation, probe, one per protected class, ece, selective risk (AURC and at
    # the baseline's coverage)
    assert len(with_ci) == 6 + len(wf.protected_labels)
    for message in with_ci:
        assert any(f"{sep}90% CI" in message for sep in ("(", ", ", "; ")), message
    assert not any("95%" in r.message for r in cmp.verdict.rules)
    html = comparison_html(cmp, base, cand, suite)
    assert "90% paired bootstrap CI" in html and "95%" not in html
    md = verdict_markdown(cmp.verdict, cmp)
    assert "[90% CI]" in md and "95%" not in md
    single = run_html(base, suite)
    assert "90% bootstrap CI" in single and "95%" not in single


# -- gate conditions ---------------------------------------------------------------------------


def test_gate_conditions_registered_by_number(workflow: Workflow) -> None:
    specs = gate_conditions()
    assert [(c.number, c.name) for c in specs] == [
        (1, "trend"),
        (2, "root_cause"),
        (3, "data"),
        (4, "instructions_tried"),
        (5, "baseline"),
    ]
    assert all(c.description for c in specs)
    report = decide_gate(GateEvidence(trend=override_trend([], [], workflow)), workflow)
    assert [(c.number, c.name) for c in report.conditions] == [(c.number, c.name) for c in specs]


def test_duplicate_gate_condition_refused() -> None:
    with pytest.raises(ValueError, match="gate condition named 'data' is already registered"):
        gate_condition(6, "data")(lambda ev, wf: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="numbered 3 is already registered"):
        gate_condition(3, "another")(lambda ev, wf: None)  # type: ignore[arg-type,return-value]
    assert len(gate_conditions()) == 5


# -- triage rules ------------------------------------------------------------------------------


def test_triage_rules_registered() -> None:
    assert {r.name: r.category for r in registered_rules()} == {
        "unparseable_output": TriageCategory.FORMATTING_FAILURE,
        "tool_error": TriageCategory.TOOL_USE_FAILURE,
        "contradicts_rule": TriageCategory.POLICY_VIOLATION,
        "ambiguous_input": TriageCategory.PROMPT_MISUNDERSTANDING,
        "changed_fact": TriageCategory.STALE_FACTS,
        "unknown_vocabulary": TriageCategory.MISSING_FACTS,
    }


def test_named_registry_refuses_duplicates_and_keeps_order() -> None:
    reg: NamedRegistry[int] = NamedRegistry("thing")
    reg.add("b", 2)
    reg.add("a", 1)
    with pytest.raises(ValueError, match="a thing named 'b' is already registered"):
        reg.add("b", 3)
    with pytest.raises(ValueError, match="non-empty name"):
        reg.add("", 4)
    assert list(reg) == [2, 1] and list(reg.view()) == ["b", "a"] and "a" in reg
    with pytest.raises(TypeError):
        reg.view()["c"] = 5  # type: ignore[index]


# -- one rule matcher --------------------------------------------------------------------------

RULES = [
    RuleSpec(
        name="mfa_lockout",
        label="security_incident",
        all_of=[r"\blocked\b"],
        any_of=["mfa", "authenticator"],
        none_of=["forgot"],
    ),
    RuleSpec(name="vpn", label="vpn_issue", any_of=[r"\bvpn\b"]),
]
TEXTS = [
    "Locked out after MFA prompts",
    "locked out, forgot my password and the authenticator",
    "authenticator push, all fine",
    "VPN keeps dropping",
    "the vpnclient is slow",
    "printer jam",
]


def test_one_matcher_for_the_rules_backend_and_triage(workflow: Workflow) -> None:
    import tunegate.models._rules as rules_backend

    assert rules_backend.RuleMatcher is RuleMatcher
    backend = RulesClassifier(RULES, workflow.label_names)
    hits = backend.hits(TEXTS)
    fires = [next((r.name for r in RULES if RuleMatcher(r).fires(t)), None) for t in TEXTS]
    assert (
        [h.rule if h else None for h in hits]
        == fires
        == [
            "mfa_lockout",
            None,
            None,
            "vpn",
            None,
            None,
        ]
    )
    assert hits[0] is not None and hits[0].matched == ["Locked", "MFA"]
    # triage flags a policy violation exactly where the shared matcher fires
    ctx = TriageContext(labels=workflow.label_names, rules=RULES)
    cases = [
        FailureCase(id=f"f{i}", text=t, model_label="hardware", final_label="vpn_issue")
        for i, t in enumerate(TEXTS)
    ]
    flagged = [s.rule == "contradicts_rule" for s in suggest(cases, ctx)]
    assert flagged == [f is not None for f in fires]


def test_matcher_is_case_insensitive_and_reports_fragments() -> None:
    m = RuleMatcher(RULES[0])
    assert m.match("LOCKED after authenticator and MFA") == ["LOCKED", "MFA", "authenticator"]
    assert not m.fires("locked, forgot, mfa")
    assert [RuleMatcher(RULES[1]).fires(t) for t in ["VPN", "a vpn b", "vpns"]] == [
        True,
        True,
        False,
    ]
