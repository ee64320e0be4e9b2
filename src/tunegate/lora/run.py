"""One training run's shared context: the model, the tokenized data, the recipe, timings."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.config import Workflow
from tunegate.lora.config import LoraRecipe
from tunegate.lora.data import Splits
from tunegate.lora.model import predict_logits
from tunegate.records import Example

if TYPE_CHECKING:
    from tunegate.lora.prefix import PrefixCache

__all__ = ["TrainingRun"]


@dataclass
class TrainingRun:
    """Everything the phases share: the model, the tokenized data, the recipe."""

    examples: list[Example]
    workflow: Workflow
    out: Path
    seed: int
    base: str
    base_hash: str
    data_hash: str
    model: Any
    recipe: LoraRecipe
    fingerprint: str
    ids: list[list[int]] = field(default_factory=list)
    pad_id: int = 0
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    longest: int = 0
    """The longest text of the run (the cap of padded widths), computed once."""
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    splits: Splits = field(default_factory=lambda: Splits([], [], []))
    prefix: PrefixCache | None = None
    zero: dict[str, Any] | None = None
    """Validation figures of the warm-started model (epoch 0), when it was scored."""
    phases: dict[str, float] = field(default_factory=dict)
    """Wall seconds per phase, recorded in the manifest."""
    clock: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self.clock, 3)
        self.clock = now

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.splits.train) / self.recipe.batch_size)

    @property
    def total_steps(self) -> int:
        return max(1, self.steps_per_epoch * self.recipe.epochs)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        """Logits and labels of the validation rows."""
        rows = self.splits.validation
        logits = predict_logits(
            self.model, self.ids, self.pad_id, rows=rows, prefix=self.prefix, cap=self.longest
        )
        return logits, self.y[rows]
