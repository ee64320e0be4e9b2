"""End to end from the CLI on a tiny encoder: dataset build -> finetune (+Verdict) ->
promote (refused / forced) -> rollback with byte-identical champion predictions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.cli import main
from tunegate.config import Workflow, load_workflow
from tunegate.lora.artifact import dir_sha256
from tunegate.models import load_model_version
from tunegate.records import (
    EvalSuite,
    Override,
    ReasonCode,
    ReviewStatus,
    SuiteExample,
    SuiteSlice,
    Ticket,
)
from tunegate.store import Store


@pytest.fixture
def project(tmp_path: Path, workflow: Workflow) -> Path:
    enc = make_tiny_encoder(tmp_path / "enc")
    model = workflow.model.model_copy(update={"encoder": enc, "backend": "torch"})
    training = workflow.training.model_copy(
        update={"learning_rate": 5e-3, "seeds": 1, "epochs": 2, "near_duplicate_threshold": 1.0}
    )
    wf = workflow.model_copy(
        update={
            "model": model,
            "training": training,
            "data_targets": [],
            "store": workflow.store.model_copy(update={"url": "sqlite:///tg.db"}),
        }
    )
    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(wf.to_yaml(), encoding="utf-8")
    store = Store(wf.resolved_store_url(tmp_path))
    data = toy_examples(8)
    tickets = [
        Ticket(id=f"t{i}", text=e.text, created_at=datetime(2025, 5, 1, tzinfo=UTC))
        for i, e in enumerate(data)
    ]
    store.add_tickets(tickets)
    store.add_overrides(
        [
            Override(
                ticket_id=t.id,
                final_label=e.label,
                reason_code=ReasonCode.R2,
                analyst="ann",
                review_status=ReviewStatus.REVIEWED,
            )
            for t, e in zip(tickets, data, strict=True)
        ]
    )
    slices = [SuiteSlice.CORE, SuiteSlice.EDGE, SuiteSlice.PRESERVATION]
    suite = EvalSuite(
        name="frozen",
        examples=[
            SuiteExample(id=f"s{i}", text=e.text, label=e.label, slice=slices[i % 3])
            for i, e in enumerate(toy_examples(3, seed=42, prefix="s"))
        ],
    ).frozen()
    store.save_suite(suite)
    store.close()
    return cfg


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_cli_train_promote_rollback(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(project)
    capsys.readouterr()
    assert main(["dataset", "build", "-c", cfg, "--json"]) == 0
    built = _json(capsys)
    assert isinstance(built, dict) and built["manifest"]["n_new"] == 64

    code = main(
        [
            "finetune",
            built["hash"][:12],
            "-c",
            cfg,
            "--out",
            str(tmp_path / "ad"),
            "--suite",
            "frozen",
            "--despite-gate",
            "a toy project: the gate's evidence is not simulated here",
            "--json",
        ]
    )
    result = _json(capsys)
    assert isinstance(result, dict)
    [despite] = Store(load_workflow(project).resolved_store_url(project.parent)).audit_log(
        "finetune_despite_gate"
    )
    assert "toy project" in despite["details"]["reason"]
    assert code == {"pass": 0, "fail": 1, "inconclusive": 2}[result["verdict"]]
    candidate, champion = result["candidate"], result["champion"]
    assert champion.startswith("zero-shot-")
    # the promotion choice holds the fine-tune to the best cheap fix too (none was tried
    # here: the fine-tune is the choice exactly when its verdict passed)
    assert result["versus_cheap_fix"] is None
    assert result["promotion"]["choice"] == (
        "fine-tune" if result["verdict"] == "pass" else "keep champion"
    )
    assert main(["runs", "-c", cfg, "--json"]) == 0
    listed = _json(capsys)
    assert isinstance(listed, list)
    by_id = {r["id"]: r for r in listed}
    assert by_id[result["candidate_run"]]["model_version"] == candidate
    assert by_id[result["baseline_run"]]["model_version"] == champion
    assert {r["suite"] for r in listed} == {"frozen"}
    assert main(["runs", "-c", cfg, "--model", candidate, "--json"]) == 0
    assert [r["id"] for r in _json(capsys)] == [result["candidate_run"]]  # type: ignore[union-attr]
    assert main(["runs", "-c", cfg, "--suite", "nope"]) == 1
    assert "no suite named 'nope'" in capsys.readouterr().err

    workflow = load_workflow(project)
    store = Store(workflow.resolved_store_url(project.parent))
    texts = [e.text for e in toy_examples(2, seed=5)]
    before = load_model_version(
        store.get_model_version(champion), workflow, store=store
    ).predict_proba(texts)
    artifact = Path(store.get_model_version(candidate).artifact_path or "")
    artifact_hash = dir_sha256(artifact / "adapter")

    if result["verdict"] != "pass":
        assert main(["promote", candidate, "-c", cfg]) == 1
        assert "refusing to promote" in capsys.readouterr().err
        assert main(["promote", candidate, "-c", cfg, "--force"]) == 1  # no reason
    assert (
        main(
            [
                "promote",
                candidate,
                "-c",
                cfg,
                "--force",
                "--reason",
                "pilot week",
                "--actor",
                "lead",
                "--json",
            ]
        )
        == 0
    )
    assert _json(capsys)["version_id"] == candidate  # type: ignore[index]
    assert store.get_alias("champion") == candidate

    assert main(["rollback", "-c", cfg, "--reason", "FNR up", "--json"]) == 0
    assert _json(capsys)["version_id"] == champion  # type: ignore[index]
    after = load_model_version(
        store.get_model_version(champion), workflow, store=store
    ).predict_proba(texts)
    assert np.asarray(before).tobytes() == np.asarray(after).tobytes()
    assert dir_sha256(artifact / "adapter") == artifact_hash  # artifact untouched

    assert main(["models", "history", "-c", cfg, "--json"]) == 0
    history = _json(capsys)
    assert isinstance(history, list)
    champ_events = [h for h in history if h["alias"] == "champion"]
    assert [h["version"] for h in champ_events] == [champion, candidate, champion]
    assert "pilot week" in champ_events[1]["reason"] and champ_events[1]["actor"] == "lead"
    assert main(["models", "show", candidate, "-c", cfg, "--json"]) == 0
    shown = _json(capsys)
    assert shown["lineage"] == [candidate, champion]  # type: ignore[index]
    assert shown["version"]["training_data_hash"] == built["hash"]  # type: ignore[index]


def test_finetune_refuses_a_closed_gate_unless_a_reason_is_given(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(project)
    assert main(["dataset", "build", "-c", cfg, "--json"]) == 0
    built = _json(capsys)
    assert isinstance(built, dict)
    args = ["finetune", built["hash"][:12], "-c", cfg, "--out", str(tmp_path / "ad"), "--json"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "gate CLOSED" in err and "(2) root_cause" in err and "--despite-gate" in err
    assert not (tmp_path / "ad").exists()  # nothing trained
    assert main([*args, "--despite-gate", "  "]) != 0  # a blank reason is no reason

    workflow = load_workflow(project)
    store = Store(workflow.resolved_store_url(project.parent))
    assert store.audit_log("finetune_despite_gate") == []
