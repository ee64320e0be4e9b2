"""The classification head's warm start: training begins at a linear probe of the encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate._optional import require
from tunegate.lora.config import EVAL_BATCH_SIZE, PROBE_C
from tunegate.lora.model import predict_logits

if TYPE_CHECKING:
    from tunegate.lora.prefix import PrefixCache

__all__ = ["warm_start_head"]


def warm_start_head(
    model: Any,
    ids: list[list[int]],
    y: np.ndarray,
    pad_id: int,
    rows: Sequence[int],
    n_labels: int,
    prefix: PrefixCache | None = None,
    *,
    cap: int | None = None,
) -> bool:
    """Start the classification head at a linear probe of the frozen encoder.

    BERT-style heads read ``tanh(W h_cls + b)``; the pooler ``W`` is missing from sentence-
    transformer checkpoints and would start random. It is set to the identity, and the
    classifier to a multinomial logistic regression fitted on the pooled features of the
    training split. LoRA's ``B`` matrices start at zero, so before the first step the model
    predicts exactly like that probe: training refines a working classifier instead of a
    random head (which, on a few hundred tickets, collapsed to the majority class). Returns
    False (nothing changed) for architectures without a pooler + linear classifier.
    """
    torch = require("torch", purpose="fine-tuning")
    names = ("classifier", "classifier.original_module", "classifier.modules_to_save.default")
    heads = [
        m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith(names)
    ]
    if not heads:
        return False
    # The trained copy of the pooler (in modules_to_save, saved with the adapter) starts at
    # the identity, so pooled = tanh(h_cls); a pooler outside modules_to_save is left alone.
    new_poolers = [
        m for n, m in model.named_modules() if n.endswith("pooler.modules_to_save.default")
    ]
    with torch.no_grad():
        for pooler in new_poolers:
            dense = getattr(pooler, "dense", None)
            if isinstance(dense, torch.nn.Linear):
                dense.weight.copy_(torch.eye(dense.weight.shape[0]))
                dense.bias.zero_()
    captured: list[np.ndarray] = []
    active = [
        m
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.endswith(names[2])
    ]
    target = active[0] if active else heads[0]
    hook = target.register_forward_hook(
        lambda _m, inputs, _out: captured.append(inputs[0].detach().numpy().copy())
    )
    try:
        predict_logits(model, ids, pad_id, EVAL_BATCH_SIZE, rows, prefix, cap)
    finally:
        hook.remove()
    features = np.concatenate(captured)
    # predict_logits visits rows sorted by length (stable): align the labels the same way
    rows_arr = np.asarray(list(rows))
    order = np.argsort(np.array([len(ids[i]) for i in rows_arr]), kind="stable")
    labels = y[rows_arr[order]]
    sklearn_lm = require("sklearn.linear_model", purpose="the head's warm start")
    probe = sklearn_lm.LogisticRegression(C=PROBE_C, max_iter=2000).fit(features, labels)
    weight = np.zeros((n_labels, features.shape[1]), dtype=np.float32)
    bias = np.full(n_labels, -10.0, dtype=np.float32)  # classes absent from training
    coef = probe.coef_ if len(probe.classes_) > 2 else np.vstack([-probe.coef_, probe.coef_]) / 2
    inter = (
        probe.intercept_
        if len(probe.classes_) > 2
        else np.array([-probe.intercept_[0], probe.intercept_[0]]) / 2
    )
    for row, c in enumerate(probe.classes_):
        weight[int(c)] = coef[row]
        bias[int(c)] = inter[row]
    with torch.no_grad():
        for head in heads:
            head.weight.copy_(torch.from_numpy(weight))
            head.bias.copy_(torch.from_numpy(bias))
    return True
