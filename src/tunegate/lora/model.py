"""The PEFT model on the encoder: built for training or serving, its head warm-started.

The model is ``AutoModelForSequenceClassification`` of the base encoder with PEFT LoRA on
``workflow.training.target_modules``. Every module that the base checkpoint does not contain
(the classifier, and the pooler when a checkpoint lacks it) is trained and saved through
``modules_to_save``, so that reloading the artifact reproduces the trained model exactly.
With ``training.frozen_layers = k`` the adapters go only into the layers above ``k``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate._optional import require
from tunegate.config import TrainingSettings, Workflow
from tunegate.errors import InputError, ModelError
from tunegate.lora.batching import pad_rows
from tunegate.lora.config import EVAL_BATCH_SIZE
from tunegate.models._encoder import _quiet_transformers

if TYPE_CHECKING:
    from tunegate.lora.prefix import PrefixCache

__all__ = [
    "build_lora_model",
    "frozen_layers",
    "load_sequence_classifier",
    "lora_modules_to_save",
    "merged_model",
    "predict_logits",
    "training_model",
]


def load_sequence_classifier(base_model: str, labels: Sequence[str]) -> tuple[Any, list[str]]:
    """``AutoModelForSequenceClassification`` on ``base_model`` with ``len(labels)`` outputs.

    Returns ``(model, new_modules)``: ``new_modules`` are the dotted module names whose
    weights were missing from the checkpoint (newly initialized, so they must be trained and
    saved with the adapter).
    """
    transformers = require("transformers", purpose="LoRA classifiers")
    labels = list(labels)
    try:
        with _quiet_transformers():
            model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
                base_model,
                num_labels=len(labels),
                output_loading_info=True,
                id2label=dict(enumerate(labels)),
                label2id={y: i for i, y in enumerate(labels)},
            )
    except Exception as exc:
        raise ModelError(f"could not load {base_model} as a sequence classifier: {exc}") from exc
    missing = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())})
    return model, missing


def lora_modules_to_save(base_model: str, labels: Sequence[str]) -> list[str]:
    """Modules a LoRA adapter on ``base_model`` must save in full (head + missing modules)."""
    _, missing = load_sequence_classifier(base_model, labels)
    return missing


def _peft_model(
    model: Any, training: TrainingSettings, modules_to_save: list[str], **extra: Any
) -> Any:
    peft = require("peft", purpose="LoRA adapters")
    config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=training.lora_r,
        lora_alpha=training.lora_alpha,
        lora_dropout=training.lora_dropout,
        target_modules=list(training.target_modules),
        modules_to_save=modules_to_save,
        **extra,
    )
    return peft.get_peft_model(model, config)


def build_lora_model(
    base_model: str,
    labels: Sequence[str],
    training: TrainingSettings | None = None,
    *,
    seed: int = 0,
) -> Any:
    """A ``PeftModel`` for sequence classification, ready to train.

    LoRA on ``training.target_modules`` with rank/alpha/dropout from ``training``; the head
    and any module missing from the checkpoint go into ``modules_to_save``. Seeded, so the
    same arguments give the same initial weights.
    """
    torch = require("torch")
    require("peft", purpose="LoRA adapters")
    training = training or TrainingSettings()
    torch.manual_seed(seed)
    model, missing = load_sequence_classifier(base_model, labels)
    return _peft_model(model, training, missing)


def frozen_layers(model: Any, workflow: Workflow) -> int:
    """How many lower encoder layers stay without adapters (``training.frozen_layers``)."""
    from tunegate.lora.prefix import n_encoder_layers

    wanted = workflow.training.frozen_layers
    if wanted == 0:
        return 0
    n_layers = n_encoder_layers(model)
    if n_layers is None:
        if wanted is None:
            return 0  # no BERT-style backbone: adapters everywhere, no cache
        raise InputError(
            f"training.frozen_layers = {wanted} needs a BERT-style encoder (embeddings + "
            f"encoder.layer); this is a {type(model).__name__}: set training.frozen_layers: 0"
        )
    if wanted is None:
        return n_layers // 2
    if wanted >= n_layers:
        raise InputError(
            f"training.frozen_layers = {wanted} leaves no layer to adapt: the encoder has "
            f"{n_layers} layers; use at most {n_layers - 1} (or 0 for adapters everywhere)"
        )
    return wanted


def training_model(base: str, labels: Sequence[str], workflow: Workflow) -> tuple[Any, list[str]]:
    """The PEFT model a training run starts from, and its ``modules_to_save``.

    The pooler is trained and saved with the head: sentence-transformer checkpoints never
    trained it for classification (see :func:`tunegate.lora.head.warm_start_head`). Adapters
    skip the lower :func:`frozen_layers`.
    """
    require("peft", purpose="LoRA fine-tuning")
    model, new_modules = load_sequence_classifier(base, labels)
    has_pooler = any(n.endswith(".pooler") for n, _ in model.named_modules())
    if has_pooler:  # "pooler" covers its sub-modules; nested wrappers would not reload
        new_modules = [m for m in new_modules if ".pooler." not in f".{m}."]
    modules_to_save = sorted({"classifier", *new_modules, *(["pooler"] if has_pooler else [])})
    layers: dict[str, Any] = {}
    frozen = frozen_layers(model, workflow)
    if frozen:
        from tunegate.lora.prefix import n_encoder_layers

        layers["layers_to_transform"] = list(range(frozen, n_encoder_layers(model) or 0))
    peft_model = _peft_model(model, workflow.training, list(modules_to_save), **layers)
    return peft_model, modules_to_save


def merged_model(peft_model: Any) -> Any:
    """A plain ``transformers`` classifier with the LoRA weights merged into the base weights.

    Works on a deep copy, so ``peft_model`` keeps its adapter (it stays usable as the
    PyTorch fallback). ``modules_to_save`` (head, pooler) become ordinary modules.
    """
    try:
        merged = copy.deepcopy(peft_model).merge_and_unload()
    except Exception as exc:
        raise ModelError(f"could not merge the LoRA adapter into the base: {exc}") from exc
    return merged.eval()


def predict_logits(
    model: Any,
    ids: list[list[int]],
    pad_id: int,
    batch_size: int = EVAL_BATCH_SIZE,
    rows: Sequence[int] | None = None,
    prefix: PrefixCache | None = None,
    cap: int | None = None,
) -> np.ndarray:
    """Logits (n, k) float32 of ``rows`` (default: all of ``ids``), in ``rows`` order.

    Rows run in length order (stable) in batches of ``batch_size``, in eval mode without
    gradients; a model that was training is switched back afterwards.
    """
    torch = require("torch")
    idx = list(range(len(ids))) if rows is None else list(rows)
    if not idx:
        n_labels = int(model.config.num_labels) if hasattr(model, "config") else 0
        return np.zeros((0, n_labels), dtype=np.float32)
    lengths = np.array([len(ids[i]) for i in idx])
    order = np.argsort(lengths, kind="stable")
    out: list[np.ndarray] = [np.empty(0)] * len(idx)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            pos = order[start : start + batch_size]
            input_ids, mask = pad_rows(ids, [idx[p] for p in pos], pad_id, prefix, cap)
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float().numpy()
            for r, p in enumerate(pos):
                out[int(p)] = logits[r]
    if was_training:
        model.train()
    return np.stack(out).astype(np.float32)
