"""Diagnosis of generative workflows: triage from evidence, the recommendation's thresholds,
the cheap fixes as Attempts and the generative gate (docs/diagnosis.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tunegate.evaluate as tg_evaluate
import tunegate.generative as tg_generative
from tunegate.config import Workflow
from tunegate.diagnose import (
    CHEAP_FIXES,
    FIXES_FOR_ACTION,
    GenerativeFailure,
    GenerativeGateEvidence,
    GenerativeTriage,
    TriageCategory,
    apply_change,
    change_kind,
    collect_generative_evidence,
    decide_generative_gate,
    generative_gate,
    generative_triage_rules,
    recommend_generative,
    triage_generative,
    try_generative_fix,
)
from tunegate.documents import GenerativeExampleDocument, GenerativeRunDocument
from tunegate.errors import InputError
from tunegate.evaluate import save_generative_suite
from tunegate.kb import KbChangeRate
from tunegate.records import (
    Attempt,
    AttemptKind,
    DocumentRef,
    ExampleScore,
    GenerativeExample,
    GenerativeOutput,
    GenerativeRun,
    GenerativeSuite,
    GenerativeSuiteExample,
    GeneratorConfig,
    ModelKind,
    ModelVersion,
    ReviewStatus,
    ToolCall,
    Verdict,
    VerdictOutcome,
    content_hash,
)
from tunegate.store import Store

TOOLS = [
    {
        "name": "reset_password",
        "description": "Reset a user's password",
        "parameters": {
            "type": "object",
            "properties": {"user": {"type": "string"}},
            "required": ["user"],
        },
    },
    {"name": "open_ticket", "description": "Open a ticket", "parameters": {"type": "object"}},
]


def answer_workflow(**extra: Any) -> Workflow:
    return Workflow.model_validate({"name": "kb", "kind": "answer", **extra})


def tool_workflow(**extra: Any) -> Workflow:
    return Workflow.model_validate({"name": "it", "kind": "tool_call", "tools": TOOLS, **extra})


# -- triage ------------------------------------------------------------------------------------


def _case(
    eid: str,
    *,
    kind: str = "answer",
    score: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    example: dict[str, Any] | None = None,
) -> tuple[GenerativeSuiteExample, GenerativeOutput, ExampleScore]:
    ex_fields: dict[str, Any] = {"id": eid, "kind": kind, "input": f"question {eid}"}
    if kind == "answer":
        ex_fields.update(reference="fifteen minutes", gold_documents=[{"id": "lockout"}])
    ex_fields.update(example or {})
    ex = GenerativeSuiteExample.model_validate(ex_fields)
    out = GenerativeOutput.model_validate(
        {"example_id": eid, "model_version": "gen-a", "kind": kind, **(output or {})}
    )
    sc = ExampleScore.model_validate(
        {
            "example_id": eid,
            "kind": kind,
            "slice": ex.slice,
            "tags": ex.tags,
            "answerable": ex.answerable,
            "gold": [g.id for g in ex.gold_documents],
            **(score or {}),
        }
    )
    return ex, out, sc


def _run(
    cases: list[tuple[GenerativeSuiteExample, GenerativeOutput, ExampleScore]],
    kind: str = "answer",
) -> tuple[GenerativeRun, GenerativeSuite]:
    suite = GenerativeSuite(name="s", kind=kind, examples=[c[0] for c in cases]).frozen()
    run = GenerativeRun(
        model_version="gen-a",
        suite_name="s",
        suite_hash=suite.hash,
        kind=kind,
        outputs=[c[1] for c in cases],
        scores=[c[2] for c in cases],
    )
    return run, suite


def test_rules_are_checked_in_the_documented_precedence() -> None:
    assert [(r.priority, r.category.value) for r in generative_triage_rules()] == [
        (10, "formatting_failure"),
        (20, "tool_use_failure"),
        (30, "stale_facts"),
        (40, "missing_facts"),
        (50, "policy_violation"),
        (60, "reasoning_failure"),
        (70, "prompt_misunderstanding"),
    ]


def test_answer_triage_one_case_per_category() -> None:
    retrieved = [
        {"doc_id": "lockout", "version": "1", "text": "...", "stale": True, "current_version": "2"}
    ]
    cases = [
        _case("ok", score={"correct": True, "retrieved_gold": True}),
        _case(
            "fmt",
            score={"format_valid": False, "evidence": "'answer' is a required property"},
        ),
        _case(
            "stale",
            output={
                "answer": "Accounts lock for 30 minutes.",
                "cited": [{"id": "lockout", "version": "1"}],
                "metadata": {"retrieved": retrieved},
            },
            example={"asked_at": datetime(2024, 6, 1, tzinfo=UTC)},
            score={"retrieved_gold": True},
        ),
        _case("missing", score={"retrieved_gold": False}),
        _case(
            "policy",
            output={"answer": "Your password is hunter2."},
            example={"checks": [{"type": "icontains", "value": "password is", "negate": True}]},
            score={"retrieved_gold": True},
        ),
        _case(
            "unanswerable",
            example={"answerable": False, "reference": None, "gold_documents": []},
            output={"answer": "It is 42."},
        ),
        _case(
            "numbers",
            example={"reference": "42"},
            output={"answer": "The total is 41."},
            score={"retrieved_gold": True},
        ),
        _case(
            "tagged",
            example={"tags": ["reasoning"], "slice": "preservation"},
            output={"answer": "No."},
            score={"retrieved_gold": True},
        ),
        _case(
            "abstained",
            output={"abstained": True},
            score={"abstained": True, "retrieved_gold": True},
        ),
        _case("wrong", output={"answer": "Ten minutes."}, score={"retrieved_gold": True}),
    ]
    run, suite = _run(cases)
    tri = triage_generative(run, suite, answer_workflow())
    got = {f.example_id: (f.category.value, f.evidence) for f in tri.failures}
    assert "ok" not in got
    assert got["fmt"] == (
        "formatting_failure",
        "the output does not follow the output schema: 'answer' is a required property",
    )
    assert got["stale"][0] == "stale_facts"
    assert "lockout version 1, superseded by version 2" in got["stale"][1]
    assert "2024-06-01" in got["stale"][1]
    assert got["missing"][0] == "missing_facts"
    assert "lockout" in got["missing"][1]
    assert got["policy"] == ("policy_violation", "declared check not-icontains password is broken")
    assert got["unanswerable"][0] == "policy_violation"
    assert "declared abstention" in got["unanswerable"][1]
    assert got["numbers"] == ("reasoning_failure", "the reference is 42; the answer says 41")
    assert got["tagged"][0] == "reasoning_failure"
    assert got["abstained"] == (
        "prompt_misunderstanding",
        "abstained on an answerable question although a gold document was retrieved",
    )
    assert got["wrong"][0] == "prompt_misunderstanding"
    assert tri.total == 9 and tri.examples == 10
    assert tri.counts["reasoning_failure"] == 2
    assert tri.counts["policy_violation"] == 2
    assert sum(tri.counts.values()) == tri.total
    assert tri.shares["reasoning_failure"] == pytest.approx(2 / 9)
    assert set(tri.counts) == {c.value for c in TriageCategory}
    assert tri.slices["preservation"] == {
        "examples": 1,
        "failures": 1,
        "counts": {c.value: int(c.value == "reasoning_failure") for c in TriageCategory},
        "shares": {c.value: float(c.value == "reasoning_failure") for c in TriageCategory},
    }
    assert tri.slices["core"]["failures"] == 8
    annotated = tri.annotate(run)
    by_id = {s.example_id: s for s in annotated.scores}
    assert by_id["missing"].failure == "missing_facts" and by_id["ok"].failure is None


def test_tool_call_triage() -> None:
    def tool_case(eid: str, expected: Any, called: Any, **score: Any) -> Any:
        return _case(
            eid,
            kind="tool_call",
            example={"expected_tool": expected},
            output={"tool_call": called},
            score={
                "expected_tool": expected and expected["name"],
                "called_tool": called and called["name"],
                **score,
            },
        )

    reset = {"name": "reset_password", "arguments": {"user": "ana"}}
    cases = [
        tool_case("right", reset, reset, correct=True, arguments_valid=True, arguments_match=True),
        tool_case("wrong_tool", reset, {"name": "open_ticket", "arguments": {}}),
        tool_case("no_call", reset, None),
        tool_case("needless", None, reset, arguments_valid=True),
        tool_case("invalid", reset, {"name": "reset_password", "arguments": {"user": 3}}),
        tool_case(
            "differs",
            reset,
            {"name": "reset_password", "arguments": {"user": "bo"}},
            arguments_valid=True,
        ),
        tool_case("fmt_first", reset, {"name": "open_ticket", "arguments": {}}, format_valid=False),
    ]
    run, suite = _run(cases, kind="tool_call")
    tri = triage_generative(run, suite, tool_workflow())
    got = {f.example_id: (f.category.value, f.evidence) for f in tri.failures}
    assert got["wrong_tool"] == (
        "tool_use_failure",
        "called 'open_ticket'; expected 'reset_password'",
    )
    assert got["no_call"][1] == "no tool called; expected 'reset_password'"
    assert got["needless"][1] == "called 'reset_password' where no tool was needed"
    assert got["invalid"][0] == "tool_use_failure"
    assert "arguments.user: 3 is not of type 'string'" in got["invalid"][1]
    assert got["differs"][1] == (
        '\'reset_password\' called with arguments {"user": "bo"}; expected {"user": "ana"}'
    )
    assert got["fmt_first"][0] == "formatting_failure"  # precedence over the wrong tool
    assert "right" not in got


def test_precedence_between_evidence_kinds() -> None:
    # stale beats missing; missing beats an unsupported claim (policy); policy beats reasoning
    cases = [
        _case("stale_and_missing", score={"n_claims": 2, "n_stale": 1, "retrieved_gold": False}),
        _case(
            "missing_and_ungrounded",
            score={"n_claims": 2, "n_unsupported": 2, "retrieved_gold": False},
        ),
        _case(
            "ungrounded_number",
            example={"reference": "15"},
            output={"answer": "It is 30."},
            score={"n_claims": 1, "n_unsupported": 1, "retrieved_gold": True},
        ),
        # correct but hallucinating: still a failure, under the grounding rule
        _case(
            "correct_ungrounded",
            score={"correct": True, "n_claims": 3, "n_unsupported": 1, "retrieved_gold": True},
        ),
    ]
    run, suite = _run(cases)
    tri = triage_generative(run, suite, answer_workflow())
    got = {f.example_id: (f.category.value, f.evidence) for f in tri.failures}
    assert got["stale_and_missing"] == (
        "stale_facts",
        "1 of 2 claims are supported only by a superseded version",
    )
    assert got["missing_and_ungrounded"][0] == "missing_facts"
    assert got["ungrounded_number"][0] == "policy_violation"
    assert got["correct_ungrounded"] == (
        "policy_violation",
        "1 of 3 claims are not supported by the passages the answer cites (grounding rule)",
    )


def test_triage_refuses_a_run_of_another_suite() -> None:
    run, _ = _run([_case("a")])
    other = GenerativeSuite(name="other", kind="answer", examples=[_case("b")[0]]).frozen()
    with pytest.raises(InputError, match="pass the suite the run was made on"):
        triage_generative(run, other, answer_workflow())
    with pytest.raises(Exception, match="works on answer or tool_call workflows"):
        triage_generative(
            run,
            other,
            Workflow.model_validate(
                {
                    "name": "c",
                    "labels": {"a": {"description": "A"}, "b": {"description": "B"}},
                }
            ),
        )


# -- the recommendation ----------------------------------------------------------------------


def _triage(**counts: int) -> GenerativeTriage:
    failures = [
        GenerativeFailure(f"{cat}-{i}", TriageCategory(cat), "r", "e", "core")
        for cat, n in counts.items()
        for i in range(n)
    ]
    full = {c.value: counts.get(c.value, 0) for c in TriageCategory}
    total = len(failures)
    return GenerativeTriage(
        "run",
        "gen",
        "hash",
        "answer",
        total + 10,
        failures,
        full,
        {k: (v / total if total else 0.0) for k, v in full.items()},
        {},
    )


@pytest.mark.parametrize(
    ("counts", "action"),
    [
        ({"missing_facts": 20, "stale_facts": 19, "prompt_misunderstanding": 61}, "fine_tune"),
        ({"missing_facts": 20, "stale_facts": 20, "prompt_misunderstanding": 60}, "retrieval"),
        ({"policy_violation": 24, "reasoning_failure": 76}, "fine_tune"),
        ({"policy_violation": 25, "reasoning_failure": 75}, "rules"),
        ({"formatting_failure": 24, "reasoning_failure": 76}, "fine_tune"),
        ({"formatting_failure": 25, "reasoning_failure": 75}, "constrained_output"),
        ({"tool_use_failure": 24, "reasoning_failure": 76}, "fine_tune"),
        ({"tool_use_failure": 25, "reasoning_failure": 75}, "tool_schemas"),
        ({"missing_facts": 2, "stale_facts": 0, "prompt_misunderstanding": 3}, "retrieval"),
    ],
)
def test_recommendation_thresholds_at_their_boundaries(counts: dict[str, int], action: str) -> None:
    rec = recommend_generative(_triage(**counts))
    assert rec.action == action
    assert rec.total == sum(counts.values())
    if action == "fine_tune":
        assert rec.fixes == [] and "No cheap-fix threshold is crossed" in rec.reasons[0]
    else:
        assert rec.fixes == list(FIXES_FOR_ACTION[action])


def test_largest_crossed_share_leads() -> None:
    rec = recommend_generative(
        _triage(missing_facts=40, formatting_failure=30, policy_violation=30)
    )
    assert rec.action == "retrieval"
    assert rec.also == ["rules", "constrained_output"]
    assert rec.reasons[0].startswith("Missing or out-of-date facts are 40% of the failures")
    assert "not its weights" in rec.reasons[0]
    assert rec.fixes[:2] == ["freshness", "top_k_5"] and "verify" in rec.fixes


def test_fine_tune_names_what_remains() -> None:
    rec = recommend_generative(
        _triage(reasoning_failure=50, prompt_misunderstanding=30, missing_facts=20)
    )
    assert rec.action == "fine_tune"
    assert (
        "What remains (reasoning failure 50%, prompt misunderstanding 30%, missing facts 20%)"
        in rec.reasons[0]
    )


def test_change_rate_line() -> None:
    fast = recommend_generative(_triage(reasoning_failure=10), change_rate=0.08)
    assert fast.retrieval_beats_finetuning and fast.change_rate == 0.08
    assert fast.reasons[-1].startswith(
        "The knowledge base changes 8.0% of its documents a month (above 5%): retrieval beats "
        "re-fine-tuning on freshness."
    )
    edge = recommend_generative(_triage(reasoning_failure=10), change_rate=0.05)
    assert not edge.retrieval_beats_finetuning
    assert "retrieval beats" not in " ".join(edge.reasons)
    assert "5.0% of its documents a month (at most 5%)" in edge.reasons[-1]
    kb = recommend_generative(_triage(missing_facts=5), change_rate=KbChangeRate(rate=0.12))
    assert kb.change_rate == 0.12 and kb.retrieval_beats_finetuning
    assert recommend_generative(_triage(reasoning_failure=3)).change_rate is None
    with pytest.raises(InputError, match="change_rate"):
        recommend_generative(_triage(reasoning_failure=3), change_rate=-0.1)
    assert recommend_generative(_triage()).action == "none"


# -- cheap fixes -------------------------------------------------------------------------------


def test_change_kind_and_catalogue() -> None:
    assert change_kind({"retrieval": {"top_k": 5}}) is AttemptKind.RETRIEVAL
    assert change_kind({"freshness": True}) is AttemptKind.RETRIEVAL
    assert change_kind({"abstention_criteria": "x"}) is AttemptKind.PROMPT
    assert change_kind({"constrained": True}) is AttemptKind.FORMAT
    assert change_kind({"verify": True}) is AttemptKind.VERIFICATION
    with pytest.raises(InputError, match="mixes attempt kinds"):
        change_kind({"verify": True, "constrained": True})
    for name, fix in CHEAP_FIXES.items():
        assert change_kind(fix.change) is fix.kind, name
    for names in FIXES_FOR_ACTION.values():
        assert set(names) <= set(CHEAP_FIXES)


def test_apply_change() -> None:
    wf = answer_workflow()
    base = GeneratorConfig(model="m", retrieval={"top_k": 20, "rerank": {"pool": 30}})
    new = apply_change(base, {"retrieval": {"rerank": {"method": "mmr"}}}, wf)
    assert new.retrieval == {"top_k": 20, "rerank": {"pool": 30, "method": "mmr"}}
    assert base.retrieval == {"top_k": 20, "rerank": {"pool": 30}}  # not mutated
    assert apply_change(base, {"retrieval": {"top_k": 5}}, wf).retrieval["top_k"] == 5
    assert apply_change(base, {"verify": True}, wf).verify is True
    with pytest.raises(InputError, match="leaves the generator config as it is"):
        apply_change(base, {"constrained": True}, wf)
    with pytest.raises(InputError, match=r"unknown change key 'top_k'; allowed"):
        apply_change(base, {"top_k": 5}, wf)
    with pytest.raises(InputError, match="changes the model"):
        apply_change(base, {"adapter": "x.gguf"}, wf)
    with pytest.raises(InputError, match="chunk_overlap"):
        apply_change(base, {"retrieval": {"chunk_size": 10}}, wf)
    with pytest.raises(InputError, match=r"retrieval\.top_k"):
        apply_change(base, {"retrieval": {"top_k": 0}}, wf)
    with pytest.raises(InputError, match="tool_call workflow retrieves nothing"):
        apply_change(base, {"retrieval": {"top_k": 5}}, tool_workflow())


# Stand-ins for the spine's functions (tunegate.generative / tunegate.evaluate) until they
# are merged: the tests then run against the real ones.


def _register_generator(
    store: Store, workflow: Workflow, config: GeneratorConfig, *, parent: str | None = None
) -> ModelVersion:
    payload = config.model_dump(mode="json")
    mv = ModelVersion(
        id=f"gen-{content_hash(payload)[:12]}",
        kind=ModelKind.GENERATOR,
        base_model=config.model,
        config=payload,
        parent=parent,
    )
    try:
        return store.get_model_version(mv.id)
    except LookupError:
        store.save_model_version(mv)
        return mv


def _run_generative_eval(
    store: Store, workflow: Workflow, suite: GenerativeSuite, generator: Any, **_: Any
) -> GenerativeRun:
    outputs = [generator.generate(e) for e in suite.examples]
    scores = []
    for e, o in zip(suite.examples, outputs, strict=True):
        want = e.expected_tool.name if e.expected_tool else None
        got = o.tool_call.name if o.tool_call else None
        match = (
            o.tool_call is not None
            and e.expected_tool is not None
            and (o.tool_call.arguments == e.expected_tool.arguments)
        )
        scores.append(
            ExampleScore(
                example_id=e.id,
                kind=e.kind,
                slice=e.slice,
                expected_tool=want,
                called_tool=got,
                arguments_valid=got is not None,
                arguments_match=match,
                correct=want == got and (want is None or match),
            )
        )
    ok = sum(s.correct for s in scores) / len(scores)
    run = GenerativeRun(
        model_version=generator.version_id,
        suite_name=suite.name,
        suite_hash=suite.hash,
        kind=suite.kind,
        outputs=outputs,
        scores=scores,
        metrics={"overall": {"tool_call_accuracy": ok}, "slices": {}},
    )
    store.documents(GenerativeRunDocument).put(run.id, GenerativeRunDocument(run=run))
    return run


def _compare_generative(base: GenerativeRun, cand: GenerativeRun, **_: Any) -> Verdict:
    a = sum(s.correct for s in base.scores)
    b = sum(s.correct for s in cand.scores)
    outcome = (
        VerdictOutcome.PASS
        if b > a
        else VerdictOutcome.FAIL
        if b < a
        else VerdictOutcome.INCONCLUSIVE
    )
    return Verdict(outcome=outcome, baseline_run=base.id, candidate_run=cand.id, rules=[])


def _build_generator(workflow: Workflow, version: ModelVersion, store: Store) -> Any:
    raise AssertionError("the tests pass a generator factory")


@pytest.fixture
def spine(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, name, fn in [
        (tg_generative, "register_generator", _register_generator),
        (tg_generative, "build_generator", _build_generator),
        (tg_evaluate, "run_generative_eval", _run_generative_eval),
        (tg_evaluate, "compare_generative", _compare_generative),
    ]:
        if not hasattr(module, name):
            monkeypatch.setattr(module, name, fn, raising=False)


class FakeGenerator:
    """Calls the expected tool when ``good``, else always ``open_ticket``."""

    def __init__(self, version_id: str, good: bool) -> None:
        self.version_id = version_id
        self.good = good

    def generate(self, example: Any) -> GenerativeOutput:
        call = (
            example.expected_tool
            if self.good
            else ToolCall(name="open_ticket", arguments={"summary": example.input})
        )
        return GenerativeOutput(
            example_id=example.id,
            model_version=self.version_id,
            kind="tool_call",
            answer=None,
            tool_call=call,
            metadata={"retrieved": []},
        )


def _tool_suite(n: int = 12) -> GenerativeSuite:
    return GenerativeSuite(
        name="tools",
        kind="tool_call",
        examples=[
            GenerativeSuiteExample(
                id=f"t{i}",
                kind="tool_call",
                input=f"please reset the password of user{i}",
                expected_tool=ToolCall(name="reset_password", arguments={"user": f"user{i}"}),
            )
            for i in range(n)
        ],
    ).frozen()


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'g.db'}")


def _baseline(store: Store, wf: Workflow, **config: Any) -> ModelVersion:
    from tunegate.generative import register_generator

    mv: ModelVersion = register_generator(
        store, wf, GeneratorConfig(model="smol", constrained=False, **config)
    )
    return mv


def test_a_fix_that_works_passes(tmp_path: Path, spine: None) -> None:
    store, wf, suite = _store(tmp_path), tool_workflow(), _tool_suite()
    base = _baseline(store, wf)
    built: list[str] = []

    def factory(workflow: Workflow, version: ModelVersion, store: Store) -> FakeGenerator:
        built.append(version.id)
        return FakeGenerator(version.id, good=bool(version.config["constrained"]))

    att = try_generative_fix(
        store,
        wf,
        suite,
        base,
        {"constrained": True},
        kind=AttemptKind.FORMAT,
        description="constrained tool calls",
        generator_factory=factory,
    )
    assert att.kind is AttemptKind.FORMAT and att.description == "format: constrained tool calls"
    assert att.verdict is not None
    # every rule passes but preservation: this suite has no preservation slice, so the
    # verdict cannot clear the candidate (inconclusive), exactly as for classify verdicts
    outcomes = {r.rule: r.outcome for r in att.verdict.rules}
    assert outcomes.pop("preservation") is VerdictOutcome.INCONCLUSIVE
    assert set(outcomes.values()) == {VerdictOutcome.PASS}, att.verdict.rules
    assert att.verdict.outcome is VerdictOutcome.INCONCLUSIVE
    assert att.baseline_version == base.id and att.candidate_version != base.id
    d = att.details
    assert (d["failed_before"], d["failed_after"], d["fixed"], d["broken"]) == (12, 0, 12, 0)
    assert d["fixed_share"] == 1.0
    assert d["change"] == {"constrained": True} and d["config"]["constrained"] is True
    assert d["suite_hash"] == suite.hash and d["baseline_run_reused"] is False
    assert "metrics_before" in d and "metrics_after" in d
    cand = store.get_model_version(att.candidate_version)
    assert cand.kind is ModelKind.GENERATOR and cand.parent == base.id
    assert [a.id for a in store.attempts()] == [att.id]
    assert store.audit_log("try.format")[-1]["details"]["attempt"] == att.id
    assert built == [base.id, cand.id]
    # a second fix reuses the baseline's stored run of the suite
    again = try_generative_fix(
        store, wf, suite, base.id, {"verify": True}, generator_factory=factory
    )
    assert again.kind is AttemptKind.VERIFICATION
    assert again.details["baseline_run_reused"] is True
    assert again.details["baseline_run"] == d["baseline_run"]
    assert built[2:] == [again.candidate_version]


def test_a_fix_that_changes_nothing(tmp_path: Path, spine: None) -> None:
    store, wf, suite = _store(tmp_path), tool_workflow(), _tool_suite()
    base = _baseline(store, wf)

    def factory(workflow: Workflow, version: ModelVersion, store: Store) -> FakeGenerator:
        return FakeGenerator(version.id, good=False)

    att = try_generative_fix(
        store, wf, suite, base, {"abstention_criteria": "say so"}, generator_factory=factory
    )
    assert att.kind is AttemptKind.PROMPT
    assert att.verdict is not None  # whatever the rules say of two equal runs, it fixed nothing
    assert (att.details["fixed"], att.details["fixed_share"]) == (0, 0.0)
    assert att.details["failed_after"] == 12


def test_try_refuses_bad_input(tmp_path: Path, spine: None) -> None:
    store, wf, suite = _store(tmp_path), tool_workflow(), _tool_suite()
    base = _baseline(store, wf)
    store.save_model_version(ModelVersion(id="lora-1", kind=ModelKind.LORA))
    with pytest.raises(InputError, match="lora model"):
        try_generative_fix(store, wf, suite, "lora-1", {"verify": True})
    with pytest.raises(InputError, match="not a cheap fix"):
        try_generative_fix(store, wf, suite, base, {"verify": True}, kind="finetune")
    answer_suite = GenerativeSuite(name="a", kind="answer", examples=[_case("x")[0]]).frozen()
    with pytest.raises(InputError, match="is a answer suite"):
        try_generative_fix(store, wf, answer_suite, base, {"verify": True})
    assert store.attempts() == []


# -- the gate ----------------------------------------------------------------------------------


def _attempt(
    kind: AttemptKind,
    share: float | None,
    outcome: VerdictOutcome = VerdictOutcome.PASS,
    *,
    champion: str = "gen-champ",
    suite_hash: str = "h",
    verdict: bool = True,
) -> Attempt:
    return Attempt(
        kind=kind,
        description=f"{kind.value}: x",
        baseline_version=champion,
        candidate_version=f"gen-{kind.value}",
        verdict=Verdict(outcome=outcome, baseline_run="a", candidate_run="b", rules=[])
        if verdict
        else None,
        details={
            "fixed_share": share,
            "suite_hash": suite_hash,
            "failed_before": 10,
            "failed_after": 8,
        },
    )


def _evidence(**over: Any) -> GenerativeGateEvidence:
    tri = _triage(reasoning_failure=6, prompt_misunderstanding=4)
    base: dict[str, Any] = {
        "suite_hash": "h",
        "champion": "gen-champ",
        "champion_kind": ModelKind.GENERATOR,
        "champion_config": GeneratorConfig(model="m", constrained=False),
        "triage": tri,
        "recommendation": recommend_generative(tri),
        "attempts": [
            _attempt(AttemptKind.RETRIEVAL, 0.1),
            _attempt(AttemptKind.FORMAT, 0.2, VerdictOutcome.INCONCLUSIVE),
        ],
        "reviewed": 5,
    }
    return GenerativeGateEvidence(**{**base, **over})


GATE_WF = answer_workflow(triage={"min_failures": 10}, gate={"min_reviewed_examples": 5})


def _failed(report: Any) -> list[str]:
    return [c.name for c in report.conditions if not c.passed]


def test_gate_opens_when_all_five_hold() -> None:
    report = decide_generative_gate(_evidence(), GATE_WF)
    assert report.open and report.fine_tuning_needed is True, report.conditions
    assert [c.number for c in report.conditions] == [1, 2, 3, 4, 5]


def test_gate_condition_1_failures_triaged() -> None:
    r = decide_generative_gate(_evidence(triage=None, recommendation=None), GATE_WF)
    assert _failed(r)[:2] == ["failures_triaged", "not_a_cheap_problem"]
    assert "no run of champion gen-champ" in r.conditions[0].summary
    few = _triage(reasoning_failure=9)
    r = decide_generative_gate(
        _evidence(triage=few, recommendation=recommend_generative(few)), GATE_WF
    )
    assert _failed(r) == ["failures_triaged"]
    assert "needs 10 (1 more)" in r.conditions[0].summary
    r = decide_generative_gate(_evidence(champion=None), GATE_WF)
    assert r.conditions[0].summary == "no champion registered"


def test_gate_condition_2_a_cheap_problem() -> None:
    tri = _triage(missing_facts=6, reasoning_failure=4)
    r = decide_generative_gate(
        _evidence(triage=tri, recommendation=recommend_generative(tri)), GATE_WF
    )
    assert "not_a_cheap_problem" in _failed(r)
    c2 = r.conditions[1]
    assert c2.summary.startswith("Missing or out-of-date facts are 60%")
    assert "freshness" in c2.next_step


def test_gate_condition_3_cheap_fixes_tried() -> None:
    r = decide_generative_gate(_evidence(attempts=[]), GATE_WF)
    assert _failed(r) == ["cheap_fixes_tried", "gap_remains"]
    assert "no cheap fix tried" in r.conditions[2].summary
    only_retrieval = [_attempt(AttemptKind.RETRIEVAL, 0.1)]
    r = decide_generative_gate(_evidence(attempts=only_retrieval), GATE_WF)
    assert _failed(r) == ["cheap_fixes_tried"]
    assert r.conditions[2].summary == "cheap fixes not yet tried: format (e.g. constrained)"
    # a champion that already constrains its output needs no format attempt
    r = decide_generative_gate(
        _evidence(attempts=only_retrieval, champion_config=GeneratorConfig(model="m")), GATE_WF
    )
    assert r.open
    # attempts without a verdict, of another champion or another suite do not count
    stray = [
        _attempt(AttemptKind.FORMAT, 0.1, verdict=False),
        _attempt(AttemptKind.FORMAT, 0.1, champion="gen-old"),
        _attempt(AttemptKind.FORMAT, 0.1, suite_hash="other"),
    ]
    r = decide_generative_gate(_evidence(attempts=only_retrieval + stray), GATE_WF)
    assert _failed(r) == ["cheap_fixes_tried"]
    # a tool_call workflow needs no retrieval attempt
    tool_wf = tool_workflow(triage={"min_failures": 10}, gate={"min_reviewed_examples": 5})
    r = decide_generative_gate(_evidence(attempts=[_attempt(AttemptKind.FORMAT, 0.1)]), tool_wf)
    assert r.open
    # the recommendation's fixes are required too: rules -> verification or prompt
    tri = _triage(policy_violation=3, reasoning_failure=7)
    r = decide_generative_gate(
        _evidence(triage=tri, recommendation=recommend_generative(tri)), GATE_WF
    )
    assert "verification (e.g. verify)" in r.conditions[2].summary


def test_gate_condition_4_gap_remains() -> None:
    enough = _evidence(
        attempts=[
            _attempt(AttemptKind.RETRIEVAL, 0.6, VerdictOutcome.INCONCLUSIVE),
            _attempt(AttemptKind.FORMAT, 0.2),
        ]
    )
    r = decide_generative_gate(enough, GATE_WF)
    assert _failed(r) == ["gap_remains"]
    assert r.fine_tuning_needed is False
    assert "fixed 60% of the failures (at least 50%)" in r.conditions[3].summary
    assert r.conditions[3].next_step == "ship the cheap fix: promote gen-retrieval"
    assert "fine-tuning is not needed" in r.message
    # a fix that regresses elsewhere is no fix: the gap remains
    regressing = _evidence(
        attempts=[
            _attempt(AttemptKind.RETRIEVAL, 0.9, VerdictOutcome.FAIL),
            _attempt(AttemptKind.FORMAT, 0.2, VerdictOutcome.FAIL),
        ]
    )
    r = decide_generative_gate(regressing, GATE_WF)
    assert r.open
    assert "failed its verdict" in r.conditions[3].summary
    c4 = decide_generative_gate(_evidence(), GATE_WF).conditions[3]
    assert c4.passed and "fixed 20% of the failures (below 50%); 8 failures remain" in c4.summary


def test_gate_condition_5_reviewed_data() -> None:
    r = decide_generative_gate(_evidence(reviewed=2, pending=4, in_suite=1), GATE_WF)
    assert _failed(r) == ["reviewed_data"]
    assert r.conditions[4].summary == (
        "2 reviewed answer examples, need 5 (3 more); 4 await review; 1 more are in the "
        "suite and cannot train"
    )


def test_gate_from_a_store(tmp_path: Path, spine: None) -> None:
    store = _store(tmp_path)
    wf = tool_workflow(triage={"min_failures": 10}, gate={"min_reviewed_examples": 2})
    suite = _tool_suite()
    save_generative_suite(store, suite)
    champ = _baseline(store, wf)
    store.set_alias("champion", champ.id, actor="test")
    r = generative_gate(store, wf, suite.name)
    assert _failed(r)[0] == "failures_triaged" and "no run of champion" in r.conditions[0].summary

    def factory(workflow: Workflow, version: ModelVersion, store: Store) -> FakeGenerator:
        return FakeGenerator(version.id, good=False)

    try_generative_fix(store, wf, suite, champ, {"constrained": True}, generator_factory=factory)
    for i, status in enumerate(
        [ReviewStatus.REVIEWED, ReviewStatus.REVIEWED, ReviewStatus.PENDING]
    ):
        ex = GenerativeExample(
            id=f"g{i}",
            kind="tool_call",
            input=f"open a ticket about printer {i}",
            expected_tool=ToolCall(name="open_ticket", arguments={}),
            review_status=status,
        )
        store.documents(GenerativeExampleDocument).put(
            ex.id, GenerativeExampleDocument(example=ex, digest=ex.identity_hash)
        )
    in_suite = GenerativeExample(
        id="leak",
        kind="tool_call",
        input=suite.examples[0].input,
        expected_tool=suite.examples[0].expected_tool,
        review_status=ReviewStatus.REVIEWED,
    )
    store.documents(GenerativeExampleDocument).put(
        "leak", GenerativeExampleDocument(example=in_suite, digest=in_suite.identity_hash)
    )
    ev = collect_generative_evidence(store, wf, suite.hash[:10])
    assert ev.champion == champ.id and ev.triage is not None
    assert ev.triage.total == 12
    assert ev.triage.counts["tool_use_failure"] == 12
    assert ev.recommendation is not None and ev.recommendation.action == "tool_schemas"
    assert (ev.reviewed, ev.pending, ev.in_suite) == (2, 1, 1)
    assert ev.recommendation.change_rate is None  # no knowledge base in the store
    fast = collect_generative_evidence(store, wf, suite.name, champ.id, change_rate=0.08)
    assert fast.recommendation is not None and fast.recommendation.retrieval_beats_finetuning
    r = decide_generative_gate(ev, wf)
    assert _failed(r) == ["not_a_cheap_problem"]
    assert r.conditions[2].passed  # the constrained attempt exists, with a verdict
    assert r.conditions[3].passed  # and fixed none of the 12 failures: the gap remains
    assert not r.open and r.fine_tuning_needed is None


# -- the style stage ------------------------------------------------------------------------


class NumberChecker:
    """A claim is supported when each of its numbers is in some passage (a stand-in judge)."""

    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        import re

        text = " ".join(passages)
        return [all(n in text for n in re.findall(r"\d+", c)) for c in claims]


class AnswerFake:
    """Answers from the example's passage; a style version rewrites the tone, and with
    ``drop_fact`` changes the number (a rewrite that breaks the facts)."""

    def __init__(self, version_id: str, style: bool, drop_fact: bool = False) -> None:
        self.version_id, self.style, self.drop_fact = version_id, style, drop_fact

    def generate(self, example: Any) -> GenerativeOutput:
        passage = example.metadata["passages"][0]
        n = passage["text"].split()[-2]
        if self.drop_fact:
            n = str(int(n) + 1)
        text = f"Passwords need at least {n} characters."
        if self.style:
            text = "Happy to help! " + text
        return GenerativeOutput(
            example_id=example.id,
            model_version=self.version_id,
            kind="answer",
            answer=text,
            cited=[DocumentRef(id=passage["id"])],
            metadata={
                "retrieved": [
                    {
                        "doc_id": passage["id"],
                        "version": None,
                        "text": passage["text"],
                        "stale": False,
                        "current_version": None,
                    }
                ]
            },
        )


def _answer_suite(n: int = 12) -> GenerativeSuite:
    return GenerativeSuite(
        name="answers",
        kind="answer",
        examples=[
            GenerativeSuiteExample(
                id=f"a{i}",
                kind="answer",
                input=f"How long must a password be in system {i}?",
                reference=f"At least {10 + i} characters.",
                gold_documents=[DocumentRef(id=f"pw{i}")],
                metadata={
                    "passages": [
                        {"id": f"pw{i}", "text": f"Passwords must be at least {10 + i} characters"}
                    ]
                },
            )
            for i in range(n)
        ],
    ).frozen()


@pytest.mark.parametrize("drop_fact", [False, True])
def test_style_stage_is_judged_on_its_own(tmp_path: Path, drop_fact: bool) -> None:
    from tunegate.diagnose import try_style_stage

    store, wf, suite = _store(tmp_path), answer_workflow(), _answer_suite()
    task = _baseline(store, wf)

    def factory(workflow: Workflow, version: ModelVersion, store: Store) -> AnswerFake:
        style = version.config.get("stage") == "style"
        return AnswerFake(version.id, style=style, drop_fact=style and drop_fact)

    att = try_style_stage(
        store,
        wf,
        suite,
        task,
        "Warm and brief.",
        generator_factory=factory,
        checker=NumberChecker(),
    )
    assert att.kind is AttemptKind.STYLE and att.baseline_version == task.id
    style = store.get_model_version(att.candidate_version)
    assert style.config["stage"] == "style" and style.config["parent"] == task.id
    assert style.config["system_prompt"] == "Warm and brief." and style.parent == task.id
    assert att.verdict is not None
    rules = {r.rule: r for r in att.verdict.rules}
    if drop_fact:  # the rewrite changed every number: unsupported claims, a failed verdict
        assert rules["hallucination"].outcome is VerdictOutcome.FAIL
        # two claims per answer ("Happy to help!" has no number to contradict): half unsupported
        assert rules["hallucination"].candidate == 0.5 and rules["hallucination"].baseline == 0.0
        assert att.verdict.outcome is VerdictOutcome.FAIL
    else:  # tone only: nothing the rules judge changed
        assert rules["hallucination"].outcome is VerdictOutcome.PASS
        assert rules["core_correctness"].outcome is VerdictOutcome.PASS
    with pytest.raises(InputError, match="is itself a style stage"):
        try_style_stage(store, wf, suite, style, "Again.", generator_factory=factory)
    with pytest.raises(InputError, match="instructions are empty"):
        try_style_stage(store, wf, suite, task, "  ", generator_factory=factory)
