"""The cheap fixes: missed-signal measurement and stored Attempts (fake champion, tiny encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests._tiny_models import make_tiny_encoder

from tunegate.config import Workflow
from tunegate.diagnose import (
    CheapFixComparison,
    choose_promotion,
    missed_signal_fix,
    parse_rules,
    recent_missed_signal_overrides,
    register_cheap_fix,
    try_instructions,
    try_retrieval,
    try_rules,
)
from tunegate.errors import InputError
from tunegate.models import load_model_version
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalSuite,
    Example,
    ModelKind,
    Override,
    ReasonCode,
    ReviewStatus,
    SuiteExample,
    SuiteSlice,
    Ticket,
    Verdict,
    VerdictOutcome,
)

MONDAY = datetime(2025, 3, 3, 9, tzinfo=UTC)
MFA = "authenticator push prompts I did not ask for, now locked out"


class KeywordChampion:
    """Calls everything with 'locked' account_unlock, 'printer' hardware, else email_issue."""

    version = "kw-1"

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        out = np.full((len(texts), len(self.labels)), 0.01)
        for i, t in enumerate(texts):
            name = (
                "account_unlock"
                if "locked" in t
                else "hardware"
                if "printer" in t
                else "email_issue"
            )
            out[i, self.labels.index(name)] = 1.0
        return out / out.sum(axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    from tunegate.store import Store

    s = Store(f"sqlite:///{tmp_path / 'a.db'}")
    tickets, overrides = [], []
    for i in range(30):
        at = MONDAY + timedelta(days=i)
        tickets.append(Ticket(id=f"m{i}", text=f"{MFA} {i}", created_at=at))
        overrides.append(
            Override(
                id=f"o{i}",
                ticket_id=f"m{i}",
                model_label="account_unlock",
                final_label="security_incident",
                reason_code=ReasonCode.R2,
                created_at=at,
            )
        )
    tickets.append(Ticket(id="old", text=f"{MFA} old", created_at=MONDAY - timedelta(weeks=20)))
    overrides.append(
        Override(
            id="o-old",
            ticket_id="old",
            model_label="account_unlock",
            final_label="security_incident",
            reason_code=ReasonCode.R2,
            created_at=MONDAY - timedelta(weeks=20),
        )
    )
    s.add_tickets(tickets)
    s.add_overrides(overrides)
    yield s
    s.close()


@pytest.fixture
def suite() -> EvalSuite:
    rows = [
        ("locked out after password attempts", "account_unlock"),
        ("printer jammed on floor 2", "hardware"),
        ("outlook mailbox full", "email_issue"),
        ("authenticator push prompts at 3am, locked", "security_incident"),
    ]
    examples = [
        SuiteExample(id=f"s{sl.value}{i}{j}", text=f"{t} {i}", label=y, slice=sl)
        for sl in SuiteSlice
        for i in range(5)
        for j, (t, y) in enumerate(rows)
    ]
    return EvalSuite(name="toy", examples=examples).frozen()


def test_missed_signal_fix_counts() -> None:
    labels = ["a", "b"]

    class Fixed:
        def __init__(self, picks: list[int]) -> None:
            self.labels, self.picks = labels, picks

        def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
            return np.eye(2)[self.picks]

    base, cand = Fixed([0, 0, 0, 1]), Fixed([1, 1, 0, 0])
    out = missed_signal_fix(base, cand, ["w", "x", "y", "z"], ["b", "b", "b", "b"])
    assert out == {
        "missed_signal_total": 4,
        "baseline_right": 1,
        "candidate_right": 2,
        "fixed": 2,
        "broken": 1,
        "fixed_share": pytest.approx(2 / 3),
    }
    assert missed_signal_fix(base, cand, [], [])["fixed_share"] is None


def test_recent_window(store: Any) -> None:
    recent = recent_missed_signal_overrides(store.overrides(), reason_code="R2", weeks=4)
    assert len(recent) == 28 and all(o.id != "o-old" for o in recent)  # (day 1, day 29]


def test_try_rules_fixes_the_missed_signal(
    store: Any, suite: EvalSuite, workflow: Workflow
) -> None:
    rules = """
- name: mfa_push_is_security
  label: security_incident
  all_of: ["\\\\bauthenticator\\\\b"]
  any_of: ["\\\\bpush\\\\b"]
