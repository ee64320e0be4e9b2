"""The training loop: a tight, resumable CPU loop (not the Hugging Face ``Trainer``).

:func:`train_adapter` runs five phases, each a function here:

1. **setup**: seed, build the PEFT model (:mod:`~tunegate.lora.model`), fingerprint the run
   (:mod:`~tunegate.lora.config`), tokenize once, split (:mod:`~tunegate.lora.data`), cache
   the frozen prefix (:mod:`~tunegate.lora.prefix`);
2. **resume**: restore a matching checkpoint (:mod:`~tunegate.lora.state`), or warm-start
   the head at a linear probe (:mod:`~tunegate.lora.head`) and score it as epoch 0;
3. **epochs**: length-bucketed batches and micro-batches (:mod:`~tunegate.lora.batching`),
   AdamW with a linear warm-up (10% of steps) and linear decay; after every epoch,
   validation macro-F1 (early stopping with ``patience``) and an atomic checkpoint;
4. **calibration**: the best epoch's weights, a temperature fitted on the calibration and
   validation splits, calibration figures;
5. **artifact**: ``adapter/`` (safetensors) and ``manifest.json``
   (:mod:`~tunegate.lora.artifact`), then the checkpoint is removed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.lora.artifact import (
    ADAPTER_DIR,
    ARTIFACT_FORMAT,
    ArtifactManifest,
    dir_sha256,
    library_versions,
    read_manifest,
    write_artifact,
)
from tunegate.lora.batching import epoch_batches, micro_batches, pad_rows
from tunegate.lora.calibration import ParentProba, calibrate
from tunegate.lora.causal_steps import warmup_decay
from tunegate.lora.config import (
    HEAD_LR_MULTIPLIER,
    WARM_HEAD_LR_MULTIPLIER,
    LoraRecipe,
    fingerprint,
)
from tunegate.lora.data import label_index, split_examples, tokenize
from tunegate.lora.head import warm_start_head
from tunegate.lora.memory import HeapTrimmer, trim_heap
from tunegate.lora.model import frozen_layers, training_model
from tunegate.lora.run import TrainingRun
from tunegate.lora.state import (
    CHECKPOINT_DIR,
    TrainingState,
    checkpoint_path,
    deterministic,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    trainable_state,
)
from tunegate.metrics import macro_f1_score, nll_loss
from tunegate.records import Example

__all__ = ["train_adapter"]


def train_adapter(
    examples: Sequence[Example],
    workflow: Workflow,
    out_dir: str | Path,
    *,
    data_hash: str,
    seed: int = 0,
    split_seed: int | None = None,
    resume: bool = True,
    base_model: str | None = None,
    epochs: int | None = None,
    parent_proba: ParentProba | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> Path:
    """Train a LoRA adapter on ``examples`` and write the artifact to ``out_dir``.

    ``data_hash`` identifies the examples (``tunegate.train.dataset_hash``); the other
    arguments are those of :func:`tunegate.train.finetune`. Returns the artifact folder.
    """
    run = _setup(
        examples, workflow, Path(out_dir), data_hash, seed, split_seed, resume, base_model, epochs
    )
    if run is None:  # a finished artifact with this fingerprint
        return Path(out_dir)
    active = run.prefix.active() if run.prefix is not None else contextlib.nullcontext()
    with active:
        state, optimizer, scheduler = _resume(run, resume)
        _epochs(run, state, optimizer, scheduler, on_checkpoint)
        metrics, temperature = calibrate(run, state, parent_proba)
    _write(run, metrics, temperature)
    return run.out


# -- phase 1: setup ---------------------------------------------------------------------------


def _setup(
    examples: Sequence[Example],
    workflow: Workflow,
    out: Path,
    data_hash: str,
    seed: int,
    split_seed: int | None,
    resume: bool,
    base_model: str | None,
    epochs: int | None,
) -> TrainingRun | None:
    """Build the model and the data of a run; None when ``out`` already holds its artifact."""
    transformers = require("transformers", purpose="fine-tuning")
    from tunegate.models._encoder import resolve_encoder_path

    rows = list(examples)
    labels = workflow.label_names
    index = label_index(labels, [e.label for e in rows])
    base = base_model or resolve_encoder_path(workflow.model)
    clock = time.perf_counter()
    base_hash = dir_sha256(base)
    seed_everything(seed)
    with deterministic():
        model, modules_to_save = training_model(base, labels, workflow)
    recipe = LoraRecipe.from_workflow(
        workflow,
        epochs=epochs if epochs is not None else workflow.training.epochs,
        modules_to_save=modules_to_save,
        frozen_layers=frozen_layers(model, workflow),
    )
    split_seed = seed if split_seed is None else split_seed
    fp = fingerprint(
        recipe, data_hash=data_hash, base_hash=base_hash, seed=seed, split_seed=split_seed
    )
    finished = resume and (out / "manifest.json").is_file()
    if finished and read_manifest(out).config.get("fingerprint") == fp:
        return None
    has_artifact = (out / "manifest.json").is_file() or (out / ADAPTER_DIR).exists()
    if has_artifact and not checkpoint_path(out).exists():
        raise InputError(f"{out} already holds a different artifact; choose a new --out folder")
    run = TrainingRun(
        rows, workflow, out, seed, base, base_hash, data_hash, model, recipe, fp, clock=clock
    )
    run.lap("load_model")

    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    run.pad_id = int(tokenizer.pad_token_id or 0)
    run.ids = tokenize(tokenizer, [e.text for e in rows], recipe.max_length)
    run.lengths = np.array([len(x) for x in run.ids])
    run.longest = int(run.lengths.max(initial=0))
    run.y = np.array([index[e.label] for e in rows], dtype=np.int64)
    run.splits = split_examples(
        [e.label for e in rows],
        validation_fraction=recipe.validation_fraction,
        calibration_fraction=recipe.calibration_fraction,
        seed=split_seed,
    )
    run.lap("tokenize")
    if recipe.frozen_layers:
        from tunegate.lora.prefix import PrefixCache

        run.prefix = PrefixCache(
            model, recipe.frozen_layers, run.ids, run.pad_id, range(len(run.ids))
        )
    trim_heap()
    run.lap("prefix_cache")
    return run


# -- phase 2: resume or warm start ------------------------------------------------------------


def _optimizer(run: TrainingRun, head_multiplier: float) -> tuple[Any, Any]:
    """AdamW over the LoRA matrices and (at ``head_multiplier`` times the rate) the modules
    saved in full, with a linear warm-up and a linear decay to zero."""
    torch = require("torch", purpose="fine-tuning")
    params = [(n, p) for n, p in run.model.named_parameters() if p.requires_grad]
    head = [p for n, p in params if "modules_to_save" in n]
    lora = [p for n, p in params if "modules_to_save" not in n]
    lr = run.recipe.learning_rate
    optimizer = torch.optim.AdamW(
        [{"params": lora, "lr": lr}, {"params": head, "lr": lr * head_multiplier}]
    )
    return optimizer, warmup_decay(optimizer, run.total_steps)


def _resume(run: TrainingRun, resume: bool) -> tuple[TrainingState, Any, Any]:
    """The training state, optimizer and scheduler to continue from: a matching checkpoint's,
    or fresh ones after the head's warm start (then scored on validation as epoch 0)."""
    checkpoint = load_checkpoint(checkpoint_path(run.out), run.fingerprint) if resume else None
    warm = checkpoint is None and warm_start_head(
        run.model,
        run.ids,
        run.y,
        run.pad_id,
        run.splits.train,
        len(run.workflow.label_names),
        run.prefix,
        cap=run.longest,
    )
    trim_heap()
    run.lap("warm_start")
    optimizer, scheduler = _optimizer(run, WARM_HEAD_LR_MULTIPLIER if warm else HEAD_LR_MULTIPLIER)
    if checkpoint is not None:
        return checkpoint.restore(run.model, optimizer, scheduler), optimizer, scheduler
    state = TrainingState(best_state=trainable_state(run.model))
    if run.splits.validation:
        # epoch 0 is a candidate too: training must beat the warm-started probe on validation
        run.model.eval()
        logits, y_val = run.validation()
        figures = _validation_figures(logits, y_val)
        state.best_score = _selection_score(figures)
        state.best_state = trainable_state(run.model)
        run.zero = {"epoch": 0, **figures, "warm_start": warm}
    return state, optimizer, scheduler


