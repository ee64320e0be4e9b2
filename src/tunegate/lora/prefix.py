"""Frozen-prefix caching: the lower encoder layers run once per text, not once per epoch.

With ``training.frozen_layers = k``, LoRA adapters go only into the encoder layers above
``k``; the embeddings and the first ``k`` layers stay exactly as in the base model. Their
output for a text therefore never changes during training, so it is computed once (in eval
mode, no gradient) and kept per text, unpadded. While training, the backbone's embedding
module is replaced by a *replay* module that returns the cached states of the current batch,
and its layer list by the top layers only; attention masks, pooler and head are untouched.
The states are stored in float16 (see :data:`STORE_DTYPE`): 5,000 tickets of 128 tokens take
about 490 MB instead of 980 MB.

What it saves, per epoch: the forward pass through ``k`` layers and the backward pass through
them (autograd stops at the first adapted layer anyway, but PyTorch still has to run the
forward, and without the cache it runs it on every epoch). What it changes: dropout inside the
frozen layers is not applied during training (they run in eval mode once), which is the only
difference from training the same adapters without the cache.

Padded widths come from :mod:`tunegate.lora.batching`. Supported: BERT-style backbones (a
module with ``embeddings`` and ``encoder.layer``). For any other architecture
:func:`find_backbone` returns ``None`` and training runs uncached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from tunegate.lora import batching

__all__ = ["STORE_DTYPE", "PrefixCache", "find_backbone", "n_encoder_layers"]

STORE_DTYPE = torch.float16
"""Cached states are kept in half precision (half the memory: 0.75 kB per token for MiniLM)
and computed on in float32; the rounding (relative 5e-4) is far below dropout's noise."""


def find_backbone(model: Any) -> Any | None:
    """The first sub-module with ``embeddings`` and an ``encoder.layer`` list, else None."""
    for module in model.modules():
        encoder = getattr(module, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if hasattr(module, "embeddings") and isinstance(layers, torch.nn.ModuleList):
            return module
    return None


def n_encoder_layers(model: Any) -> int | None:
    """Number of encoder layers of a BERT-style model, else None."""
    backbone = find_backbone(model)
    return None if backbone is None else len(backbone.encoder.layer)


class _Replay(torch.nn.Module):
    """Stands in for the embedding module: returns the batch of cached prefix states."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError("prefix replay called without a loaded batch")
        return self.value


class PrefixCache:
    """Cached outputs of the embeddings + first ``k`` encoder layers, unpadded, in one
    contiguous buffer (a row per token; ``text -> (offset, length)``)."""

    def __init__(
        self,
        model: Any,
        k: int,
        ids: list[list[int]],
        pad_id: int,
        rows: Sequence[int],
        *,
        batch_size: int = 64,
    ) -> None:
        backbone = find_backbone(model)
        if backbone is None:
            raise ValueError("the model has no BERT-style backbone (embeddings + encoder.layer)")
        n_layers = len(backbone.encoder.layer)
        if not 0 < k < n_layers:
            raise ValueError(f"frozen_layers must be between 1 and {n_layers - 1}, got {k}")
        self.backbone = backbone
        self.k = k
        self._replay = _Replay()
        self._spans: dict[int, tuple[int, int]] = {}
        self._buffer = torch.empty(0)
        self._compute(ids, pad_id, list(rows), batch_size)

    @property
    def n_cached(self) -> int:
        return len(self._spans)

    @property
    def nbytes(self) -> int:
        return self._buffer.element_size() * self._buffer.nelement()

    @contextlib.contextmanager
    def _swapped(self, embeddings: torch.nn.Module, layers: torch.nn.ModuleList) -> Iterator[None]:
        bb = self.backbone
        old_embeddings, old_layers = bb.embeddings, bb.encoder.layer
        bb.embeddings, bb.encoder.layer = embeddings, layers
        try:
            yield
        finally:
            bb.embeddings, bb.encoder.layer = old_embeddings, old_layers

    def _compute(self, ids: list[list[int]], pad_id: int, rows: list[int], batch_size: int) -> None:
        bb = self.backbone
        lower = torch.nn.ModuleList(list(bb.encoder.layer)[: self.k])
        order = sorted(rows, key=lambda i: len(ids[i]))
        self._longest = max((len(ids[i]) for i in rows), default=0)
        offset = 0
        for i in order:
            self._spans[i] = (offset, len(ids[i]))
            offset += len(ids[i])
        hidden_size = int(bb.config.hidden_size)
        self._buffer = torch.empty((offset, hidden_size), dtype=STORE_DTYPE)
        was_training = bb.training
        bb.eval()
        try:
            with self._swapped(bb.embeddings, lower), torch.no_grad():
                for start in range(0, len(order), batch_size):
                    batch = order[start : start + batch_size]
                    input_ids, mask = batching.pad_batch(ids, batch, pad_id, cap=self._longest)
                    hidden = bb(input_ids=input_ids, attention_mask=mask).last_hidden_state
                    for r, i in enumerate(batch):
                        start_at, length = self._spans[i]
                        self._buffer[start_at : start_at + length] = hidden[r, :length]
        finally:
            bb.train(was_training)

    def load(self, rows: Sequence[int]) -> None:
        """Stage the padded cached states of ``rows`` (in this order) for the next forward."""
        spans = [self._spans[i] for i in rows]
        width = batching.padded_width(max(length for _, length in spans), self._longest)
        batch = torch.zeros((len(spans), width, self._buffer.shape[1]), dtype=torch.float32)
        for r, (start_at, length) in enumerate(spans):
            batch[r, :length] = self._buffer[start_at : start_at + length]
        self._replay.value = batch

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """While active, the model reads the staged states instead of running the prefix."""
        upper = torch.nn.ModuleList(list(self.backbone.encoder.layer)[self.k :])
        with self._swapped(self._replay, upper):
            try:
                yield
            finally:
                self._replay.value = None
