"""Batches of a training run: length buckets, micro-batches and padded widths.

Each epoch shuffles the training rows with a generator seeded by ``(seed, epoch)``, sorts
chunks of :data:`~tunegate.lora.config.BUCKET_BATCHES` batches by token length and cuts
batches from them (little padding), then shuffles the batch order. A batch wider than
``training.max_batch_tokens`` runs as micro-batches whose gradients add up to the batch's.
Batches are padded to :func:`padded_width`: exact up to :data:`PAD_EXACT_UP_TO` tokens,
multiples of :data:`PAD_MULTIPLE` above, never past the data set's longest text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate._optional import require
from tunegate.lora.config import BUCKET_BATCHES

if TYPE_CHECKING:
    from tunegate.lora.prefix import PrefixCache

__all__ = [
    "PAD_EXACT_UP_TO",
    "PAD_MULTIPLE",
    "epoch_batches",
    "micro_batches",
    "pad_batch",
    "pad_rows",
    "padded_width",
]

PAD_MULTIPLE = 32
"""Training batches wider than :data:`PAD_EXACT_UP_TO` tokens are padded to a multiple of this.
Length-bucketed batches otherwise come in every width up to ``max_length``, and with them
tensors of every size: glibc's allocator keeps fragments of all of them and the process grows
epoch by epoch (peak RSS on 5,000 Endava tickets, adapters on every linear layer, in
exploratory runs: 2,441 MiB at exact widths, 1,785 MiB at multiples of 32; docs/training.md).
Padding is masked, so predictions do not change."""

PAD_EXACT_UP_TO = 64
"""Narrower batches keep their exact width: their tensors are small, and rounding short texts
(the simulation's median ticket is 21 tokens) up to 32 would cost up to half the compute."""


def padded_width(longest: int, cap: int | None = None) -> int:
    """The batch width for a longest row of ``longest`` tokens (see :data:`PAD_MULTIPLE`),
    never above ``cap`` (the longest text of the data set: texts are truncated to
    ``max_length``, which the model's position embeddings accept; a rounded width might not)."""
    if longest <= PAD_EXACT_UP_TO:
        return longest
    rounded = -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE
    return rounded if cap is None else max(longest, min(rounded, cap))


def pad_batch(
    ids: list[list[int]], rows: Sequence[int], pad_id: int, *, cap: int | None = None
) -> tuple[Any, Any]:
    """Right-padded ``input_ids`` and ``attention_mask`` tensors for ``rows`` (width: the
    longest row rounded up by :func:`padded_width`, at most ``cap``, the longest of all
    ``ids``; pass it when padding many batches of the same ``ids``, else it is computed)."""
    torch = require("torch")
    longest = cap if cap is not None else max((len(x) for x in ids), default=0)
    width = padded_width(max(len(ids[i]) for i in rows), longest)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        seq = ids[i]
        input_ids[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[r, : len(seq)] = 1
    return input_ids, mask


def pad_rows(
    ids: list[list[int]],
    rows: Sequence[int],
    pad_id: int,
    prefix: PrefixCache | None = None,
    cap: int | None = None,
) -> tuple[Any, Any]:
    """:func:`pad_batch` for ``rows``; with an active prefix cache, also stage its cached
    states for the same rows (the next forward pass reads them)."""
    if prefix is not None:
        prefix.load(rows)
    return pad_batch(ids, rows, pad_id, cap=cap)


def micro_batches(
    batch: Sequence[int], lengths: np.ndarray, longest: int, max_tokens: int | None
) -> list[list[int]]:
    """``batch`` cut into consecutive parts of near-equal size whose padded size (rows x width)
    is at most ``max_tokens`` (a single row is never cut); ``None`` keeps it whole.

    Batches come length-sorted from :func:`epoch_batches`, so every part is padded only to
    its own longest row. Gradients of the parts, each loss weighted by its share of the rows,
    add up to the gradient of the whole batch: the optimizer step is the same, the peak
    activation memory is a part's.
    """
    rows = list(batch)
    if max_tokens is None or len(rows) < 2:
        return [rows]
    width = padded_width(int(max(lengths[i] for i in rows)), longest)
    per_part = max(1, max_tokens // width)  # rows that fit in max_tokens
    n_parts = -(-len(rows) // per_part)
    if n_parts <= 1:
        return [rows]
    size = -(-len(rows) // n_parts)  # as even as possible, never above per_part
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def epoch_batches(
    lengths: np.ndarray, rows: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Length-bucketed batches of ``rows`` for one epoch, a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = np.asarray(rows)[rng.permutation(len(rows))]
    chunk = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
