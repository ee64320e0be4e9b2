"""Fine-tuning: reviewed data in, a calibrated, reversible LoRA adapter out.

- :func:`build_dataset`: reviewed overrides + reviewed historical examples, refused when
  unreviewed, de-duplicated (exact and near), never overlapping a frozen suite, with replay
  and per-class targets; content-hashed and storable.
- :func:`build_generative_dataset`: the same rules for ``answer`` / ``tool_call`` examples.
- :func:`finetune_generative`: the generative fine-tune use-case (supervised LoRA, the adapter
  served beside its base, the verdict against the champion).
- :func:`label_issues`: confident learning (cleanlab) on out-of-fold probabilities.
- :func:`finetune`: PEFT LoRA on the encoder, seeded, early-stopped, resumable, calibrated
  (the method itself lives in :mod:`tunegate.lora`).
- :func:`finetune_seeds`: K seeds, the spread of every metric, the median-seed candidate.
- :func:`run_finetune`: the use-case: train over seeds, register the candidate, evaluate it
  against the champion (:class:`FinetuneOutcome`).
- :func:`fit_temperature`: temperature scaling on held-out logits.
- :func:`pending_examples`, :func:`mark_examples`: review imported examples
  (``tunegate review``).
"""

from __future__ import annotations

from tunegate.lora import HEAD_LR_MULTIPLIER, Splits, split_examples
from tunegate.metrics import expected_calibration_error
from tunegate.train._calibration import apply_temperature, fit_temperature, nll_loss
from tunegate.train._dataset import (
    Dataset,
    build_dataset,
    check_targets,
    dataset_hash,
    load_dataset,
    override_to_example,
)
from tunegate.train._generative import (
    GenerativeDataset,
    build_generative_dataset,
    generative_dataset_hash,
)
from tunegate.train._generative_finetune import (
    GenerativeFinetuneOutcome,
    finetune_generative,
    sft_pairs,
)
from tunegate.train._label_quality import (
    LabelIssue,
    LabelIssueReport,
    label_issues,
    out_of_fold_proba,
)
from tunegate.train._lora import finetune
from tunegate.train._pipeline import (
    FinetuneOutcome,
    adapter_version_id,
    conclude_finetune,
    ensure_champion,
    evaluate_candidate,
    fit_zero_shot_threshold,
    register_adapter,
    run_finetune,
)
from tunegate.train._review import mark_examples, pending_examples
from tunegate.train._seeds import SeedSweep, finetune_seeds, metric_spread

__all__ = [
    "HEAD_LR_MULTIPLIER",
    "Dataset",
    "FinetuneOutcome",
    "GenerativeDataset",
    "GenerativeFinetuneOutcome",
    "LabelIssue",
    "LabelIssueReport",
    "SeedSweep",
    "Splits",
    "adapter_version_id",
    "apply_temperature",
    "build_dataset",
    "build_generative_dataset",
    "check_targets",
    "conclude_finetune",
    "dataset_hash",
    "ensure_champion",
    "evaluate_candidate",
    "expected_calibration_error",
    "finetune",
    "finetune_generative",
    "finetune_seeds",
    "fit_temperature",
    "fit_zero_shot_threshold",
    "generative_dataset_hash",
    "label_issues",
    "load_dataset",
    "mark_examples",
    "metric_spread",
    "nll_loss",
    "out_of_fold_proba",
    "override_to_example",
    "pending_examples",
    "register_adapter",
    "run_finetune",
    "sft_pairs",
    "split_examples",
]
