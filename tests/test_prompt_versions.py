"""Prompts as versions: `try prompt` -> Attempt + Verdict, a ``prompt`` ModelVersion with
lineage, promote and rollback through the registry, the one loader, the gate's condition 4 for
a prompted-LLM champion, and the CLI's errors.

The real LLM backends are not needed: a deterministic backend registered here reads its
rules from the rendered system prompt (lines ``WHEN <word> -> <label>``), so a better prompt
file really changes its predictions. Its name is data stored with each version, as ``llm`` or
``llm-local`` would be.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.cli import main
from tunegate.config import Workflow, starter_yaml
from tunegate.diagnose import GateEvidence, decide_gate, evaluate_gate, try_prompt
from tunegate.diagnose._gate_conditions import instructions_tried
from tunegate.errors import InputError, ModelError
from tunegate.llm import prompt_hash, system_prompt
from tunegate.models import (
    build_classifier,
    load_model_version,
    prompt_version,
    prompt_version_id,
    register_backend,
)
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalSuite,
    ModelKind,
    ModelVersion,
    Override,
    PromptVersionConfig,
    ReasonCode,
    SuiteExample,
    SuiteSlice,
    Ticket,
    Verdict,
    VerdictOutcome,
)
from tunegate.registry import Registry

FAKE = f"fake-llm-{uuid.uuid4().hex[:8]}"
"""A prompted backend for these tests (registered once per process under a fresh name)."""

MONDAY = datetime(2025, 3, 3, 9, tzinfo=UTC)
MFA = "authenticator push prompts I did not ask for, now locked out"
BASE_PROMPT = "Classify the ticket.\n{labels}\nAnswer with one of: {label_names}"
BETTER_PROMPT = BASE_PROMPT + "\nWHEN authenticator -> security_incident"
WORSE_PROMPT = BASE_PROMPT + "\nWHEN locked -> hardware"
_RULE = re.compile(r"^WHEN (\w+) -> (\w+)$", re.MULTILINE)


class PromptedFake:
    """Keyword model steered by its system prompt: the prompt's ``WHEN word -> label`` lines
    are checked first, then 'locked' -> account_unlock, 'printer' -> hardware, else
    email_issue. 0.9 on the chosen label."""

    kind = ModelKind.REMOTE_LLM

    def __init__(self, workflow: Workflow, system: str, store: Any) -> None:
        self.labels = list(workflow.label_names)
        self.system = system
        self.store = store
        self.rules = _RULE.findall(system)
        self.model = workflow.llm.model

    @property
    def version(self) -> str:
        return f"fake-{prompt_hash(self.system, self.model)}"

    def _label(self, text: str) -> str:
        for word, label in self.rules:
            if word in text:
                return str(label)
        return (
            "account_unlock"
            if "locked" in text
            else "hardware"
            if "printer" in text
            else ("email_issue")
        )

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        k = len(self.labels)
        out = np.full((len(texts), k), 0.1 / (k - 1))
        for i, t in enumerate(texts):
            out[i, self.labels.index(self._label(t))] = 0.9
        return out


@register_backend(FAKE)
def _fake_factory(
    workflow: Workflow, system_prompt: str | None = None, store: Any = None
) -> PromptedFake:
    from tunegate.llm import system_prompt as render

    return PromptedFake(workflow, render(workflow, system_prompt), store)


@pytest.fixture
def llm_workflow(workflow: Workflow) -> Workflow:
    """The starter workflow without rules, its configured prompt = BASE_PROMPT."""
    llm = workflow.llm.model_copy(update={"system_prompt": BASE_PROMPT})
    return workflow.model_copy(update={"llm": llm, "rules": []})


@pytest.fixture
def store(tmp_path: Path) -> Any:
    from tunegate.store import Store

    s = Store(f"sqlite:///{tmp_path / 'p.db'}")
    _seed(s)
    yield s
    s.close()


def _seed(s: Any) -> None:
    """30 R2 overrides of MFA tickets the keyword champion calls account_unlock."""
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
    s.add_tickets(tickets)
    s.add_overrides(overrides)


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
        for sl in (SuiteSlice.CORE, SuiteSlice.EDGE, SuiteSlice.PRESERVATION)
        for i in range(10)
        for j, (t, y) in enumerate(rows)
    ]
    return EvalSuite(name="toy", examples=examples).frozen()


def _champion(store: Any, workflow: Workflow, template: str = BASE_PROMPT) -> ModelVersion:
    """Register and promote ``template`` on the fake backend as the first champion."""
    mv = prompt_version(workflow, template, backend=FAKE)
    reg = Registry(store)
    reg.register(mv, as_candidate=False)
    reg.promote(mv.id, actor="test", reason="first prompt")
    return mv


# -- the version record and the loader ---------------------------------------------------------


def test_prompt_version_records_backend_template_model_and_hash(llm_workflow: Workflow) -> None:
    mv = prompt_version(llm_workflow, BETTER_PROMPT, backend=FAKE, parent="zs-1")
    cfg = PromptVersionConfig.model_validate(mv.config)
    rendered = system_prompt(llm_workflow, BETTER_PROMPT)
    assert mv.kind is ModelKind.PROMPT and mv.parent == "zs-1"
    assert (cfg.backend, cfg.template, cfg.model) == (FAKE, BETTER_PROMPT, "smollm2-135m-instruct")
    assert cfg.prompt_hash == prompt_hash(rendered, "smollm2-135m-instruct")
    assert cfg.labels == llm_workflow.label_names and mv.base_model == cfg.model
    assert mv.id == prompt_version_id(FAKE, cfg.prompt_hash)
    # the same prompt is the same version; another prompt or another model is another one
    assert prompt_version(llm_workflow, BETTER_PROMPT, backend=FAKE).id == mv.id
    assert prompt_version(llm_workflow, WORSE_PROMPT, backend=FAKE).id != mv.id
    other = llm_workflow.model_copy(
        update={"llm": llm_workflow.llm.model_copy(update={"model": "gpt-x"})}
    )
    assert prompt_version(other, BETTER_PROMPT, backend=FAKE).id != mv.id
    assert ModelKind.PROMPT.is_llm and ModelKind.REMOTE_LLM.is_llm
    assert not ModelKind.ZERO_SHOT.is_llm and not ModelKind.LORA.is_llm


def test_load_model_version_round_trip_through_the_store(
    llm_workflow: Workflow, store: Any
) -> None:
    mv = prompt_version(llm_workflow, BETTER_PROMPT, backend=FAKE)
    Registry(store).register(mv)
    stored = store.get_model_version(mv.id)
    assert stored == mv
    clf = load_model_version(stored, llm_workflow, store=store)
    direct = build_classifier(FAKE, llm_workflow, system_prompt=BETTER_PROMPT)
    texts = [MFA, "printer jammed", "locked out"]
    np.testing.assert_array_equal(clf.predict_proba(texts), direct.predict_proba(texts))
    assert isinstance(clf, PromptedFake) and clf.store is store  # the response cache's store
    assert clf.predict_proba([MFA]).argmax() == llm_workflow.label_names.index("security_incident")
    # the pinned model: a workflow now pointing at another model still loads the version's
    moved = llm_workflow.model_copy(
        update={"llm": llm_workflow.llm.model_copy(update={"model": "other-model"})}
    )
    assert load_model_version(stored, moved).model == "smollm2-135m-instruct"  # type: ignore[attr-defined]


def test_loading_refuses_other_labels_and_warns_when_the_prompt_drifted(
    llm_workflow: Workflow,
) -> None:
    mv = prompt_version(llm_workflow, BETTER_PROMPT, backend=FAKE)
    fewer = llm_workflow.model_copy(update={"labels": dict(list(llm_workflow.labels.items())[:4])})
    with pytest.raises(ModelError, match="registered for labels"):
        load_model_version(mv, fewer)
    edited = llm_workflow.model_copy(update={"instructions": "Ticket from the HR desk about"})
    with pytest.warns(RuntimeWarning, match="rendered system prompt is not the one evaluated"):
        load_model_version(mv, edited)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model_version(mv, llm_workflow)  # unchanged: no warning
    broken = mv.model_copy(update={"config": {**mv.config, "backend": ""}})
    with pytest.raises(ModelError, match="invalid config"):
        load_model_version(broken, llm_workflow)


@pytest.mark.parametrize(
    ("template", "backend", "message"),
    [
        ("   \n", FAKE, "prompt.txt is empty"),
        (
            "Pick one of {labels} for {customer}",
            FAKE,
            r"prompt.txt: unknown placeholder \{customer\}",
        ),
        ("Answer {0}", FAKE, "prompt.txt: "),
        (BETTER_PROMPT, "zero-shot", "does not take a system prompt"),
        (BETTER_PROMPT, "no-such-backend", "unknown model backend 'no-such-backend'"),
    ],
)
def test_bad_templates_and_backends_are_refused_naming_the_file(
    llm_workflow: Workflow, template: str, backend: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        prompt_version(llm_workflow, template, backend=backend, source="prompt.txt")


# -- try prompt -> promote -> rollback ---------------------------------------------------------


def test_try_prompt_stores_the_attempt_and_registers_the_version(
    llm_workflow: Workflow, store: Any, suite: EvalSuite
) -> None:
    champ = _champion(store, llm_workflow)
    attempt = try_prompt(
        llm_workflow, BETTER_PROMPT, store, suite, source="better.txt", measure_latency=False
    )
    assert attempt.kind is AttemptKind.PROMPT and attempt.baseline_version == champ.id
    assert attempt.verdict is not None and attempt.verdict.outcome is VerdictOutcome.PASS
    d = attempt.details
    assert d["missed_signal_total"] == 28 and d["baseline_right"] == 0  # 4 weeks back
    assert d["candidate_right"] == 28 and d["fixed_share"] == 1.0
    assert d["backend"] == FAKE and d["source"] == "better.txt"  # backend from the champion
    assert not d["baseline_is_configured_prompt"]
    mv = store.get_model_version(attempt.candidate_version)
    assert mv.kind is ModelKind.PROMPT and mv.parent == champ.id
    assert mv.config["template"] == BETTER_PROMPT and d["prompt_version"] == mv.id
    assert Registry(store).candidate() == mv.id
    stored = {a.id: a for a in store.attempts()}[attempt.id]
    assert stored == attempt
    runs = {r.id: r for r in store.eval_runs()}
    assert runs[d["candidate_run"]].model_version == mv.id
    assert runs[d["baseline_run"]].model_version == champ.id
    # trying the champion's own prompt is refused
    with pytest.raises(InputError, match="is the champion's prompt"):
        try_prompt(llm_workflow, BASE_PROMPT, store, suite, measure_latency=False)


def test_a_passing_prompt_is_promoted_and_rolled_back_like_weights(
    llm_workflow: Workflow, store: Any, suite: EvalSuite
) -> None:
    from tunegate.serving import TicketClassifier, load_champion

    champ = _champion(store, llm_workflow)
    reg = Registry(store)
    worse = try_prompt(llm_workflow, WORSE_PROMPT, store, suite, measure_latency=False)
    assert worse.verdict is not None and worse.verdict.outcome is VerdictOutcome.FAIL
    with pytest.raises(Exception, match="refusing to promote"):
        reg.promote(worse.candidate_version, actor="ana")
    better = try_prompt(llm_workflow, BETTER_PROMPT, store, suite, measure_latency=False)
    done = reg.promote(better.candidate_version, actor="ana")
    assert done.previous == champ.id and done.attempt_id == better.id and done.verdict == "pass"
    assert reg.champion() == better.candidate_version
    assert [v.id for v in reg.lineage(better.candidate_version)] == [
        better.candidate_version,
        champ.id,
    ]
    # served and logged under the prompt version's id, as monitoring reads it
    served = load_champion(llm_workflow, store)
    assert served.version_id == better.candidate_version
    ticket = Ticket(id="new1", text=f"{MFA} again", created_at=MONDAY + timedelta(days=40))
    decision = TicketClassifier(
        llm_workflow, served.classifier, version=served.version_id, store=store
    ).classify([ticket])[0]
    assert decision.model_version == better.candidate_version
    assert decision.label == "security_incident"
    # one rollback restores the previous prompt
    back = reg.rollback(actor="ana", reason="prompt regressed in production")
    assert back.version_id == champ.id and reg.champion() == champ.id
    restored = load_champion(llm_workflow, store)
    assert restored.version_id == champ.id
    assert restored.classifier.predict_proba([MFA]).argmax() == llm_workflow.label_names.index(
        "account_unlock"
    )
    statuses = {mv.id: mv.status.value for mv in reg.versions()}
    assert statuses[champ.id] == "champion" and statuses[better.candidate_version] == "retired"


def test_without_a_champion_the_baseline_is_the_configured_prompt(
    llm_workflow: Workflow, store: Any, suite: EvalSuite
) -> None:
    reg = Registry(store)
    with pytest.raises(InputError, match="is the workflow's configured prompt"):
        try_prompt(llm_workflow, BASE_PROMPT, store, suite, backend=FAKE, measure_latency=False)
    attempt = try_prompt(
        llm_workflow, BETTER_PROMPT, store, suite, backend=FAKE, measure_latency=False
    )
    configured = prompt_version(llm_workflow, BASE_PROMPT, backend=FAKE)
    assert attempt.baseline_version == configured.id
    assert attempt.details["baseline_is_configured_prompt"] is True
    assert reg.champion() is None  # registered, not promoted: a try changes nothing served
    assert store.get_model_version(configured.id).kind is ModelKind.PROMPT
    assert store.get_model_version(attempt.candidate_version).parent == configured.id
    reg.promote(configured.id, actor="ana", reason="the prompt in production")
    reg.promote(attempt.candidate_version, actor="ana")  # its verdict is against it
    assert reg.rollback(actor="ana").version_id == configured.id


# -- the gate's condition 4 --------------------------------------------------------------------


def _attempt(kind: AttemptKind, share: float | None, outcome: str, baseline: str) -> Attempt:
    verdict = Verdict(
        outcome=VerdictOutcome(outcome), baseline_run="a", candidate_run="b", rules=[]
    )
    return Attempt(
        kind=kind,
        baseline_version=baseline,
        candidate_version="prompt-new",
        verdict=verdict,
        details={"fixed_share": share, "missed_signal_total": 20},
    )


def _evidence(workflow: Workflow, attempts: list[Attempt], kind: ModelKind | None) -> GateEvidence:
    from tunegate.diagnose import override_trend

    return GateEvidence(
        trend=override_trend([], [], workflow),
        attempts=attempts,
        champion="champ",
        champion_kind=kind,
    )


@pytest.mark.parametrize(
    ("kind", "attempts", "passed", "says"),
    [
        # a prompted-LLM champion: the prompt attempt is the lever
        (ModelKind.PROMPT, [(AttemptKind.PROMPT, 0.2, "pass")], True, "fixed only 20%"),
        (ModelKind.PROMPT, [(AttemptKind.PROMPT, 0.8, "fail")], True, "verdict failed"),
        (ModelKind.PROMPT, [(AttemptKind.PROMPT, 0.5, "pass")], False, "not needed"),
        (ModelKind.REMOTE_LLM, [(AttemptKind.PROMPT, 0.1, "inconclusive")], True, "fixed only"),
        # instructions (an encoder's lever) are not prompt engineering of the LLM
        (ModelKind.PROMPT, [(AttemptKind.INSTRUCTIONS, 0.1, "pass")], False, "no prompt attempt"),
        # the encoder path is unchanged: a prompt attempt does not stand for instructions
        (ModelKind.ZERO_SHOT, [(AttemptKind.PROMPT, 0.1, "pass")], False, "no instructions"),
        (ModelKind.LORA, [(AttemptKind.INSTRUCTIONS, 0.1, "pass")], True, "fixed only 10%"),
        (None, [(AttemptKind.INSTRUCTIONS, 0.6, "pass")], False, "not needed"),
    ],
)
def test_condition_4_reads_the_prompt_attempt_of_an_llm_champion(
    workflow: Workflow,
    kind: ModelKind | None,
    attempts: list[tuple[AttemptKind, float, str]],
    passed: bool,
    says: str,
) -> None:
    evidence = _evidence(workflow, [_attempt(k, s, o, "champ") for k, s, o in attempts], kind)
    finding = instructions_tried(evidence, workflow)
    assert finding.passed is passed, finding.summary
    assert says in finding.summary
    if kind is ModelKind.PROMPT and not passed and attempts[0][0] is AttemptKind.PROMPT:
        assert "tunegate promote prompt-new" in finding.next_step
    if says == "no prompt attempt":
        assert "tunegate try prompt FILE" in finding.next_step


def test_the_gate_reads_a_stored_prompt_attempt(
    llm_workflow: Workflow, store: Any, suite: EvalSuite
) -> None:
    _champion(store, llm_workflow)
    before = evaluate_gate(store, llm_workflow)
    c4 = before.conditions[3]
    assert not c4.passed and "no prompt attempt" in c4.summary
    try_prompt(llm_workflow, BETTER_PROMPT, store, suite, measure_latency=False)
    after = evaluate_gate(store, llm_workflow).conditions[3]
    # it fixed every missed-signal override with a passing verdict: no fine-tune needed
    assert not after.passed and "fine-tuning is not needed" in after.summary
    assert after.evidence["lever"] == "prompt" and after.evidence["fixed_share"] == 1.0
    report = decide_gate(
        _evidence(
            llm_workflow, [_attempt(AttemptKind.PROMPT, 0.1, "pass", "champ")], ModelKind.PROMPT
        ),
        llm_workflow,
    )
    assert report.conditions[3].passed


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, suite: EvalSuite) -> Path:
    import yaml

    from tunegate.store import Store

    data = yaml.safe_load(starter_yaml())
    data["rules"] = []
    data.setdefault("llm", {})["system_prompt"] = BASE_PROMPT
    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(yaml.safe_dump(data), encoding="utf-8")
    s = Store(f"sqlite:///{tmp_path / 'tunegate.db'}")
    _seed(s)
    s.save_suite(suite)
    s.close()
    return cfg


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "missing.txt: no such file"),
        ("empty.txt", "  \n\n", "empty.txt is empty"),
        ("bad.txt", "Use {labels} and {tone}", "bad.txt: unknown placeholder {tone}"),
        ("latin1.txt", b"caf\xe9 {labels}", "latin1.txt: not UTF-8 text"),
        ("folder", "dir", "folder: not a file"),
    ],
)
def test_try_prompt_cli_errors_name_the_file(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    code = main(["try", "prompt", str(path), "-c", str(project), "--backend", FAKE])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and message in err, err


def test_try_prompt_cli_then_promote_and_rollback(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    better = tmp_path / "better.txt"
    better.write_text(BETTER_PROMPT, encoding="utf-8")
    args = ["-c", str(project), "--backend", FAKE, "--no-measure-latency"]
    assert main(["try", "prompt", str(better), *args, "--json"]) == 0
    attempt = json.loads(capsys.readouterr().out)
    assert attempt["kind"] == "prompt" and attempt["details"]["fixed_share"] == 1.0
    configured, version = attempt["baseline_version"], attempt["candidate_version"]
    assert main(["try", "prompt", str(better), *args]) == 0  # human output
    printed = " ".join(capsys.readouterr().out.split())
    assert f"tunegate promote {configured}" in printed and f"tunegate promote {version}" in printed
    assert main(["promote", configured, "-c", str(project), "--reason", "in production"]) == 0
    assert main(["promote", version, "-c", str(project)]) == 0
    capsys.readouterr()
    assert main(["models", "show", version, "-c", str(project), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"] == [version, configured]
    assert shown["version"]["kind"] == "prompt" and shown["version"]["config"]["backend"] == FAKE
    assert main(["rollback", "-c", str(project), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version_id"] == configured
    assert main(["aliases", "-c", str(project), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == configured


def test_condition_4_asks_for_a_prompt_when_the_baseline_is_an_llm(workflow: Workflow) -> None:
    """A LoRA adapter of the local LLM is a ``lora`` champion, still steered by its prompt: in
    a workflow whose baseline is an LLM the lever stays the prompt."""
    llm = workflow.model_copy(update={"baseline": "llm-local"})
    attempts = [_attempt(AttemptKind.PROMPT, 0.1, "pass", "champ")]
    assert instructions_tried(_evidence(llm, attempts, ModelKind.LORA), llm).passed
    encoder = instructions_tried(_evidence(workflow, attempts, ModelKind.LORA), workflow)
    assert not encoder.passed and "no instructions" in encoder.summary
