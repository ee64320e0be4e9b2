"""Error triage: suggestion rules, the confirm round trip, recommendations at each threshold."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tunegate.config import RuleSpec, TriagePolicy, Workflow
from tunegate.diagnose import (
    FailureCase,
    TriageCategory,
    TriageContext,
    confirm_triage,
    confirmed_triage,
    export_triage,
    import_triage,
    recommend,
    registered_rules,
    suggest,
    triage_rule,
)
from tunegate.documents import TriageLabel
from tunegate.errors import InputError
from tunegate.store import Store

LABELS = ["account_unlock", "security_incident", "hardware", "access_request"]


def _case(
    text: str,
    model: str | None = "account_unlock",
    final: str = "security_incident",
    code: str | None = "R2",
    **meta: object,
) -> FailureCase:
    return FailureCase(
        id=f"f{abs(hash((text, model, code))) % 10**8}",
        text=text,
        model_label=model,
        final_label=final,
        reason_code=code,
        metadata=dict(meta),
    )


@pytest.fixture
def ctx() -> TriageContext:
    build = ["my account is locked after too many attempts"] * 10 + [
        "laptop screen broken",
        "need access to the finance share",
        "running windows 10",
    ] * 5
    recent = (
        ["my account is locked"] * 12
        + ["laptop screen broken"] * 60
        + ["need access to the finance share"] * 3
    )
    failures = ["authenticator push prompts, locked out"] * 4
    rule = RuleSpec(
        name="contractor_lockout",
        label="access_request",
        all_of=[r"\bcontractor\b"],
        any_of=[r"\blocked\b"],
    )
    return TriageContext.build(
        LABELS, build_texts=build, recent_texts=recent, failure_texts=failures, rules=[rule]
    )


@pytest.mark.parametrize(
    ("case", "category", "rule"),
    [
        (_case("whatever", model="ACCOUNT UNLOCK!!"), "formatting_failure", "unparseable_output"),
        (_case("whatever", model=None), "formatting_failure", "unparseable_output"),
        (_case("lookup failed", tool_error="directory timeout"), "tool_use_failure", "tool_error"),
        (_case("contractor here, account locked"), "policy_violation", "contradicts_rule"),
        (_case("it does not work", code="R1"), "prompt_misunderstanding", "ambiguous_input"),
        (_case("laptop screen broken again"), "stale_facts", "changed_fact"),
        (_case("upgraded to windows 11 and now locked"), "stale_facts", "changed_fact"),
        (_case("authenticator push prompts all night"), "missing_facts", "unknown_vocabulary"),
        (_case("my account is locked after attempts"), "reasoning_failure", "fallback"),
    ],
)
def test_each_suggestion_rule(
    ctx: TriageContext, case: FailureCase, category: str, rule: str
) -> None:
    [s] = suggest([case], ctx)
    assert (s.category.value, s.rule) == (category, rule)
    assert s.evidence


def test_rule_that_agrees_with_the_model_is_no_violation(ctx: TriageContext) -> None:
    [s] = suggest(
        [_case("contractor here, account locked", model="access_request", final="hardware")], ctx
    )
    assert s.category != TriageCategory.POLICY_VIOLATION


def test_registry_order_and_duplicates() -> None:
    names = [r.name for r in registered_rules()]
    assert names[0] == "unparseable_output" and names[-1] == "unknown_vocabulary"
    with pytest.raises(ValueError, match="already registered"):
        triage_rule("tool_error", TriageCategory.TOOL_USE_FAILURE, priority=1)(lambda c, x: None)


def test_context_build_recurrence_and_shift(ctx: TriageContext) -> None:
    assert {"authenticator", "push", "prompts"} <= ctx.recurring_unknown
    assert "locked" not in ctx.recurring_unknown  # in the build data
    assert "laptop" in ctx.shifted_terms and ctx.shifted_terms["laptop"] > 3


class MemoryStore(Store):
    """An in-memory store that also keeps the audit entries in a list."""

    def __init__(self) -> None:
        super().__init__("sqlite://")
        self.log: list[tuple[str, str, dict[str, Any]]] = []

    def audit(self, action: str, actor: str, details: dict[str, Any]) -> None:
        self.log.append((action, actor, details))
        super().audit(action, actor, details)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_file_round_trip(tmp_path: Path, ctx: TriageContext, suffix: str) -> None:
    cases = [
        _case("authenticator push prompts all night"),
        _case("it fails", code="R1"),
        _case("my account is locked after attempts"),
    ]
    path = tmp_path / f"triage{suffix}"
    assert export_triage(path, cases, suggest(cases, ctx)) == 3
    if suffix == ".csv":
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        rows[0]["category"] = rows[0]["suggested_category"]  # accept
        rows[1]["category"] = "reasoning_failure"  # correct
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows[0]["category"] = rows[0]["suggested_category"]
        rows[1]["category"] = "reasoning_failure"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = MemoryStore()
    report = import_triage(path, store, reviewer="ana")
    assert (report.confirmed, report.corrected, report.skipped) == (2, 1, 1)
    assert confirmed_triage(store) == {
        cases[0].id: "missing_facts",
        cases[1].id: "reasoning_failure",
    }
    assert store.log[-1][0] == "triage.import"


def test_import_reports_every_bad_line_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "failure_id,category\nf1,missing_facts\nf2,nonsense\n,policy_violation\nf1,stale_facts\n",
        encoding="utf-8",
    )
    store = MemoryStore()
    with pytest.raises(InputError) as exc:
        import_triage(path, store)
    msg = str(exc.value)
    assert f"{path}:3: category 'nonsense'" in msg
    assert f"{path}:4: empty failure_id" in msg
    assert f"{path}:5: failure_id 'f1' repeats line 2" in msg
    assert store.documents(TriageLabel).items() == []
    bad_json = tmp_path / "t.jsonl"
    bad_json.write_text('{"failure_id": "a", "category": "missing_facts"}\n{oops\n')
    with pytest.raises(InputError, match=r"t.jsonl:2: not valid JSON"):
        import_triage(bad_json, store)
    with pytest.raises(InputError, match="missing column"):
        (tmp_path / "n.csv").write_text("id,cat\n1,2\n")
        import_triage(tmp_path / "n.csv", store)
    with pytest.raises(InputError, match="unknown failure_id"):
        (tmp_path / "ok.csv").write_text("failure_id,category\nzz,missing_facts\n")
        import_triage(tmp_path / "ok.csv", store, known_ids={"f1"})


def test_confirm_one(tmp_path: Path) -> None:
    store = MemoryStore()
    payload = confirm_triage(store, "ovr_1", "Policy_Violation", reviewer="bo")
    assert payload["category"] == "policy_violation" and payload["confirmed"]
    assert confirmed_triage(store) == {"ovr_1": "policy_violation"}
    with pytest.raises(InputError, match="not one of"):
        confirm_triage(store, "ovr_1", "vibes")


def _mix(n: int, **shares: int) -> list[str]:
    out = [c for c, k in shares.items() for _ in range(k)]
    return out + ["reasoning_failure"] * (n - len(out))


POLICY = TriagePolicy()  # min 200; facts > .40; policy > .25; formatting > .5


def test_insufficient_data_says_how_many_more() -> None:
    r = recommend(_mix(150), POLICY)
    assert r.action == "insufficient_data" and r.needed == 50
    assert "triage 50 more" in r.reasons[0]
    assert recommend(_mix(199), POLICY).needed == 1
    assert recommend(_mix(200), POLICY).action != "insufficient_data"


@pytest.mark.parametrize(
    ("mix", "action"),
    [
        ({"missing_facts": 40, "stale_facts": 40}, "instructions"),  # exactly 40%: not more
        ({"missing_facts": 41, "stale_facts": 40}, "retrieval"),  # 40.5%
        ({"stale_facts": 81}, "retrieval"),
        ({"policy_violation": 50}, "instructions"),  # exactly 25%
        ({"policy_violation": 51}, "rules"),  # 25.5%
        ({"formatting_failure": 100}, "instructions"),  # exactly 50%
        ({"formatting_failure": 101}, "constrained_output"),  # 50.5%
    ],
)
def test_thresholds_at_the_boundary(mix: dict[str, int], action: str) -> None:
    assert recommend(_mix(200, **mix), POLICY).action == action


def test_several_crossed_the_largest_leads() -> None:
    r = recommend(_mix(200, missing_facts=90, policy_violation=60), POLICY)
    assert r.action == "retrieval" and r.also == ["rules"] and len(r.reasons) == 2


def test_fine_tune_only_for_stable_repetitive_reasoning() -> None:
    cats = _mix(200, missing_facts=20)
    assert recommend(cats, POLICY, recurring_share=0.8, trend_stable=True).action == "fine_tune"
    assert recommend(cats, POLICY, recurring_share=0.5, trend_stable=True).action == "fine_tune"
    assert recommend(cats, POLICY, recurring_share=0.49, trend_stable=True).action == "instructions"
    assert recommend(cats, POLICY, recurring_share=0.8, trend_stable=False).action == "instructions"
    assert recommend(cats, POLICY).action == "instructions"
    # reasoning is not the largest category
    cats = _mix(200, prompt_misunderstanding=120)
    assert recommend(cats, POLICY, recurring_share=0.9, trend_stable=True).action == "instructions"


def test_thresholds_come_from_the_policy(workflow: Workflow) -> None:
    strict = TriagePolicy(min_failures=10, facts_share=0.1)
    assert recommend(_mix(10, missing_facts=2), strict).action == "retrieval"
    assert recommend(_mix(10, missing_facts=1), strict).action == "instructions"
    assert workflow.triage.min_failures == 200
