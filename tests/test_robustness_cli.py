"""`tunegate suite freeze --robustness`, then `eval` scores the slice and `compare` judges it:
keyword stuffing with a confirmed finding's term fails a model that keys on that word."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunegate.models as models
from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.documents import Finding, FindingTerm, RobustnessSlice
from tunegate.records import ModelKind


class _Word:
    """Right when the label name is in the text; ``shortcut`` words win outright."""

    def __init__(self, workflow: Workflow, shortcut: Mapping[str, str]) -> None:
        self.labels = workflow.label_names
        self.shortcut = dict(shortcut)
        self.version = "word" + "".join(f"+{w}" for w in self.shortcut)
        self.kind = ModelKind.RULES

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        k = len(self.labels)
        out = np.full((len(texts), k), 0.02 / (k - 1))
        for i, t in enumerate(texts):
            low = t.lower()
            hit = next((lab for w, lab in self.shortcut.items() if w in low), None)
            j = (
                self.labels.index(hit)
                if hit
                else next((j for j, n in enumerate(self.labels) if n in low), 0)
            )
            out[i, j] = 0.98
        return out


for _name, _short in (
    ("test-robust-word", {}),
    ("test-robust-shortcut", {"authenticator": "security_incident"}),
):
    if _name not in models.backends():
        models.register_backend(_name)(lambda wf, _s=_short, **kw: _Word(wf, _s))


def test_freeze_eval_compare_with_a_robustness_slice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tunegate.cli._common import store_for

    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(starter_yaml(), encoding="utf-8")
    wf = parse_workflow(starter_yaml())
    store = store_for(wf, cfg)
    store.documents(Finding).put(
        "f1",
        Finding(
            id="f1",
            kind="contrast",
            reason_code="R2",
            label="security_incident",
            tokens=[
                FindingTerm(
                    term="authenticator",
                    label="security_incident",
                    z=5.0,
                    overrides_with=12,
                    reference_with=1,
                )
            ],
            confirmed=True,
        ),
    )
    rows = [
        {
            "id": f"s{i}",
            "text": f"Ticket {i}: a {wf.label_names[i % 8]} problem. It began today.",
            "label": wf.label_names[i % 8],
            "slice": "core" if i < 120 else "preservation",
        }
        for i in range(160)
    ]
    suite_file = tmp_path / "suite.jsonl"
    suite_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = ["suite", "freeze", str(suite_file), "--name", "s1", "-c", str(cfg), "--exact-only"]
    assert main([*args, "--robustness", "--robustness-seed", "3", "--json"]) == 0
    frozen = json.loads(capsys.readouterr().out)
    rob = frozen["robustness"]
    assert rob["stuffing_terms"] == {"security_incident": ["authenticator"]}
    assert rob["per_perturbation"]["typos"] == 120
    assert rob["per_perturbation"]["keyword_stuffing"] == 105  # not the 15 security tickets
    stored = store.documents(RobustnessSlice).get(rob["hash"])
    assert stored is not None and stored.seed == 3 and stored.suite_hash == frozen["hash"]
    assert main(["suite", "show", "s1", "-c", str(cfg), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["robustness"]
    assert shown["hash"] == rob["hash"] and shown["examples"] == rob["examples"]

    runs = {}
    for model in ("test-robust-word", "test-robust-shortcut"):
        out = tmp_path / f"{model}.json"
        assert main(["eval", model, "--suite", "s1", "-c", str(cfg), "--output", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "robustness slice:" in printed and "keyword stuffing" in printed
        runs[model] = out
    word, shortcut = str(runs["test-robust-word"]), str(runs["test-robust-shortcut"])
    code = main(["compare", word, shortcut, "-c", str(cfg), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == 1
    outcomes = {r["rule"]: r["outcome"] for r in verdict["rules"]}
    assert outcomes["robustness:attack_success:keyword_stuffing"] == "fail"
    assert outcomes["robustness:flip_rate"] == "pass"
    figures = verdict["robustness"]["figures"]
    assert figures["attack_success:keyword_stuffing"]["candidate"]["estimate"] == 1.0
    # the Markdown shows the slice's figures
    md = tmp_path / "v.md"
    main(["compare", word, word, "-c", str(cfg), "--markdown", str(md)])
    assert "robustness slice" in md.read_text()


def test_robustness_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(starter_yaml(), encoding="utf-8")
    suite_file = tmp_path / "suite.jsonl"
    suite_file.write_text(json.dumps({"text": "vpn down", "label": "vpn_issue"}) + "\n")
    args = ["suite", "freeze", str(suite_file), "--name", "x", "-c", str(cfg), "--exact-only"]
    code = main([*args, "--perturbations", "typos"])
    assert code != 0
    assert "--perturbations and --robustness-seed apply with --robustness" in (
        capsys.readouterr().err + capsys.readouterr().out
    )
