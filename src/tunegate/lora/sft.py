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
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.lora.artifact import ADAPTER_DIR, MANIFEST_NAME, library_versions, write_artifact
from tunegate.lora.causal_artifact import IGNORE
from tunegate.lora.causal_steps import (
    causal_lora_model,
    step_status,
    train_causal_epoch,
    warmup_decay,
)
from tunegate.lora.sft_artifact import (
    SFT_FORMAT,
    SftManifest,
    SftResult,
    SftSettings,
    read_sft_manifest,
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
from tunegate.records import content_hash

__all__ = [
    "SFT_FORMAT",
    "EncodedPairs",
    "SftManifest",
    "SftPair",
    "SftResult",
    "SftSettings",
    "encode_pairs",
    "pairs_hash",
    "read_sft_manifest",
    "train_sft_adapter",
]

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
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                raise InputError(f"SftPair.messages[{i}].content must be text")
        if self.messages[-1]["role"] == "assistant":
            raise InputError(
                "SftPair.messages ends with an assistant turn; the reply to learn goes in "
                "target, not in messages"
            )
        if not isinstance(self.target, str) or not self.target.strip():
            raise InputError("SftPair.target must be a non-empty reply")


@dataclass
class EncodedPairs:
    """Training sequences of :func:`encode_pairs`."""

    ids: list[list[int]]
    """Token ids per pair: the prompt, then the reply."""
    targets: list[list[int]]
    """Per pair, as long as ``ids``: the reply's ids, :data:`IGNORE` on the prompt."""
    target_tokens: int
    """Reply tokens over all pairs."""
    truncated: int
    """Pairs whose prompt lost its beginning to ``max_length``."""


def encode_pairs(tokenizer: Any, pairs: Sequence[SftPair], max_length: int) -> EncodedPairs:
    """Token ids and loss targets of every pair: the chat template with the assistant turn
    opened, then the template's rendering of the reply (learnt: the only positions with a
    target). A prompt too long for ``max_length`` keeps its end (counted in ``truncated``); a
    reply that does not fit is an :class:`InputError`."""
    out = EncodedPairs([], [], 0, 0)
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
    data: EncodedPairs,
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
