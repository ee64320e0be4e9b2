"""LoRA fine-tuning of the encoder with a classification head: a tight, resumable CPU loop.

The model is ``AutoModelForSequenceClassification`` of the base encoder with PEFT LoRA on
``workflow.training.target_modules``. Every module that the base checkpoint does not contain
(the classifier, and the pooler when a checkpoint lacks it) is trained and saved through
``modules_to_save``, so that reloading the artifact reproduces the trained model exactly.

The loop (not the Hugging Face ``Trainer``):

1. texts are tokenized once; each epoch shuffles them with a generator seeded by
   ``(seed, epoch)``, sorts chunks of 50 batches by token length and cuts batches from them
   (length bucketing: little padding), then shuffles the batch order;
2. AdamW with a linear warm-up (10% of steps) and linear decay;
3. after every epoch: validation macro-F1 (early stopping with ``patience``) and a checkpoint
   with the trainable weights, optimizer, scheduler, RNG states, epoch and early-stopping
   state, written atomically, so a killed run resumes where its last epoch ended;
4. the best epoch's weights are kept; a temperature is fitted on the calibration split;
5. the artifact (``adapter/`` in safetensors and ``manifest.json``) is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.models.artifact import (
    ADAPTER_DIR,
    ARTIFACT_FORMAT,
    ArtifactManifest,
    dir_sha256,
    library_versions,
    read_manifest,
    write_manifest,
)
from tunegate.records import Example
from tunegate.train._calibration import apply_temperature, fit_temperature, nll_loss
from tunegate.train._dataset import Dataset, dataset_hash
from tunegate.train._memory import HeapTrimmer, trim_heap

__all__ = [
    "CHECKPOINT_DIR",
    "HEAD_LR_MULTIPLIER",
    "Splits",
    "expected_calibration_error",
    "finetune",
    "macro_f1",
    "split_examples",
]

CHECKPOINT_DIR = ".checkpoint"
_WARMUP_SHARE = 0.1
HEAD_LR_MULTIPLIER = 10.0
"""Head learning-rate multiplier for a randomly initialised head (no warm start possible)."""
WARM_HEAD_LR_MULTIPLIER = 1.0
"""Head learning-rate multiplier once the head starts at the linear probe."""
PROBE_C = 10.0
"""Inverse L2 strength of the logistic regression that initialises the head."""
"""The classification head (and every newly initialized module) learns this many times faster
than the LoRA matrices: it starts from random weights, the adapters from the identity."""
_BUCKET_BATCHES = 50


# -- small metrics (pure numpy) ---------------------------------------------------------------


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred``."""
    scores = []
    for c in range(n_classes):
        tp = int(((y_pred == c) & (y_true == c)).sum())
        fp = int(((y_pred == c) & (y_true != c)).sum())
        fn = int(((y_pred != c) & (y_true == c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = 15) -> float:
    """Top-label ECE with ``n_bins`` equal-width confidence bins (weighted by bin size)."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


# -- splits -----------------------------------------------------------------------------------


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


# -- model ------------------------------------------------------------------------------------


def frozen_layers(model: Any, workflow: Workflow) -> int:
    """How many lower encoder layers stay without adapters (``training.frozen_layers``)."""
    from tunegate.train._prefix import n_encoder_layers

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


def _lora_model(base: str, labels: Sequence[str], workflow: Workflow) -> tuple[Any, list[str]]:
    peft = require("peft", purpose="LoRA fine-tuning")
    from tunegate.models import load_sequence_classifier

    model, new_modules = load_sequence_classifier(base, labels)
    # The pooler is trained and saved with the head: sentence-transformer checkpoints never
    # trained it for classification (see _warm_start_head).
    has_pooler = any(n.endswith(".pooler") for n, _ in model.named_modules())
    if has_pooler:  # "pooler" covers its sub-modules; nested wrappers would not reload
        new_modules = [m for m in new_modules if ".pooler." not in f".{m}."]
    modules_to_save = sorted({"classifier", *new_modules, *(["pooler"] if has_pooler else [])})
    t = workflow.training
    layers: dict[str, Any] = {}
    frozen = frozen_layers(model, workflow)
    if frozen:
        from tunegate.train._prefix import n_encoder_layers

        layers["layers_to_transform"] = list(range(frozen, n_encoder_layers(model) or 0))
    config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        target_modules=list(t.target_modules),
        modules_to_save=list(modules_to_save),
        **layers,
    )
    return peft.get_peft_model(model, config), modules_to_save


# -- tokenization and batching ----------------------------------------------------------------


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
    )
    return [list(x) for x in encoded["input_ids"]]


def _pad(
    ids: list[list[int]],
    rows: Sequence[int],
    pad_id: int,
    prefix: Any = None,
    cap: int | None = None,
) -> tuple[Any, Any]:
    """Padded tensors for ``rows``; with an active :class:`PrefixCache`, also stage its
    cached states for the same rows. ``cap``: the longest of all ``ids`` (computed per call
    when ``None``; :func:`finetune` computes it once)."""
    from tunegate.train._prefix import pad_batch

    if prefix is not None:
        prefix.load(rows)
    return pad_batch(ids, rows, pad_id, cap=cap)


def micro_batches(
    batch: Sequence[int], lengths: np.ndarray, longest: int, max_tokens: int | None
) -> list[list[int]]:
    """``batch`` cut into consecutive parts of near-equal size whose padded size (rows x width)
    is at most ``max_tokens`` (a single row is never cut); ``None`` keeps it whole.

    Batches come length-sorted from :func:`_epoch_batches`, so every part is padded only to
    its own longest row. Gradients of the parts, each loss weighted by its share of the rows,
    add up to the gradient of the whole batch: the optimizer step is the same, the peak
    activation memory is a part's.
    """
    from tunegate.train._prefix import padded_width

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


def _epoch_batches(
    lengths: np.ndarray, rows: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Length-bucketed batches of ``rows`` for one epoch, a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    order = np.asarray(rows)[rng.permutation(len(rows))]
    chunk = batch_size * _BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _predict_logits(
    model: Any,
    ids: list[list[int]],
    pad_id: int,
    batch_size: int,
    rows: Sequence[int] | None = None,
    prefix: Any = None,
    cap: int | None = None,
) -> np.ndarray:
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
            input_ids, mask = _pad(ids, [idx[p] for p in pos], pad_id, prefix, cap)
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float().numpy()
            for r, p in enumerate(pos):
                out[int(p)] = logits[r]
    if was_training:
        model.train()
    return np.stack(out).astype(np.float32)


# -- checkpoints ------------------------------------------------------------------------------


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model: Any, state: dict[str, Any]) -> None:
    torch = require("torch")
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ModelError(f"checkpoint has parameters the model lacks: {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    torch = require("torch")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _fingerprint(data_hash: str, base_hash: str, config: dict[str, Any], seed: int) -> str:
    from tunegate.records import content_hash

    return content_hash(data_hash, base_hash, config, seed)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    torch = require("torch")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


# -- the loop ---------------------------------------------------------------------------------


def _examples_of(dataset: Dataset | Sequence[Example]) -> tuple[list[Example], str]:
    if isinstance(dataset, Dataset):
        return list(dataset.examples), dataset.hash
    examples = list(dataset)
    return examples, dataset_hash(examples)


def _training_config(
    workflow: Workflow, epochs: int, modules_to_save: list[str], frozen: int
) -> dict[str, Any]:
    t = workflow.training
    return {
        "lora_r": t.lora_r,
        "lora_alpha": t.lora_alpha,
        "lora_dropout": t.lora_dropout,
        "target_modules": list(t.target_modules),
        "frozen_layers": frozen,
        "modules_to_save": modules_to_save,
        "epochs": epochs,
        "learning_rate": t.learning_rate,
        "batch_size": t.batch_size,
        "max_batch_tokens": t.max_batch_tokens,
        "patience": t.patience,
        "validation_fraction": t.validation_fraction,
        "calibration_fraction": t.calibration_fraction,
        "warmup_share": _WARMUP_SHARE,
        "head_lr_multiplier": WARM_HEAD_LR_MULTIPLIER,
        "head_init": "linear_probe",
        "max_length": workflow.model.max_length,
        "head": "AutoModelForSequenceClassification",
    }


def _warm_start_head(
    model: Any,
    ids: list[list[int]],
    y: np.ndarray,
    pad_id: int,
    rows: Sequence[int],
    n_labels: int,
    prefix: Any = None,
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
        _predict_logits(model, ids, pad_id, 64, rows, prefix, cap)
    finally:
        hook.remove()
    features = np.concatenate(captured)
    # _predict_logits visits rows sorted by length (stable): align the labels the same way
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
        base_model: encoder folder (default: ``workflow.model.encoder`` or the shipped one).
        epochs: override ``workflow.training.epochs``.
        parent_proba: the parent model's ``predict_proba``; when given, its ECE on the same
            calibration split is recorded, so "not worse than the parent" can be checked.
        on_checkpoint: called with the epoch number after each checkpoint is written.

    Returns:
        The artifact folder.
    """
    torch = require("torch", purpose="fine-tuning")
    transformers = require("transformers", purpose="fine-tuning")
    from tunegate._progress import make_progress
    from tunegate.models._encoder import resolve_encoder_path

    examples, data_hash = _examples_of(dataset)
    labels = workflow.label_names
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise InputError(f"dataset labels {unknown} are not in the workflow {labels}")
    if len({e.label for e in examples}) < 2:
        raise InputError("the dataset needs examples of at least two classes to train a classifier")
    base = base_model or resolve_encoder_path(workflow.model)
    n_epochs = epochs if epochs is not None else workflow.training.epochs
    t = workflow.training
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_DIR / "checkpoint.pt"
    phases: dict[str, float] = {}  # wall seconds per phase, recorded in the manifest
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = round(now - clock, 3)
        clock = now

    base_hash = dir_sha256(base)

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    with _deterministic():
        model, modules_to_save = _lora_model(base, labels, workflow)
    n_frozen = frozen_layers(model, workflow)
    config = _training_config(workflow, n_epochs, modules_to_save, n_frozen)
    split_seed = seed if split_seed is None else split_seed
    fingerprint = _fingerprint(data_hash, base_hash, {**config, "split_seed": split_seed}, seed)

    if resume and (out / "manifest.json").is_file():
        existing = read_manifest(out)
        if existing.config.get("fingerprint") == fingerprint:
            return out
    has_artifact = (out / "manifest.json").is_file() or (out / ADAPTER_DIR).exists()
    if has_artifact and not ckpt_path.exists():
        raise InputError(f"{out} already holds a different artifact; choose a new --out folder")

    lap("load_model")
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    pad_id = int(tokenizer.pad_token_id or 0)
    ids = _tokenize(tokenizer, [e.text for e in examples], workflow.model.max_length)
    lengths = np.array([len(x) for x in ids])
    longest = int(lengths.max(initial=0))  # the cap of padded widths, once per run
    y = np.array([index[e.label] for e in examples], dtype=np.int64)
    splits = split_examples(
        [e.label for e in examples],
        validation_fraction=t.validation_fraction,
        calibration_fraction=t.calibration_fraction,
        seed=split_seed,
    )
    steps_per_epoch = math.ceil(len(splits.train) / t.batch_size)
    total_steps = max(1, steps_per_epoch * n_epochs)
    warmup = max(1, int(total_steps * _WARMUP_SHARE))

    # The model never leaves this function: on an exception it is dropped still swapped, so
    # the prefix is switched off only on the way to the artifact (closing ``swap`` below).
    lap("tokenize")
    prefix = None
    swap = contextlib.ExitStack()
    if n_frozen:
        from tunegate.train._prefix import PrefixCache

        prefix = PrefixCache(model, n_frozen, ids, pad_id, range(len(ids)))
        swap.enter_context(prefix.active())
    trim_heap()
    lap("prefix_cache")

    warm = False
    if not (resume and ckpt_path.is_file()):
        warm = _warm_start_head(
            model, ids, y, pad_id, splits.train, len(labels), prefix, cap=longest
        )
    trim_heap()
    lap("warm_start")
    head_multiplier = WARM_HEAD_LR_MULTIPLIER if warm else HEAD_LR_MULTIPLIER
    head = [p for n, p in model.named_parameters() if p.requires_grad and "modules_to_save" in n]
    lora = [
        p for n, p in model.named_parameters() if p.requires_grad and "modules_to_save" not in n
    ]
    optimizer = torch.optim.AdamW(
        [
            {"params": lora, "lr": t.learning_rate},
            {"params": head, "lr": t.learning_rate * head_multiplier},
        ],
    )

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    start_epoch = 0
    best_state = _trainable_state(model)
    best_score = -math.inf
    best_epoch = 0
    bad_epochs = 0
    history: list[dict[str, Any]] = []
    train_seconds = 0.0
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=False)
        if ckpt.get("fingerprint") == fingerprint:
            _load_trainable(model, ckpt["trainable"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            random.setstate(ckpt["rng"]["python"])
            np.random.set_state(ckpt["rng"]["numpy"])
            start_epoch = int(ckpt["epoch"])
            best_state = ckpt["best_state"]
            best_score = float(ckpt["best_score"])
            best_epoch = int(ckpt["best_epoch"])
            bad_epochs = int(ckpt["bad_epochs"])
            history = list(ckpt["history"])
            train_seconds = float(ckpt.get("train_seconds", 0.0))
    resumed_from = start_epoch
    stopped_early = bool(history and history[-1].get("stop"))
    if start_epoch == 0 and splits.validation:
        # epoch 0 is a candidate too: training must beat the warm-started probe on validation
        model.eval()
        val_logits = _predict_logits(model, ids, pad_id, 64, splits.validation, prefix, longest)
        y_val = y[splits.validation]
        pred = val_logits.argmax(axis=1)
        best_score = macro_f1(y_val, pred, len(labels)) - 1e-6 * nll_loss(val_logits, y_val)
        best_state = _trainable_state(model)
        history_zero = {
            "epoch": 0,
            "val_macro_f1": macro_f1(y_val, pred, len(labels)),
            "val_accuracy": float((pred == y_val).mean()),
            "val_loss": nll_loss(val_logits, y_val),
            "warm_start": warm,
        }
    else:
        history_zero = None

    y_t = torch.from_numpy(y)
    trimmer = HeapTrimmer()
    model.train()
    with _deterministic(), make_progress() as progress:
        task = progress.add_task(
            f"fine-tune seed {seed}",
            total=total_steps,
            completed=start_epoch * steps_per_epoch,
            status="",
        )
        for epoch in range(start_epoch, n_epochs):
            if stopped_early:
                break
            began = time.perf_counter()
            running = 0.0
            seen = 0
            for batch in _epoch_batches(lengths, splits.train, t.batch_size, seed, epoch):
                optimizer.zero_grad(set_to_none=True)
                # one optimizer step per batch; a wide batch runs as micro-batches whose
                # gradients add up to the whole batch's mean (bounded activation memory)
                for part in micro_batches(batch, lengths, longest, t.max_batch_tokens):
                    input_ids, mask = _pad(ids, part, pad_id, prefix, longest)
                    logits = model(input_ids=input_ids, attention_mask=mask).logits
                    loss = torch.nn.functional.cross_entropy(logits, y_t[part])
                    (loss * (len(part) / len(batch))).backward()
                    running += float(loss.detach()) * len(part)
                optimizer.step()
                scheduler.step()
                trimmer.step()  # bounded heap growth (train/_memory.py)
                seen += len(batch)
                progress.update(
                    task,
                    advance=1,
                    status=f"epoch {epoch + 1}/{n_epochs} loss {running / seen:.3f}",
                )
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": running / max(1, seen)}
            if splits.validation:
                val_logits = _predict_logits(
                    model, ids, pad_id, 64, splits.validation, prefix, longest
                )
                y_val = y[splits.validation]
                pred = val_logits.argmax(axis=1)
                row["val_macro_f1"] = macro_f1(y_val, pred, len(labels))
                row["val_accuracy"] = float((pred == y_val).mean())
                row["val_loss"] = nll_loss(val_logits, y_val)
                score = row["val_macro_f1"] - 1e-6 * row["val_loss"]
            else:
                score = -row["train_loss"]
            if score > best_score:
                best_score, best_epoch, bad_epochs = score, epoch + 1, 0
                best_state = _trainable_state(model)
            else:
                bad_epochs += 1
            train_seconds += time.perf_counter() - began
            row["stop"] = bad_epochs >= t.patience
            history.append(row)
            _save_checkpoint(
                ckpt_path,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "trainable": _trainable_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "python": random.getstate(),
                        "numpy": np.random.get_state(),
                    },
                    "best_state": best_state,
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": history,
                    "train_seconds": train_seconds,
                },
            )
            if on_checkpoint is not None:
                on_checkpoint(epoch + 1)
            if row["stop"]:
                break

    trim_heap()
    lap("epochs")
    _load_trainable(model, best_state)
    model.eval()
    metrics: dict[str, Any] = {
        "n_train": len(splits.train),
        "n_validation": len(splits.validation),
        "n_calibration": len(splits.calibration),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_early": bool(history and history[-1]["stop"] and len(history) < n_epochs),
        "history": history,
        "train_seconds": round(train_seconds, 3),
        "resumed_from_epoch": resumed_from,
    }
    if history_zero is not None:
        metrics["warm_start"] = history_zero
    best_row = next((r for r in [*history, history_zero or {}] if r.get("epoch") == best_epoch), {})
    for key in ("val_macro_f1", "val_accuracy", "val_loss"):
        if key in best_row:
            metrics[key] = best_row[key]

    temperature = 1.0
    if splits.calibration:
        cal_logits = _predict_logits(model, ids, pad_id, 64, splits.calibration, prefix, longest)
        y_cal = y[splits.calibration]
        # The temperature is fitted on the calibration and validation splits together: one
        # scalar, but on a few hundred tickets the calibration split alone is too small to fit
        # it stably (validation only chose the epoch; the figures below stay on calibration).
        fit_rows = [*splits.calibration, *splits.validation]
        fit_logits = _predict_logits(model, ids, pad_id, 64, fit_rows, prefix, longest)
        temperature = fit_temperature(fit_logits, y[fit_rows])
        raw = apply_temperature(cal_logits, 1.0)
        calibrated = apply_temperature(cal_logits, temperature)
        metrics.update(
            {
                "cal_accuracy": float((cal_logits.argmax(axis=1) == y_cal).mean()),
                "cal_macro_f1": macro_f1(y_cal, cal_logits.argmax(axis=1), len(labels)),
                "ece_uncalibrated": expected_calibration_error(y_cal, raw),
                "ece_calibrated": expected_calibration_error(y_cal, calibrated),
                "nll_uncalibrated": nll_loss(cal_logits, y_cal),
                "nll_calibrated": nll_loss(cal_logits, y_cal, temperature=temperature),
            }
        )
        if parent_proba is not None:
            parent = np.asarray(parent_proba([examples[i].text for i in splits.calibration]))
            metrics["ece_parent"] = expected_calibration_error(y_cal, parent)
    metrics["temperature"] = temperature
    lap("calibration")
    metrics["phase_seconds"] = phases
    if prefix is not None:
        metrics["prefix_cache"] = {
            "frozen_layers": prefix.k,
            "texts": prefix.n_cached,
            "megabytes": round(prefix.nbytes / 2**20, 1),
        }
    swap.close()  # the full model again, for saving

    # Write the artifact next to the checkpoint, then swap it into place.
    adapter_tmp = out / (ADAPTER_DIR + ".tmp")
    if adapter_tmp.exists():
        shutil.rmtree(adapter_tmp)
    model.save_pretrained(str(adapter_tmp), safe_serialization=True)
    if (out / ADAPTER_DIR).exists():
        shutil.rmtree(out / ADAPTER_DIR)
    os.replace(adapter_tmp, out / ADAPTER_DIR)
    manifest = ArtifactManifest(
        format=ARTIFACT_FORMAT,
        labels=labels,
        base_model=base,
        base_model_hash=base_hash,
        dataset_hash=data_hash,
        config={
            **config,
            "fingerprint": fingerprint,
            "split_sizes": [len(splits.train), len(splits.validation), len(splits.calibration)],
        },
        metrics=json.loads(json.dumps(metrics)),
        temperature=temperature,
        max_length=workflow.model.max_length,
        seed=seed,
        library_versions=library_versions(),
    )
    write_manifest(out, manifest)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return out