def _validation_figures(logits: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
    pred = logits.argmax(axis=1)
    return {
        "val_macro_f1": macro_f1_score(y_val, pred),
        "val_accuracy": float((pred == y_val).mean()),
        "val_loss": nll_loss(logits, y_val),
    }


def _selection_score(figures: dict[str, float]) -> float:
    """Early stopping and the best epoch: validation macro-F1, ties broken by lower NLL."""
    return figures["val_macro_f1"] - 1e-6 * figures["val_loss"]


# -- phase 3: epochs --------------------------------------------------------------------------


def _epochs(
    run: TrainingRun,
    state: TrainingState,
    optimizer: Any,
    scheduler: Any,
    on_checkpoint: Callable[[int], None] | None,
) -> None:
    """Train from ``state.epoch`` to the recipe's epochs or early stopping, checkpointing
    after every epoch."""
    from tunegate._progress import make_progress

    torch = require("torch", purpose="fine-tuning")
    recipe, model = run.recipe, run.model
    y_t = torch.from_numpy(run.y)
    trimmer = HeapTrimmer()
    model.train()
    with deterministic(), make_progress() as progress:
        task = progress.add_task(
            f"fine-tune seed {run.seed}",
            total=run.total_steps,
            completed=state.epoch * run.steps_per_epoch,
            status="",
        )
        for epoch in range(state.epoch, recipe.epochs):
            if state.stopped:
                break
            began = time.perf_counter()
            running = 0.0
            seen = 0
            for batch in epoch_batches(
                run.lengths, run.splits.train, recipe.batch_size, run.seed, epoch
            ):
                optimizer.zero_grad(set_to_none=True)
                # one optimizer step per batch; a wide batch runs as micro-batches whose
                # gradients add up to the whole batch's mean (bounded activation memory)
                for part in micro_batches(batch, run.lengths, run.longest, recipe.max_batch_tokens):
                    input_ids, mask = pad_rows(run.ids, part, run.pad_id, run.prefix, run.longest)
                    logits = model(input_ids=input_ids, attention_mask=mask).logits
                    loss = torch.nn.functional.cross_entropy(logits, y_t[part])
                    (loss * (len(part) / len(batch))).backward()
                    running += float(loss.detach()) * len(part)
                optimizer.step()
                scheduler.step()
                trimmer.step()  # bounded heap growth (lora/memory.py)
                seen += len(batch)
                progress.update(
                    task,
                    advance=1,
                    status=f"epoch {epoch + 1}/{recipe.epochs} loss {running / seen:.3f}",
                )
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": running / max(1, seen)}
            if run.splits.validation:
                row.update(_validation_figures(*run.validation()))
                score = _selection_score(row)
            else:
                score = -row["train_loss"]
            state.train_seconds += time.perf_counter() - began
            state.record(row, score, model, patience=run.workflow.training.patience)
            save_checkpoint(
                checkpoint_path(run.out), run.fingerprint, state, model, optimizer, scheduler
            )
            if on_checkpoint is not None:
                on_checkpoint(epoch + 1)
            if row["stop"]:
                break
    trim_heap()
    run.lap("epochs")


# -- phase 5: artifact (phase 4, calibration, is lora/calibration.py) ----------------------


def _write(run: TrainingRun, metrics: dict[str, Any], temperature: float) -> None:
    """Write the adapter and the manifest (the full model again: the prefix is off), then
    drop the checkpoint."""
    splits = run.splits
    manifest = ArtifactManifest(
        format=ARTIFACT_FORMAT,
        labels=run.workflow.label_names,
        base_model=run.base,
        base_model_hash=run.base_hash,
        dataset_hash=run.data_hash,
        config={
            **run.recipe.to_dict(),
            "fingerprint": run.fingerprint,
            "split_sizes": [len(splits.train), len(splits.validation), len(splits.calibration)],
        },
        metrics=json.loads(json.dumps(metrics)),
        temperature=temperature,
        max_length=run.recipe.max_length,
        seed=run.seed,
        library_versions=library_versions(),
    )
    write_artifact(run.out, run.model, manifest)
    shutil.rmtree(run.out / CHECKPOINT_DIR, ignore_errors=True)
