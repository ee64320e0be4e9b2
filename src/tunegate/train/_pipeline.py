"""Glue between training, the registry and evaluation: register an adapter as a candidate
and evaluate it against the champion, storing the Attempt whose Verdict ``promote`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunegate.config import Workflow
from tunegate.models.artifact import ADAPTER_DIR, dir_sha256, read_manifest
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalSuite,
    ModelKind,
    ModelVersion,
    content_hash,
)

__all__ = ["adapter_version_id", "ensure_champion", "evaluate_candidate", "register_adapter"]


def adapter_version_id(artifact_dir: str | Path) -> str:
    """The version id of an artifact: ``lora-`` + 12 hex of its adapter weights' hash
    (the same id :class:`~tunegate.models.LoraClassifier` reports as ``version``)."""
    return f"lora-{dir_sha256(Path(artifact_dir) / ADAPTER_DIR)[:12]}"


def register_adapter(
    store: Any, artifact_dir: str | Path, *, actor: str = "tunegate", parent: str | None = None
) -> ModelVersion:
    """Register a trained artifact as a LoRA ModelVersion (lineage: parent, dataset, config)
    and point ``candidate`` at it. ``parent`` defaults to the current champion."""
    from tunegate.registry import Registry

    folder = Path(artifact_dir).resolve()
    manifest = read_manifest(folder)
    registry = Registry(store)
    mv = ModelVersion(
        id=adapter_version_id(folder),
        kind=ModelKind.LORA,
        base_model=manifest.base_model,
        artifact_path=str(folder),
        artifact_hash=dir_sha256(folder / ADAPTER_DIR),
        training_data_hash=manifest.dataset_hash,
        config={**manifest.config, "seed": manifest.seed, "temperature": manifest.temperature},
        parent=parent if parent is not None else registry.champion(),
    )
    try:
        existing: ModelVersion = store.get_model_version(mv.id)
    except LookupError:
        return registry.register(mv, actor=actor)
    return existing


def ensure_champion(store: Any, workflow: Workflow, *, actor: str = "tunegate") -> str:
    """The champion's id; with none registered, the workflow's zero-shot model is registered
    and promoted as the first champion (recorded in the alias history and audit log)."""
    from tunegate.registry import Registry

    registry = Registry(store)
    champ = registry.champion()
    if champ is not None:
        return champ
    config = {"instructions": workflow.instructions, "labels": workflow.label_names}
    mv = ModelVersion(
        id=f"zero-shot-{content_hash(config)[:12]}", kind=ModelKind.ZERO_SHOT, config=config
    )
    registry.register(mv, actor=actor, as_candidate=False)
    registry.promote(mv.id, actor=actor, reason="baseline: the workflow's zero-shot model")
    return mv.id


def evaluate_candidate(
    store: Any,
    workflow: Workflow,
    version_id: str,
    suite: EvalSuite,
    *,
    actor: str = "tunegate",
    description: str = "",
) -> Attempt:
    """Run the champion and ``version_id`` on ``suite``, compare them, store both EvalRuns
    and the Attempt (kind ``finetune``) with its Verdict; returns the Attempt."""
    from tunegate.evaluate import compare, run_eval
    from tunegate.models import load_model_version

    champ_id = ensure_champion(store, workflow, actor=actor)
    champion = load_model_version(store.get_model_version(champ_id), workflow, store=store)
    candidate = load_model_version(store.get_model_version(version_id), workflow, store=store)
    base_run = run_eval(champion, suite, workflow).model_copy(update={"model_version": champ_id})
    cand_run = run_eval(candidate, suite, workflow).model_copy(update={"model_version": version_id})
    verdict = compare(base_run, cand_run, suite, workflow)
    attempt = Attempt(
        kind=AttemptKind.FINETUNE,
        description=description or f"fine-tuned adapter {version_id}",
        baseline_version=champ_id,
        candidate_version=version_id,
        verdict=verdict,
        details={
            "suite": suite.name,
            "suite_hash": suite.hash,
            "baseline_run": base_run.id,
            "candidate_run": cand_run.id,
        },
    )
    store.save_eval_run(base_run)
    store.save_eval_run(cand_run)
    store.save_attempt(attempt)
    store.audit(
        "train.evaluate",
        actor,
        {
            "attempt": attempt.id,
            "candidate": version_id,
            "champion": champ_id,
            "verdict": verdict.outcome.value,
        },
    )
    return attempt
