"""Fine-tuning: reviewed data in, a calibrated, reversible LoRA adapter out.

- :func:`build_dataset`: reviewed overrides + reviewed historical examples, refused when
  unreviewed, de-duplicated (exact and near), never overlapping a frozen suite, with replay
  and per-class targets; content-hashed and storable.
- :func:`label_issues`: confident learning (cleanlab) on out-of-fold probabilities.
- :func:`finetune`: PEFT LoRA on the encoder, seeded, early-stopped, resumable, calibrated.
- :func:`finetune_seeds`: K seeds, the spread of every metric, the median-seed candidate.
- :func:`fit_temperature`: temperature scaling on held-out logits.
"""

from __future__ import annotations

from tunegate.train._calibration import apply_temperature, fit_temperature, nll_loss
from tunegate.train._dataset import (
    Dataset,
    build_dataset,
    check_targets,
    dataset_hash,
    load_dataset,
    override_to_example,
)
from tunegate.train._label_quality import (
    LabelIssue,
    LabelIssueReport,
    label_issues,
    out_of_fold_proba,
)
from tunegate.train._lora import (
    HEAD_LR_MULTIPLIER,
    Splits,
    expected_calibration_error,
    finetune,
    macro_f1,
    split_examples,
)
from tunegate.train._pipeline import (
    adapter_version_id,
    ensure_champion,
    evaluate_candidate,
    register_adapter,
)
from tunegate.train._seeds import SeedSweep, finetune_seeds, metric_spread

__all__ = [
    "HEAD_LR_MULTIPLIER",
    "Dataset",
    "LabelIssue",
    "LabelIssueReport",
    "SeedSweep",
    "Splits",
    "adapter_version_id",
    "apply_temperature",
    "build_dataset",
    "check_targets",
    "dataset_hash",
    "ensure_champion",
    "evaluate_candidate",
    "expected_calibration_error",
    "finetune",
    "finetune_seeds",
    "fit_temperature",
    "label_issues",
    "load_dataset",
    "macro_f1",
    "metric_spread",
    "nll_loss",
    "out_of_fold_proba",
    "override_to_example",
    "register_adapter",
    "split_examples",
]