"""
    champion = KeywordChampion(workflow.label_names)
    attempt = try_rules(workflow, rules, store, suite, champion=champion)
    assert attempt.kind == AttemptKind.RULES and attempt.verdict is not None
    d = attempt.details
    assert d["missed_signal_total"] == 28 and d["fixed"] == 28 and d["fixed_share"] == 1.0
    assert attempt.baseline_version == "kw-1"
    assert attempt.candidate_version.startswith("rules-") and "kw-1" in attempt.candidate_version
    [stored] = store.attempts()
    assert stored.id == attempt.id and stored.details["fixed_share"] == 1.0
    assert {r.id for r in store.eval_runs()} == {d["baseline_run"], d["candidate_run"]}


def test_parse_rules_errors(workflow: Workflow, store: Any, suite: EvalSuite) -> None:
    with pytest.raises(InputError, match="YAML list"):
        parse_rules("name: x")
    with pytest.raises(InputError, match="rule #1"):
        parse_rules("- {name: x, label: hardware}")
    assert (
        parse_rules(
            {"rules": [{"name": "x", "label": "hardware", "any_of": ["printer"]}]}["rules"]
        )[0].name
        == "x"
    )  # type: ignore[index]
    with pytest.raises(InputError, match="unknown label"):
        try_rules(
            workflow,
            "- {name: x, label: nope, any_of: [a]}",
            store,
            suite,
            champion=KeywordChampion(workflow.label_names),
        )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "enc")


def test_try_instructions_and_retrieval_store_attempts(
    store: Any, suite: EvalSuite, workflow: Workflow, tiny: str
) -> None:
    wf = workflow.model_copy(
        update={"model": workflow.model.model_copy(update={"encoder": tiny, "backend": "torch"})}
    )
    champion = KeywordChampion(wf.label_names)
    att = try_instructions(wf, "a new prompt about", store, suite, champion=champion)
    assert att.kind == AttemptKind.INSTRUCTIONS
    assert att.details["instructions"] == "a new prompt about"
    assert att.details["missed_signal_total"] == 28
    assert 0.0 <= att.details["fixed_share"] <= 1.0
    # the champion and the candidate were timed side by side, and the verdict judged that
    assert att.details["latency"]["n_pairs"] > 0 and att.details["latency"]["cpu_ratio"]
    assert att.verdict is not None
    assert "latency_p50" in {r.rule for r in att.verdict.rules}
    with pytest.raises(InputError, match="empty"):
        try_instructions(wf, "  ", store, suite, champion=champion)
    store.add_examples(
        [
            Example(
                text=f"{MFA} 3",
                label="security_incident",
                ticket_id="m3",
                review_status=ReviewStatus.REVIEWED,
            ),  # a measured ticket: left out
            *(
                Example(
                    text=f"printer {i} broken",
                    label="hardware",
                    review_status=ReviewStatus.REVIEWED,
                )
                for i in range(5)
            ),
            *(
                Example(
                    text=f"push prompts from authenticator {i}",
                    label="security_incident",
                    review_status=ReviewStatus.REVIEWED,
                )
                for i in range(5)
            ),
        ]
    )
    ret = try_retrieval(wf, store, suite, champion=champion, k=3)
    assert ret.kind == AttemptKind.RETRIEVAL and ret.details["examples"] == 10
    assert [a.kind for a in store.attempts()].count(AttemptKind.RETRIEVAL) == 1
    # the retrieval fix becomes a version over exactly the examples it was judged with: the
    # same model id, so its stored verdict is the one promotion reads
    mv = register_cheap_fix(store, wf, ret)
    assert mv.id == ret.candidate_version and mv.kind == ModelKind.RETRIEVAL
    assert len(mv.config["example_ids"]) == 10
    assert register_cheap_fix(store, wf, ret) == mv  # idempotent
    # later reviewed examples do not change the registered version
    store.add_examples(
        [Example(text="printer 99 broken", label="hardware", review_status=ReviewStatus.REVIEWED)]
    )
    assert load_model_version(mv, wf, store=store).version == mv.id
    # an instructions fix is a zero-shot version; a rules fix is not a version
    assert register_cheap_fix(store, wf, att).kind == ModelKind.ZERO_SHOT
    rules = try_rules(
        wf,
        [{"name": "mfa", "label": "security_incident", "all_of": ["authenticator"]}],
        store,
        suite,
        champion=champion,
        measure_latency=False,
    )
    with pytest.raises(InputError, match=r"tunegate\.yaml `rules:`"):
        register_cheap_fix(store, wf, rules)


def _verdict(outcome: VerdictOutcome) -> Verdict:
    return Verdict(
        outcome=outcome, baseline_run="b", candidate_run="c", rules=[], created_at=MONDAY
    )


def _versus(enough: bool, fix_outcome: VerdictOutcome) -> CheapFixComparison:
    fix = Attempt(
        kind=AttemptKind.RETRIEVAL,
        baseline_version="champ",
        candidate_version="knn-1",
        verdict=_verdict(fix_outcome),
    )
    return CheapFixComparison(fix, None, enough, "the comparison")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdict", "versus", "choice", "version"),
    [
        (VerdictOutcome.FAIL, None, "keep champion", None),
        (VerdictOutcome.INCONCLUSIVE, _versus(False, VerdictOutcome.PASS), "keep champion", None),
        (VerdictOutcome.PASS, None, "fine-tune", "lora-1"),
        (VerdictOutcome.PASS, _versus(False, VerdictOutcome.PASS), "fine-tune", "lora-1"),
        (VerdictOutcome.PASS, _versus(True, VerdictOutcome.PASS), "cheap fix", "knn-1"),
        (VerdictOutcome.PASS, _versus(True, VerdictOutcome.INCONCLUSIVE), "keep champion", None),
    ],
)
def test_the_fine_tune_must_beat_the_champion_and_the_best_cheap_fix(
    verdict: VerdictOutcome, versus: CheapFixComparison | None, choice: str, version: str | None
) -> None:
    picked = choose_promotion("lora-1", _verdict(verdict), versus)
    assert (picked.choice, picked.version) == (choice, version)
    assert (picked.cheap_fix is not None) == (choice == "cheap fix")
    assert picked.reason
