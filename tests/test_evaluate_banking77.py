"""Slow integration: the zero-shot baseline on a BANKING77 subsample produces an HTML report,
and the encoder probe runs in well under a minute.

    TUNEGATE_REPORT_OUT=banking77_report.html pytest -m slow tests/test_evaluate_banking77.py
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

from tunegate.config import LabelSpec, Workflow
from tunegate.evaluate import (
    SuiteSizeWarning,
    freeze_suite,
    load_banking77,
    preservation_probe,
    run_eval,
)
from tunegate.report import run_html

pytestmark = pytest.mark.slow


def test_zero_shot_banking77_report(shared_data: Path, tmp_path: Path) -> None:
    models = pytest.importorskip("tunegate.models")
    rows = load_banking77(shared_data / "banking77", "test")
    cats = sorted({c for _, c in rows})
    workflow = Workflow(
        name="banking77", labels={c: LabelSpec(description=c.replace("_", " ")) for c in cats}
    )
    picked: dict[str, int] = {}
    examples = []
    for i, (text, cat) in enumerate(rows):
        if picked.get(cat, 0) < 3:
            picked[cat] = picked.get(cat, 0) + 1
            examples.append({"id": f"b77-{i}", "text": text, "label": cat})
    train_texts = [t for t, _ in load_banking77(shared_data / "banking77", "train")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteSizeWarning)
        suite = freeze_suite(
            "banking77-zero-shot",
            examples,
            workflow,
            training_texts=train_texts,
            near_duplicates=False,
            preservation_labels=cats[::2],
        )
    clf = models.ZeroShotClassifier(workflow)
    run = run_eval(clf, suite, workflow, seed=0)
    acc = run.metrics["overall"]["accuracy"]
    # zero-shot on 77 intents from their names alone: far above chance (1/77), below perfect
    assert 0.2 < acc["estimate"] < 0.95 and acc["low"] < acc["estimate"] < acc["high"]
    html = run_html(run, suite)
    out = Path(os.environ.get("TUNEGATE_REPORT_OUT", tmp_path / "banking77.html"))
    out.write_text(html, encoding="utf-8")
    # 77 classes: the confusion matrix is a table of the largest confusions (> 30 classes)
    assert "Metrics by slice" in html and html.count("<svg") >= 2
    assert "confused pairs" in html

    start = time.perf_counter()
    probe = preservation_probe(models.get_encoder(workflow.model), shared_data / "banking77")
    assert time.perf_counter() - start < 60
    assert probe.n_test == 770 and 0.5 < probe.accuracy <= 1.0


def test_a_missing_probe_folder_names_the_absolute_path_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tunegate probe` resolved ../shared/data against the working directory and then
    suggested the same relative path: the message now says where it looked."""
    from tunegate.errors import InputError
    from tunegate.evaluate import load_banking77

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as caught:
        load_banking77("../shared/data/banking77", "test")
    text = str(caught.value)
    assert str(tmp_path.parent / "shared" / "data" / "banking77" / "test.csv") in text
    assert f"relative paths are read from {tmp_path}" in text and "--data-dir" in text
