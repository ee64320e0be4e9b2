"""The generative fine-tune as one use-case: gate, reviewed data, supervised LoRA on the
local causal LM, the adapter served beside its base, the verdict against the champion.

Each reviewed example becomes the conversation the champion's generator would send for it
(its retrieval, tools and prompt: :meth:`tunegate.generative.ChatGenerator.retrieve`,
:func:`tunegate.generative.generation_messages`) and the reply it should give
(:func:`tunegate.generative.target_output`), so the model is trained on exactly the format
it is served with. The adapter is exported to GGUF and served by a temporary llama.cpp server
under its own model name beside the base; the candidate is a ``generator`` version differing
from the champion only in that name (and the adapter file), run on the suite and compared with
the champion's run on the same suite (the response cache makes the champion's run a re-read
when it was run before: same model file, same requests). The outcome is an Attempt of kind
``finetune`` with the verdict; promotion is ``tunegate promote``, refused unless it passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.records import (
    Attempt,
    AttemptKind,
    GenerativeSuite,
    GeneratorConfig,
    Verdict,
    VerdictOutcome,
)
from tunegate.store import Store
from tunegate.train._generative import build_generative_dataset

__all__ = ["GenerativeFinetuneOutcome", "finetune_generative", "sft_pairs"]


@dataclass
class GenerativeFinetuneOutcome:
    """What :func:`finetune_generative` did and found."""

    candidate: str
    champion: str
    adapter: str
    """The GGUF LoRA file."""
    artifact_dir: str
    dataset_hash: str
    n_examples: int
    loss_first: float
    loss_last: float
    verdict: Verdict
    attempt: Attempt
    gate_open: bool
    baseline_run: str
    candidate_run: str
    train_seconds: float = 0.0
    metrics_before: dict[str, Any] = field(default_factory=dict)
    metrics_after: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        if self.verdict.outcome is VerdictOutcome.PASS:
            return (
                f"the verdict passed: promote it with `tunegate promote {self.candidate}` "
                "(and serve the adapter: `tunegate llm serve --adapter "
                f"{self.candidate_model}={self.adapter}`)"
            )
        failing = [r.rule for r in self.verdict.rules if r.outcome is not VerdictOutcome.PASS]
        return (
            f"the verdict is {self.verdict.outcome.value} ({', '.join(failing)}): the "
            f"fine-tune is not promoted; the champion {self.champion} stays"
        )

    @property
    def candidate_model(self) -> str:
        return str(self.attempt.details.get("model", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "adapter": self.adapter,
            "artifact_dir": self.artifact_dir,
            "dataset_hash": self.dataset_hash,
            "n_examples": self.n_examples,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "train_seconds": self.train_seconds,
            "gate_open": self.gate_open,
            "baseline_run": self.baseline_run,
            "candidate_run": self.candidate_run,
            "attempt": self.attempt.id,
            "verdict": self.verdict.model_dump(mode="json"),
            "metrics_before": self.metrics_before,
            "metrics_after": self.metrics_after,
            "message": self.message,
        }


def sft_pairs(
    store: Store, workflow: Workflow, config: GeneratorConfig, examples: list[Any]
) -> list[Any]:
    """The supervised pairs of ``examples``: each the messages the generator of ``config``
    would send (its retrieval as of the question's time, its tools and prompt) and the reply
    the example asks for."""
    from tunegate.generative import (
        ChatGenerator,
        generation_messages,
        target_output,
        tool_specs,
    )
    from tunegate.lora.sft import SftPair

    gen = ChatGenerator(workflow, config, version_id="sft-data", store=store)
    abstention = workflow.answer.abstention if workflow.kind == "answer" else None
    pairs = []
    for example in examples:
        retrieved = gen.retrieve(example)
        tools = tool_specs(workflow, example)
        messages = generation_messages(workflow, config, example, retrieved, tools)
        target = target_output(example, retrieved, abstention=abstention)
        pairs.append(SftPair(messages=messages, target=target))
    return pairs


def finetune_generative(
    store: Store,
    workflow: Workflow,
    suite: GenerativeSuite,
    *,
    epochs: int = 2,
    seed: int = 0,
    out_dir: str | Path | None = None,
    work_dir: str | Path = ".",
    include_unreviewed: bool = False,
    require_gate: bool = True,
    actor: str = "tunegate",
    threads: int = 1,
    threads_batch: int | None = None,
) -> GenerativeFinetuneOutcome:
    """Fine-tune the champion generator's model on the reviewed examples and judge the
    candidate against the champion on ``suite`` (module docstring).

    Raises:
        InputError: no champion, a champion that is not a generator, or a closed gate
            without ``require_gate=False`` (the gate's failing conditions are named).
    """
    from tunegate.diagnose import generative_gate, latest_generative_run
    from tunegate.evaluate import compare_generative, generative_suites, run_generative_eval
    from tunegate.generative import build_generator, register_generator
    from tunegate.io import stored_generative_examples
    from tunegate.llm import local_llm_server
    from tunegate.lora.gguf_adapter import export_gguf_adapter
    from tunegate.lora.sft import SftSettings, train_sft_adapter
    from tunegate.records import ModelKind, content_hash
    from tunegate.registry import Registry

    workflow.require_kind("a generative fine-tune", "answer", "tool_call")
    champion = Registry(store).champion()
    if champion is None:
        raise InputError("no champion yet; register the baseline with `tunegate gen baseline`")
    champ = store.get_model_version(champion)
    if champ.kind is not ModelKind.GENERATOR:
        raise InputError(
            f"the champion {champion} is a {champ.kind.value} version, not a generator"
        )
    base_config = GeneratorConfig.model_validate(champ.config)
    if base_config.adapter is not None:
        raise InputError(
            f"the champion {champion} is itself a fine-tune ({base_config.adapter}); fine-tune "
            "from the base model: roll back first, or train on the combined reviewed data"
        )

    gate = generative_gate(store, workflow, suite.hash, champion)
    if require_gate and not gate.open:
        failing = "; ".join(
            f"({c.number}) {c.name}: {c.summary}" for c in gate.conditions if not c.passed
        )
        raise InputError(
            f"the gate is closed for {champion} on suite {suite.name!r}: {failing}. Run "
            "`tunegate gen gate` for the next steps, or pass --skip-gate (recorded)"
        )

    dataset = build_generative_dataset(
        stored_generative_examples(store),
        workflow,
        suites=generative_suites(store),
        include_unreviewed=include_unreviewed,
    )
    pairs = sft_pairs(store, workflow, base_config, dataset.examples)
    settings = SftSettings.from_workflow(workflow, epochs=epochs, seed=seed)
    root = (
        Path(out_dir)
        if out_dir is not None
        else Path(work_dir) / ".tunegate" / "adapters" / f"sft-{dataset.hash[:12]}-s{seed}"
    )
    result = train_sft_adapter(pairs, root, settings=settings)
    gguf = export_gguf_adapter(result.artifact_dir, root / "adapter.gguf")
    history = result.manifest.history
    losses = [float(h["train_loss"]) for h in history if "train_loss" in h]
    tag = content_hash(str(gguf.resolve()), result.manifest.fingerprint)[:10]
    alias = f"{base_config.model}+sft-{tag}"
    cand_config = base_config.model_copy(update={"model": alias, "adapter": str(gguf.resolve())})
    cand = register_generator(store, workflow, cand_config, parent=champion)

    with local_llm_server(
        port=0, threads=threads, threads_batch=threads_batch, adapters={alias: gguf}
    ) as server:
        served = workflow.model_copy(
            update={"llm": workflow.llm.model_copy(update={"base_url": server.base_url})}
        )
        base_run = latest_generative_run(store, champion, suite.hash)
        if base_run is None:
            base_run = run_generative_eval(
                store, served, suite, build_generator(served, champ, store)
            )
        cand_run = run_generative_eval(store, served, suite, build_generator(served, cand, store))
    verdict = compare_generative(base_run, cand_run, rules=workflow.generative_rules)
    attempt = Attempt(
        kind=AttemptKind.FINETUNE,
        description=f"supervised LoRA on {len(pairs)} reviewed examples ({epochs} epochs)",
        baseline_version=champion,
        candidate_version=cand.id,
        verdict=verdict,
        details={
            "suite": suite.name,
            "suite_hash": suite.hash,
            "dataset_hash": dataset.hash,
            "n_examples": len(pairs),
            "model": alias,
            "adapter": str(gguf.resolve()),
            "artifact_dir": str(result.artifact_dir),
            "baseline_run": base_run.id,
            "candidate_run": cand_run.id,
            "gate_open": gate.open,
            "gate_skipped": not gate.open,
            "actor": actor,
            "metrics_before": base_run.metrics.get("overall", {}),
            "metrics_after": cand_run.metrics.get("overall", {}),
            "leakage": dataset.leakage_report.get("per_suite", {}),
        },
    )
    store.save_attempt(attempt)
    return GenerativeFinetuneOutcome(
        candidate=cand.id,
        champion=champion,
        adapter=str(gguf.resolve()),
        artifact_dir=str(result.artifact_dir),
        dataset_hash=dataset.hash,
        n_examples=len(pairs),
        loss_first=losses[0] if losses else float("nan"),
        loss_last=losses[-1] if losses else float("nan"),
        verdict=verdict,
        attempt=attempt,
        gate_open=gate.open,
        baseline_run=base_run.id,
        candidate_run=cand_run.id,
        train_seconds=result.manifest.train_seconds,
        metrics_before=base_run.metrics.get("overall", {}),
        metrics_after=cand_run.metrics.get("overall", {}),
    )
