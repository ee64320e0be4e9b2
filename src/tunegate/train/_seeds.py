"""Seed sweeps: train K adapters that differ only in their seed, report the spread, pick one.

The adapters share one train/validation/calibration split (seeded by ``base_seed``): they
differ only in training randomness (LoRA initialization, dropout, batch order), so the spread
measures the recipe's variance, not the luck of a split, and the median is taken over scores
on the same validation rows.

The candidate is the **median-seed adapter by validation macro-F1** (for an even K, the lower
of the two middle ones). A probability-averaging ensemble would be more accurate on average
but costs K forward passes per ticket, which the latency rule of a verdict would (rightly)
count against it; the median model is a typical draw from the training procedure, neither
its luckiest nor its unluckiest, so its evaluation is an honest estimate of what this recipe
produces. The standard deviation of every scalar metric across seeds is recorded
(:func:`tunegate.metrics.seed_summary`: ddof=1, ``nan`` for a single seed, written as
``null`` in ``seeds.json``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.execute import Executor, LocalExecutor
from tunegate.lora.artifact import read_manifest
from tunegate.metrics import seed_summary
from tunegate.records import Example
from tunegate.train._dataset import Dataset
from tunegate.train._lora import finetune

__all__ = ["SeedSweep", "finetune_seeds", "metric_spread"]

SELECTION_METRIC = "val_macro_f1"


@dataclass(frozen=True)
class SeedSweep:
    """K adapters trained with seeds ``base_seed .. base_seed + K - 1``."""

    artifacts: list[Path]
    seeds: list[int]
    metrics: list[dict[str, float]]
    """Scalar training metrics per seed (same order as ``artifacts``)."""
    spread: dict[str, dict[str, float]]
    """metric -> {mean, std, min, max} across seeds (std with ddof=1; ``nan`` for one seed)."""
    chosen: Path
    """The candidate: the median-seed adapter by validation macro-F1."""
    chosen_seed: int

    def summary(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "artifacts": [str(p) for p in self.artifacts],
            "per_seed": self.metrics,
            "spread": {
                key: {name: _json_float(v) for name, v in stats.items()}
                for key, stats in self.spread.items()
            },
            "chosen": str(self.chosen),
            "chosen_seed": self.chosen_seed,
            "selection": f"median seed by {SELECTION_METRIC}",
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def metric_spread(rows: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, std (ddof=1, ``nan`` for a single row), min and max of every scalar metric
    (:func:`tunegate.metrics.seed_summary` per metric)."""
    keys = sorted({k for row in rows for k in row})
    return {key: seed_summary([row[key] for row in rows if key in row]).to_dict() for key in keys}


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _train_seed(
    dataset: Dataset | Sequence[Example],
    workflow: Workflow,
    root: Path,
    seed: int,
    *,
    base_seed: int,
    resume: bool,
    base_model: str | None,
    epochs: int | None,
    parent_proba: Callable[[Sequence[str]], np.ndarray] | None,
) -> Path:
    return finetune(
        dataset,
        workflow,
        root / f"seed-{seed}",
        seed=seed,
        split_seed=base_seed,
        resume=resume,
        base_model=base_model,
        epochs=epochs,
        parent_proba=parent_proba,
    )


def finetune_seeds(
    dataset: Dataset | Sequence[Example],
    workflow: Workflow,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    base_seed: int = 0,
    resume: bool = True,
    base_model: str | None = None,
    epochs: int | None = None,
    parent_proba: Callable[[Sequence[str]], np.ndarray] | None = None,
    executor: Executor | None = None,
) -> SeedSweep:
    """Train ``seeds`` adapters into ``out_dir/seed-<s>/``; returns the sweep and its choice.

    ``out_dir/seeds.json`` records the per-seed metrics, their spread and the chosen seed.
    ``executor`` (default: this process, one seed after the other) trains the seeds as
    independent tasks, e.g. Ray tasks (:mod:`tunegate.execute`); ``out_dir`` must then be a
    folder every worker can write (one machine, or a shared file system).
    """
    k = workflow.training.seeds if seeds is None else seeds
    if k < 1:
        raise InputError(f"--seeds must be >= 1, got {k}")
    root = Path(out_dir)
    if executor is not None and executor.name != "local":
        root = root.resolve()  # workers do not share this process's working folder
    seed_list = [base_seed + i for i in range(k)]
    train_one = functools.partial(
        _train_seed,
        dataset,
        workflow,
        root,
        base_seed=base_seed,
        resume=resume,
        base_model=base_model,
        epochs=epochs,
        parent_proba=parent_proba,
    )
    artifacts: list[Path] = (executor or LocalExecutor()).map(train_one, seed_list)
    rows: list[dict[str, float]] = [_scalars(read_manifest(p).metrics) for p in artifacts]
    scores = [row.get(SELECTION_METRIC, 0.0) for row in rows]
    order = sorted(range(k), key=lambda i: (scores[i], -seed_list[i]))
    pick = order[(k - 1) // 2]
    sweep = SeedSweep(
        artifacts=artifacts,
        seeds=seed_list,
        metrics=rows,
        spread=metric_spread(rows),
        chosen=artifacts[pick],
        chosen_seed=seed_list[pick],
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "seeds.json").write_text(json.dumps(sweep.summary(), indent=2) + "\n", encoding="utf-8")
    return sweep
