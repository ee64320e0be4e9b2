"""The run's data: token ids and the stratified train / validation / calibration split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunegate.errors import InputError

__all__ = ["Splits", "label_index", "split_examples", "tokenize"]


@dataclass(frozen=True)
class Splits:
    """Indices into the dataset's examples: train, validation (early stopping), calibration."""

    train: list[int]
    validation: list[int]
    calibration: list[int]


def split_examples(
    labels: Sequence[str], *, validation_fraction: float, calibration_fraction: float, seed: int
) -> Splits:
    """Stratified train/validation/calibration split, seeded; every class keeps >= 1 train row.

    Per class of ``n`` rows, ``round(n * fraction)`` go to validation and to calibration, but
    only when at least one row is left for training.
    """
    rng = random.Random(f"split:{seed}")
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    train: list[int] = []
    val: list[int] = []
    cal: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        n = len(rows)
        n_val = round(n * validation_fraction)
        n_cal = round(n * calibration_fraction)
        while n_val + n_cal >= n and (n_val or n_cal):
            if n_cal >= n_val and n_cal:
                n_cal -= 1
            else:
                n_val -= 1
        val.extend(rows[:n_val])
        cal.extend(rows[n_val : n_val + n_cal])
        train.extend(rows[n_val + n_cal :])
    return Splits(sorted(train), sorted(val), sorted(cal))


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of every text, truncated to ``max_length``, unpadded."""
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
    )
    return [list(x) for x in encoded["input_ids"]]


def label_index(labels: Sequence[str], rows_labels: Sequence[str]) -> dict[str, int]:
    """Label -> column of the workflow's ``labels``, after checking a training set's labels:
    every one is a workflow label, and there are at least two classes (InputError otherwise).
    Shared by the encoder and the causal-LM trainers."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(rows_labels) - set(index))
    if unknown:
        raise InputError(f"dataset labels {unknown} are not in the workflow {list(labels)}")
    if len(set(rows_labels)) < 2:
        raise InputError("the dataset needs examples of at least two classes to train a classifier")
    return index
