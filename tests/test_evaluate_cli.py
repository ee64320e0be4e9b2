"""The store-backed CLI: suite freeze/show, eval, compare (exit codes, Markdown, HTML, JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.records import EvalRun, ModelKind

pytest.importorskip("tunegate.store")
models = pytest.importorskip("tunegate.models")


class _Keyword:
    """Right when the label name is in the text; ``miss`` labels are always missed."""

    def __init__(self, workflow: Workflow, miss: Sequence[str] = ()) -> None:
        self.labels = workflow.label_names
        self.miss = set(miss)
        self.version = "kw-" + "-".join(sorted(self.miss))
        self.kind = ModelKind.RULES

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        k = len(self.labels)
        out = np.full((len(texts), k), 0.02 / (k - 1))
        for i, t in enumerate(texts):
            j = next((j for j, n in enumerate(self.labels) if n in t), 0)
            if self.labels[j] in self.miss:
                j = (j + 1) % k
            out[i, j] = 0.98
        return out


for _name, _miss in (("test-kw", ()), ("test-kw-missing-hardware", ("hardware",))):
    if _name not in models.backends():
        models.register_backend(_name)(lambda wf, _m=_miss, **kw: _Keyword(wf, _m))


def test_suite_eval_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(starter_yaml(), encoding="utf-8")
    wf = parse_workflow(starter_yaml())
    rows = [
        {
            "id": f"s{i}",
            "text": f"ticket {i}: {wf.label_names[i % 8]} problem",
            "label": wf.label_names[i % 8],
        }
        for i in range(160)
    ]
    suite_file = tmp_path / "suite.jsonl"
    suite_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")

    assert (
        main(
            [
                "suite",
                "freeze",
                str(suite_file),
                "--name",
                "s1",
                "-c",
                str(cfg),
                "--exact-only",
                "--json",
            ]
        )
        == 0
    )
    frozen = json.loads(capsys.readouterr().out)
    assert frozen["examples"] == 160 and len(frozen["hash"]) == 64
    assert frozen["slices"]["preservation"] == 100  # the 5 labels no data target names
    assert any("'edge' has 0 examples" in w for w in frozen["warnings"])

    assert main(["suite", "show", "s1", "-c", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hash"] == frozen["hash"]

    runs = []
    for model in ("test-kw", "test-kw-missing-hardware"):
        out = tmp_path / f"{model}.json"
        report = tmp_path / f"{model}.html"
        assert (
            main(
                [
                    "eval",
                    model,
                    "--suite",
                    "s1",
                    "-c",
                    str(cfg),
                    "--output",
                    str(out),
                    "--report",
                    str(report),
                    "--json",
                ]
            )
            == 0
        )
        summary = json.loads(capsys.readouterr().out)
        assert summary["run"] and report.read_text().startswith("<!DOCTYPE html>")
        runs.append(EvalRun.model_validate_json(out.read_text()))
    assert runs[0].metrics["overall"]["accuracy"]["estimate"] == 1.0

    md = tmp_path / "verdict.md"
    html = tmp_path / "verdict.html"
    # stored run ids work as well as files; hardware is a preservation label -> fail
    code = main(
        [
            "compare",
            runs[0].id,
            str(tmp_path / "test-kw-missing-hardware.json"),
            "-c",
            str(cfg),
            "--markdown",
            str(md),
            "--report",
            str(html),
            "--json",
        ]
    )
    verdict = json.loads(capsys.readouterr().out)
    assert code == 1 and verdict["outcome"] == "fail"
    assert {r["rule"]: r["outcome"] for r in verdict["rules"]}["preservation"] == "fail"
    assert "**FAIL**" in md.read_text() and "<svg" in html.read_text()
    # same model twice: nothing improved beyond noise -> inconclusive, exit 2
    assert main(["compare", runs[0].id, runs[0].id, "-c", str(cfg)]) == 2

    # without --measure-latency the verdict does not judge latency, and says so
    assert main(["compare", runs[0].id, runs[1].id, "-c", str(cfg)]) == 1
    assert "latency not judged: measure it in one sitting with --measure-latency" in (
        capsys.readouterr().out.replace("\n", " ")
    )
    # the runs' models are not registered versions: they cannot be timed
    code = main(["compare", runs[0].id, runs[1].id, "-c", str(cfg), "--measure-latency"])
    assert code == 2 and "is not a registered model version" in capsys.readouterr().err
    from tunegate.records import ModelVersion
    from tunegate.store import Store

    store = Store(wf.resolved_store_url(tmp_path))
    for run in runs:
        store.save_model_version(ModelVersion(id=run.model_version, kind=ModelKind.RULES))
    store.close()
    code = main(
        ["compare", runs[0].id, runs[1].id, "-c", str(cfg), "--measure-latency", "--json"]
    )
    timed = json.loads(capsys.readouterr().out)
    assert code == 1 and timed["latency"]["n_pairs"] > 0
    assert "latency_p50" in {r["rule"] for r in timed["rules"]}
