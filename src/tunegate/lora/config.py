"""The LoRA training recipe: the fixed constants of the loop and the settings it records.

A :class:`LoraRecipe` is what an artifact's manifest stores under ``config`` and what the
checkpoint fingerprint hashes (with the data, the base weights and the seeds): two runs with
the same recipe, data and seeds produce the same adapter, and a checkpoint of one resumes the
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunegate.config import Workflow
from tunegate.records import content_hash

__all__ = [
    "BUCKET_BATCHES",
    "EVAL_BATCH_SIZE",
    "HEAD_LR_MULTIPLIER",
    "PROBE_C",
    "WARMUP_SHARE",
    "WARM_HEAD_LR_MULTIPLIER",
    "LoraRecipe",
    "fingerprint",
]

WARMUP_SHARE = 0.1
"""Share of the optimizer steps spent in the linear learning-rate warm-up."""
HEAD_LR_MULTIPLIER = 10.0
"""Head learning-rate multiplier for a randomly initialised head (no warm start possible):
the classification head (and every newly initialized module) then learns this many times
faster than the LoRA matrices, since it starts from random weights, the adapters from the
identity."""
WARM_HEAD_LR_MULTIPLIER = 1.0
"""Head learning-rate multiplier once the head starts at the linear probe."""
PROBE_C = 10.0
"""Inverse L2 strength of the logistic regression that initialises the head."""
BUCKET_BATCHES = 50
"""Batches per length bucket: each epoch sorts chunks of this many batches by length."""
EVAL_BATCH_SIZE = 64
"""Rows per forward pass when predicting (warm start, validation, calibration)."""


@dataclass(frozen=True)
class LoraRecipe:
    """The settings of one training run, as recorded in the manifest (``config``)."""

    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: list[str]
    frozen_layers: int
    """Lower encoder layers without adapters (resolved, never ``None``)."""
    modules_to_save: list[str]
    """Modules trained and saved in full: the head, the pooler, modules missing from the base."""
    epochs: int
    learning_rate: float
    batch_size: int
    max_batch_tokens: int | None
    patience: int
    validation_fraction: float
    calibration_fraction: float
    max_length: int
    warmup_share: float = WARMUP_SHARE
    head_lr_multiplier: float = WARM_HEAD_LR_MULTIPLIER
    head_init: str = "linear_probe"
    head: str = "AutoModelForSequenceClassification"

    @classmethod
    def from_workflow(
        cls, workflow: Workflow, *, epochs: int, modules_to_save: list[str], frozen_layers: int
    ) -> LoraRecipe:
        """The recipe of ``workflow.training`` with the values resolved for one model."""
        t = workflow.training
        return cls(
            lora_r=t.lora_r,
            lora_alpha=t.lora_alpha,
            lora_dropout=t.lora_dropout,
            target_modules=list(t.target_modules),
            frozen_layers=frozen_layers,
            modules_to_save=modules_to_save,
            epochs=epochs,
            learning_rate=t.learning_rate,
            batch_size=t.batch_size,
            max_batch_tokens=t.max_batch_tokens,
            patience=t.patience,
            validation_fraction=t.validation_fraction,
            calibration_fraction=t.calibration_fraction,
            max_length=workflow.model.max_length,
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``config`` entries (JSON-ready)."""
        return {
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "target_modules": list(self.target_modules),
            "frozen_layers": self.frozen_layers,
            "modules_to_save": list(self.modules_to_save),
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "patience": self.patience,
            "validation_fraction": self.validation_fraction,
            "calibration_fraction": self.calibration_fraction,
            "warmup_share": self.warmup_share,
            "head_lr_multiplier": self.head_lr_multiplier,
            "head_init": self.head_init,
            "max_length": self.max_length,
            "head": self.head,
        }


def fingerprint(
    recipe: LoraRecipe, *, data_hash: str, base_hash: str, seed: int, split_seed: int
) -> str:
    """What a checkpoint or a finished artifact must match to be reused: data, base weights,
    recipe and both seeds."""
    return content_hash(data_hash, base_hash, {**recipe.to_dict(), "split_seed": split_seed}, seed)
