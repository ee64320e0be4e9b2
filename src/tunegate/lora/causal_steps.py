"""The pieces every LoRA run on the local causal LM shares: the PEFT model on a copy of the
base, AdamW with a linear warm-up and decay, and one epoch of masked-target steps.

Classification (:mod:`tunegate.lora.causal`: the loss on the label's answer tokens) and
supervised fine-tuning (:mod:`tunegate.lora.sft`: the loss on the assistant's reply) differ
only in the sequences they build; the steps that train on them are these. A sequence is its
token ids and, position by position, its target ids (:data:`IGNORE` where no loss is taken).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.errors import InputError
from tunegate.lora.batching import epoch_batches, micro_batches, pad_batch
from tunegate.lora.causal_artifact import IGNORE
from tunegate.lora.config import WARMUP_SHARE

__all__ = [
    "EpochResult",
    "causal_lora_model",
    "step_status",
    "train_causal_epoch",
    "warmup_decay",
]


def causal_lora_model(
    base: Any, *, r: int, alpha: float, dropout: float, target_modules: Sequence[str]
) -> Any:
    """A PEFT LoRA model on a deep copy of ``base`` (the shared base model is never changed);
    :class:`InputError` when ``target_modules`` name no module of the model."""
    peft = require("peft", purpose="LoRA adapters")
    config = peft.LoraConfig(
        task_type=peft.TaskType.CAUSAL_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
    )
    try:
        return peft.get_peft_model(copy.deepcopy(base), config)
    except ValueError as exc:
        raise InputError(
            f"target_modules {list(target_modules)} do not match the local LLM's modules "
            f"({exc}); use e.g. [q_proj, v_proj]"
        ) from exc


def warmup_decay(optimizer: Any, total_steps: int, warmup_share: float = WARMUP_SHARE) -> Any:
    """A ``LambdaLR`` rising linearly over the first ``warmup_share`` of ``total_steps`` (at
    least one step) and falling linearly to zero at the end."""
    torch = require("torch", purpose="fine-tuning")
    total = max(1, total_steps)
    warmup = max(1, int(total * warmup_share))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


class EpochResult:
    """What one epoch did: the summed row-weighted loss, the rows seen, the tokens run."""

    def __init__(self) -> None:
        self.loss_sum = 0.0
        self.rows = 0
        self.tokens = 0
        """Tokens run forward and backward (padding excluded)."""

    @property
    def mean_loss(self) -> float:
        """Mean per-row loss over the epoch (each row's loss is its target tokens' mean)."""
        return self.loss_sum / max(1, self.rows)


def train_causal_epoch(
    model: Any,
    ids: list[list[int]],
    targets: list[list[int]],
    lengths: np.ndarray,
    rows: Sequence[int],
    *,
    batch_size: int,
    max_batch_tokens: int | None,
    pad_id: int,
    seed: int,
    epoch: int,
    optimizer: Any,
    scheduler: Any,
    on_step: Callable[[float, int], None] | None = None,
) -> EpochResult:
    """One epoch over ``rows``: length-bucketed batches (a pure function of ``seed`` and
    ``epoch``), cut into micro-batches of at most ``max_batch_tokens`` padded tokens whose
    gradients add up to the batch's, one optimizer and scheduler step per batch.

    ``targets[i]`` is as long as ``ids[i]`` or shorter (the rest is ignored): the loss of a row
    is the cross-entropy of its non-:data:`IGNORE` targets (``labels`` of a transformers causal
    LM: shifted inside the model). ``on_step(batch_loss, rows_in_batch)`` is called after each
    optimizer step."""
    from tunegate.lora.memory import HeapTrimmer

    torch = require("torch", purpose="fine-tuning")
    model.train()
    longest = int(lengths.max(initial=0))
    trimmer = HeapTrimmer()
    result = EpochResult()
    for batch in epoch_batches(lengths, rows, batch_size, seed, epoch):
        optimizer.zero_grad(set_to_none=True)
        batch_loss = 0.0
        for part in micro_batches(batch, lengths, longest, max_batch_tokens):
            input_ids, mask = pad_batch(ids, part, pad_id, cap=longest)
            labels = torch.full_like(input_ids, IGNORE)
            for r, i in enumerate(part):
                labels[r, : len(targets[i])] = torch.tensor(targets[i])
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            (loss * (len(part) / len(batch))).backward()
            batch_loss += float(loss.detach()) * len(part)
            result.tokens += int(mask.sum())
        optimizer.step()
        scheduler.step()
        trimmer.step()
        result.loss_sum += batch_loss
        result.rows += len(batch)
        if on_step is not None:
            on_step(batch_loss / len(batch), len(batch))
    return result


def step_status(progress: Any, task: Any, label: str) -> Callable[[float, int], None]:
    """An ``on_step`` for :func:`train_causal_epoch` that advances ``task`` of a
    :func:`tunegate._progress.make_progress` bar and shows the epoch's running mean loss."""
    total = [0.0, 0]

    def step(loss: float, rows: int) -> None:
        total[0] += loss * rows
        total[1] += rows
        progress.update(task, advance=1, status=f"{label} loss {total[0] / total[1]:.3f}")

    return step
