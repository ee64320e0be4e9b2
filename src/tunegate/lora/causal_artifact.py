"""The artifact of a causal-LM adapter (``training.base: llm-local``): a ``tunegate-lora/1``
folder whose manifest says ``config.base: llm-local`` and holds the system prompt it was
trained with; how to recognise, read, write and load one (training: :mod:`tunegate.lora.causal`,
serving: :class:`tunegate.llm.LocalLlmClassifier`)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import ModelError
from tunegate.lora.artifact import (
    ADAPTER_DIR,
    ARTIFACT_FORMAT,
    ArtifactManifest,
    dir_sha256,
    library_versions,
    read_manifest,
    write_artifact,
)
from tunegate.lora.state import CHECKPOINT_DIR

if TYPE_CHECKING:
    from tunegate.lora.causal import CausalRun

__all__ = [
    "CAUSAL_BASE",
    "CAUSAL_TARGET_MODULES",
    "IGNORE",
    "is_causal_artifact",
    "load_causal_adapter",
    "read_causal_manifest",
    "target_modules",
    "write_causal_artifact",
]

CAUSAL_BASE = "llm-local"
"""``training.base`` (and the manifest's ``config.base``) of a causal-LM adapter."""
CAUSAL_TARGET_MODULES = ["q_proj", "v_proj"]
"""Adapter targets used when ``training.target_modules`` is the encoder default."""
_ENCODER_DEFAULT_TARGETS = ["query", "value"]
IGNORE = -100
"""Label of the positions the loss ignores (everything but the answer tokens)."""


def is_causal_artifact(artifact_dir: str | Path) -> bool:
    """Whether ``artifact_dir`` holds an adapter of the local causal LM."""
    try:
        return read_manifest(artifact_dir).config.get("base") == CAUSAL_BASE
    except ModelError:
        return False


def read_causal_manifest(artifact_dir: str | Path) -> ArtifactManifest:
    """The manifest of a causal-LM adapter; :class:`ModelError` for any other artifact."""
    manifest = read_manifest(artifact_dir)
    if manifest.config.get("base") != CAUSAL_BASE or "system_prompt" not in manifest.config:
        raise ModelError(
            f"{artifact_dir}: not an llm-local adapter (manifest config.base is "
            f"{manifest.config.get('base')!r}); serve encoder adapters with lora:PATH"
        )
    if not (Path(artifact_dir) / ADAPTER_DIR / "adapter_config.json").is_file():
        raise ModelError(
            f"{artifact_dir}: no {ADAPTER_DIR}/adapter_config.json; the artifact is incomplete"
        )
    return manifest


def load_causal_adapter(base: Any, artifact_dir: str | Path) -> tuple[Any, str]:
    """``(model, adapter hash)``: the adapter of ``artifact_dir`` merged into a copy of
    ``base`` (the shared base model stays unchanged; merged weights score at the base's
    speed)."""
    peft = require("peft", purpose="LoRA adapters")
    adapter = Path(artifact_dir) / ADAPTER_DIR
    try:
        model = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(adapter))
    except Exception as exc:
        raise ModelError(f"could not load the adapter in {adapter}: {exc}") from exc
    return model.merge_and_unload().eval(), dir_sha256(adapter)


def target_modules(workflow: Workflow) -> list[str]:
    """The modules that get adapters (the encoder default maps to :data:`CAUSAL_TARGET_MODULES`)."""
    targets = list(workflow.training.target_modules)
    return list(CAUSAL_TARGET_MODULES) if targets == _ENCODER_DEFAULT_TARGETS else targets


def write_causal_artifact(run: CausalRun, metrics: dict[str, Any], temperature: float) -> None:
    """Write the adapter and its manifest into ``run.out``, then drop the checkpoint."""
    splits = run.splits
    manifest = ArtifactManifest(
        format=ARTIFACT_FORMAT,
        labels=run.workflow.label_names,
        base_model=run.llm.source,
        base_model_hash=run.llm.weights_hash,
        dataset_hash=run.data_hash,
        config={
            **run.recipe,
            "fingerprint": run.fingerprint,
            "split_sizes": [len(splits.train), len(splits.validation), len(splits.calibration)],
        },
        metrics=json.loads(json.dumps(metrics)),
        temperature=temperature,
        max_length=int(run.recipe["max_length"]),
        seed=run.seed,
        library_versions=library_versions(),
    )
    write_artifact(run.out, run.model, manifest)
    shutil.rmtree(run.out / CHECKPOINT_DIR, ignore_errors=True)
