"""The fine-tune use-case: train over seeds, register the candidate, evaluate it against the
champion and store the Attempt whose Verdict ``promote`` reads.

:func:`run_finetune` is the whole of it (``tunegate finetune``); the demo trains with
:func:`~tunegate.train.finetune_seeds` in one step and concludes with
:func:`conclude_finetune` in the next. Both return a :class:`FinetuneOutcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.config import Workflow
from tunegate.lora.artifact import ADAPTER_DIR, dir_sha256, read_manifest
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalRun,
    EvalSuite,
    ModelKind,
    ModelVersion,
    Verdict,
)
from tunegate.train._dataset import Dataset
from tunegate.train._seeds import SeedSweep, finetune_seeds

if TYPE_CHECKING:
    from tunegate.evaluate import Comparison
    from tunegate.execute import Executor
    from tunegate.store import Store

__all__ = [
    "FinetuneOutcome",
    "adapter_version_id",
    "conclude_finetune",
    "ensure_champion",
    "evaluate_candidate",
    "fit_zero_shot_threshold",
    "register_adapter",
    "run_finetune",
]


def adapter_version_id(artifact_dir: str | Path) -> str:
    """The version id of an artifact: ``lora-`` + 12 hex of its adapter weights' hash
    (the same id :class:`~tunegate.models.LoraClassifier` reports as ``version``)."""
    return f"lora-{dir_sha256(Path(artifact_dir) / ADAPTER_DIR)[:12]}"


def register_adapter(
    store: Store,
    artifact_dir: str | Path,
    *,
    actor: str = "tunegate",
    parent: str | None = None,
    config: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register a trained artifact as a LoRA ModelVersion (lineage: parent, dataset, config)
    and point ``candidate`` at it. ``parent`` defaults to the current champion; ``config``
    adds entries to the recorded training config (e.g. the seed sweep's)."""
    from tunegate.registry import Registry

    folder = Path(artifact_dir).resolve()
    manifest = read_manifest(folder)
    registry = Registry(store)
    mv = ModelVersion(
        id=adapter_version_id(folder),
        kind=ModelKind.LORA,
        base_model=manifest.base_model,
        artifact_path=str(folder),
        artifact_hash=dir_sha256(folder / ADAPTER_DIR),
        training_data_hash=manifest.dataset_hash,
        config={
            **manifest.config,
            "seed": manifest.seed,
            "temperature": manifest.temperature,
            **(config or {}),
        },
        parent=parent if parent is not None else registry.champion(),
        clarify_threshold=manifest.metrics.get("clarify_threshold"),
        routing_fit=manifest.metrics.get("routing_fit"),
    )
    try:
        existing: ModelVersion = store.get_model_version(mv.id)
    except LookupError:
        return registry.register(mv, actor=actor)
    return existing


def ensure_champion(
    store: Store,
    workflow: Workflow,
    *,
    actor: str = "tunegate",
    max_fit_examples: int = 2000,
    min_fit_examples: int = 50,
    model: str | None = None,
) -> str:
    """The champion's id; with none registered, the workflow's ``baseline`` model is
    registered and promoted as the first champion (recorded in the alias history and audit
    log): the zero-shot encoder with the workflow's instructions, or (``baseline: llm`` /
    ``llm-local``) the prompted LLM with ``llm.system_prompt`` as a ``prompt`` version.

    When the workflow sets a routing target (``routing.target_clarify_rate`` or
    ``routing.target_risk``), a new zero-shot champion gets its own ``clarify_threshold``,
    fitted like a fine-tune's (:func:`fit_zero_shot_threshold`) on reviewed examples outside
    every stored suite; its ``routing_fit`` says which rows. Without a target, or with fewer
    than ``min_fit_examples`` such examples, it has none and routes with
    ``routing.clarify_threshold``. A version already registered under the same id is
    promoted as it is (versions are immutable).

    On an ``answer`` / ``tool_call`` workflow the first champion is a ``generator`` version:
    ``model`` (default ``llm.model``) with the default prompt, the workflow's retrieval and
    constrained output (:func:`tunegate.generative.register_generator`).
    """
    from tunegate.registry import Registry

    registry = Registry(store)
    champ = registry.champion()
    if champ is not None:
        return champ
    if not workflow.is_classify:
        from tunegate.generative import register_generator
        from tunegate.records import GeneratorConfig

        gen = register_generator(
            store, workflow, GeneratorConfig(model=model or workflow.llm.model)
        )
        registry.promote(
            gen.id,
            actor=actor,
            reason=f"baseline: the workflow's generator ({gen.config['model']})",
        )
        return gen.id
    from tunegate.errors import NotFoundError

    if workflow.baseline != "zero-shot":
        from tunegate.llm import DEFAULT_SYSTEM_PROMPT
        from tunegate.models import prompt_version

        template = workflow.llm.system_prompt or DEFAULT_SYSTEM_PROMPT
        mv = prompt_version(
            workflow, template, backend=workflow.baseline, source="llm.system_prompt"
        )
        try:
            mv = store.get_model_version(mv.id)
        except NotFoundError:
            registry.register(mv, actor=actor, as_candidate=False)
        registry.promote(
            mv.id,
            actor=actor,
            reason=f"baseline: the workflow's prompted LLM ({workflow.baseline})",
        )
        return mv.id
    from tunegate.models import zero_shot_version_id

    version_id = zero_shot_version_id(workflow)
    try:
        mv = store.get_model_version(version_id)
    except NotFoundError:
        config = {"instructions": workflow.instructions, "labels": workflow.label_names}
        # the id `tunegate eval zero-shot` records for the same model (one formula, one id)
        mv = ModelVersion(id=version_id, kind=ModelKind.ZERO_SHOT, config=config)
        routing = workflow.routing
        if routing.target_clarify_rate is not None or routing.target_risk is not None:
            threshold, fit = fit_zero_shot_threshold(
                store,
                workflow,
                mv,
                max_examples=max_fit_examples,
                min_examples=min_fit_examples,
            )
            mv = mv.model_copy(update={"clarify_threshold": threshold, "routing_fit": fit})
        registry.register(mv, actor=actor, as_candidate=False)
    registry.promote(mv.id, actor=actor, reason="baseline: the workflow's zero-shot model")
    return mv.id


def fit_zero_shot_threshold(
    store: Store,
    workflow: Workflow,
    mv: ModelVersion,
    *,
    max_examples: int = 2000,
    min_examples: int = 50,
) -> tuple[float | None, dict[str, Any]]:
    """Fit the routing threshold of a not yet registered zero-shot version ``mv`` to the
    workflow's routing target (:func:`tunegate.metrics.fit_route_threshold`).

    Rows: the newest ``max_examples`` reviewed examples with a workflow label whose
    normalized text is in no stored evaluation suite (suite examples never fit a threshold
    the verdict then judges on them). Returns ``(threshold, routing_fit)``; with fewer than
    ``min_examples`` rows the threshold is ``None`` (the workflow's ``clarify_threshold``
    applies) and ``routing_fit`` says why.
    """
    from tunegate.metrics import fit_route_threshold
    from tunegate.models import load_model_version
    from tunegate.records import ReviewStatus, normalize_text

    routing = workflow.routing
    in_suites = {normalize_text(e.text) for suite in store.suites() for e in suite.examples}
    reviewed = [
        e
        for e in store.examples(review_status=ReviewStatus.REVIEWED.value)
        if e.label in workflow.labels
    ]
    outside = [e for e in reviewed if normalize_text(e.text) not in in_suites]
    outside.sort(key=lambda e: (e.created_at, e.id))
    rows = outside[-max_examples:] if max_examples > 0 else []
    where = {
        "rows": "reviewed examples outside every stored evaluation suite (normalized text)",
        "excluded_in_suites": len(reviewed) - len(outside),
    }
    if len(rows) < min_examples:
        return None, {
            **where,
            "n": len(rows),
            "skipped": f"{len(rows)} such examples, fewer than {min_examples}: routed with "
            "routing.clarify_threshold",
        }
    clf = load_model_version(mv, workflow, store=store)
    proba = np.asarray(clf.predict_proba([e.text for e in rows]), dtype=np.float64)
    labels = workflow.label_names
    y = np.array([labels.index(e.label) for e in rows])
    fit = fit_route_threshold(
        proba,
        y,
        target_clarify_rate=routing.target_clarify_rate,
        target_risk=routing.target_risk,
    )
    return fit.threshold, {**fit.to_dict(), **where}


def evaluate_candidate(
    store: Store,
    workflow: Workflow,
    version_id: str,
    suite: EvalSuite,
    *,
    actor: str = "tunegate",
    description: str = "",
    measure_latency: bool = True,
) -> Attempt:
    """Run the champion and ``version_id`` on ``suite``, compare them (latency timed side by
    side unless ``measure_latency`` is false), store both EvalRuns and the Attempt (kind
    ``finetune``) with its Verdict; returns the Attempt."""
    return _evaluate(
        store,
        workflow,
        version_id,
        suite,
        actor=actor,
        description=description,
        measure_latency=measure_latency,
    )[3]


def _evaluate(
    store: Store,
    workflow: Workflow,
    version_id: str,
    suite: EvalSuite,
    *,
    actor: str,
    description: str = "",
    baseline: EvalRun | None = None,
    candidate_run: EvalRun | None = None,
    details: dict[str, Any] | None = None,
    champion: Any = None,
    measure_latency: bool = True,
) -> tuple[EvalRun, EvalRun, Comparison, Attempt]:
    """The champion's run (``baseline``, else run now and stored), the candidate's
    (``candidate_run``, else run now), their comparison and the stored Attempt.

    ``champion``: the champion's classifier when in memory (else loaded from the registry);
    with ``measure_latency`` both are timed side by side for the verdict's latency rule."""
    from tunegate.evaluate import compare_runs, measure_latency_on_suite, run_eval
    from tunegate.models import load_model_version

    champ_id = ensure_champion(store, workflow, actor=actor)
    champion_clf = champion

    def champion_model() -> Any:
        nonlocal champion_clf
        if champion_clf is None:
            mv = store.get_model_version(champ_id)
            champion_clf = load_model_version(mv, workflow, store=store)
        return champion_clf

    if baseline is None:
        baseline = run_eval(champion_model(), suite, workflow).model_copy(
            update={"model_version": champ_id}
        )
        store.save_eval_run(baseline)
    candidate: Any = None
    if candidate_run is None or measure_latency:
        candidate = load_model_version(store.get_model_version(version_id), workflow, store=store)
    if candidate_run is None:
        candidate_run = run_eval(candidate, suite, workflow)
    candidate_run = candidate_run.model_copy(update={"model_version": version_id})
    # Both models timed side by side now: the only latency the verdict judges.
    latency = (
        measure_latency_on_suite(champion_model(), candidate, suite, workflow)
        if measure_latency
        else None
    )
    comparison = compare_runs(baseline, candidate_run, suite, workflow, latency=latency)
    verdict = comparison.verdict
    attempt = Attempt(
        kind=AttemptKind.FINETUNE,
        description=description or f"fine-tuned adapter {version_id}",
        baseline_version=champ_id,
        candidate_version=version_id,
        verdict=verdict,
        details={
            **(details or {}),
            "suite": suite.name,
            "suite_hash": suite.hash,
            "baseline_run": baseline.id,
            "candidate_run": candidate_run.id,
            "latency": latency.to_dict() if latency is not None else None,
        },
    )
    store.save_eval_run(candidate_run)
    store.save_attempt(attempt)
    store.audit(
        "train.evaluate",
        actor,
        {
            "attempt": attempt.id,
            "candidate": version_id,
            "champion": champ_id,
            "verdict": verdict.outcome.value,
        },
    )
    return baseline, candidate_run, comparison, attempt


@dataclass(frozen=True)
class FinetuneOutcome:
    """What a fine-tune produced: the seed sweep, the registered candidate and, with a suite,
    its evaluation against the champion."""

    dataset_hash: str
    sweep: SeedSweep
    candidate: ModelVersion
    """The registered median-seed adapter (alias ``candidate``)."""
    parent: str | None
    """The champion when the candidate was registered (its lineage parent)."""
    mlflow: dict[str, Any] | None = None
    """The MLflow run the training was exported to (``mlflow_tracking_uri`` set)."""
    baseline_run: EvalRun | None = None
    candidate_run: EvalRun | None = None
    seed_runs: list[EvalRun] = field(default_factory=list)
    """Every seed's run on the suite, in seed order (``evaluate_seeds``)."""
    comparison: Comparison | None = None
    attempt: Attempt | None = None

    @property
    def verdict(self) -> Verdict | None:
        return self.comparison.verdict if self.comparison is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``tunegate finetune --json`` prints)."""
        payload: dict[str, Any] = {
            "candidate": self.candidate.id,
            "artifact": str(self.sweep.chosen),
            "dataset": self.dataset_hash,
            **self.sweep.summary(),
        }
        if self.mlflow is not None:
            payload["mlflow"] = self.mlflow
        if self.attempt is not None and self.attempt.verdict is not None:
            payload["verdict"] = self.attempt.verdict.outcome.value
            payload["attempt"] = self.attempt.id
            payload["champion"] = self.attempt.baseline_version
            payload["baseline_run"] = self.attempt.verdict.baseline_run
            payload["candidate_run"] = self.attempt.verdict.candidate_run
        return payload


def run_finetune(
    store: Store,
    workflow: Workflow,
    dataset: Dataset,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    base_seed: int = 0,
    resume: bool = True,
    epochs: int | None = None,
    suite: EvalSuite | None = None,
    parent_proba: Callable[[Sequence[str]], np.ndarray] | None = None,
    actor: str = "tunegate",
    executor: Executor | None = None,
) -> FinetuneOutcome:
    """Train ``seeds`` adapters on ``dataset`` into ``out_dir`` and conclude
    (:func:`conclude_finetune`): register the median seed as the candidate and, with a
    ``suite``, evaluate it against the champion (the workflow's zero-shot model becomes the
    first champion when none is registered). ``executor`` trains the seeds as tasks
    (:func:`finetune_seeds`)."""
    # With a suite the candidate is judged against a champion, so one must exist.
    parent = (
        ensure_champion(store, workflow, actor=actor)
        if suite is not None
        else store.get_alias("champion")
    )
    sweep = finetune_seeds(
        dataset,
        workflow,
        out_dir,
        seeds=seeds,
        base_seed=base_seed,
        resume=resume,
        epochs=epochs,
        parent_proba=parent_proba,
        executor=executor,
    )
    return conclude_finetune(
        store, workflow, dataset, sweep, suite=suite, parent=parent, actor=actor
    )


def conclude_finetune(
    store: Store,
    workflow: Workflow,
    dataset: Dataset,
    sweep: SeedSweep,
    *,
    suite: EvalSuite | None = None,
    parent: str | None = None,
    baseline: EvalRun | None = None,
    evaluate_seeds: bool = False,
    actor: str = "tunegate",
    description: str = "",
    champion: Any = None,
    measure_latency: bool = True,
) -> FinetuneOutcome:
    """Register the sweep's chosen adapter as the candidate (lineage: ``parent``, default the
    champion; the sweep's seeds), export it to MLflow when configured and, with a ``suite``,
    compare it with the champion and store the Attempt.

    ``baseline``: the champion's run on ``suite`` when already made (else it is run now);
    ``evaluate_seeds``: run every seed's adapter on the suite (``seed_runs``, each with its
    seed as the bootstrap seed) and use the chosen seed's run as the candidate's;
    ``champion``: the champion's classifier when in memory (else loaded from the registry) -
    with ``measure_latency`` it and the candidate are timed side by side
    (:func:`tunegate.evaluate.measure_latency_on_suite`), the only latency the verdict judges.
    """
    if parent is None:
        parent = (
            ensure_champion(store, workflow, actor=actor)
            if suite is not None
            else (store.get_alias("champion"))
        )
    lineage = {
        "seeds": sweep.seeds,
        "chosen_seed": sweep.chosen_seed,
        "selection": sweep.summary()["selection"],
    }
    mv = register_adapter(store, sweep.chosen, actor=actor, parent=parent, config=lineage)
    mlflow: dict[str, Any] | None = None
    if workflow.mlflow_tracking_uri:
        from tunegate.documents import MlflowRun
        from tunegate.mlflow_export import export_training

        stds = {f"{k}_std": v["std"] for k, v in sweep.spread.items()}
        exported = export_training(workflow, sweep.chosen, model_version=mv, extra_metrics=stds)
        store.documents(MlflowRun).put(mv.id, MlflowRun.model_validate(exported.to_dict()))
        mlflow = exported.to_dict()
    outcome = FinetuneOutcome(dataset.hash, sweep, mv, parent, mlflow)
    if suite is None:
        return outcome
    seed_runs = _seed_runs(workflow, sweep, suite) if evaluate_seeds else []
    chosen = sweep.seeds.index(sweep.chosen_seed)
    base_run, cand_run, comparison, attempt = _evaluate(
        store,
        workflow,
        mv.id,
        suite,
        actor=actor,
        description=description,
        baseline=baseline,
        candidate_run=seed_runs[chosen] if seed_runs else None,
        details={"dataset": dataset.hash, "sweep": sweep.summary()},
        champion=champion,
        measure_latency=measure_latency,
    )
    return FinetuneOutcome(
        dataset.hash, sweep, mv, parent, mlflow, base_run, cand_run, seed_runs, comparison, attempt
    )


def _seed_runs(workflow: Workflow, sweep: SeedSweep, suite: EvalSuite) -> list[EvalRun]:
    from tunegate.evaluate import run_eval
    from tunegate.models._versions import artifact_classifier

    return [
        run_eval(artifact_classifier(path, workflow), suite, workflow, seed=seed)
        for seed, path in zip(sweep.seeds, sweep.artifacts, strict=True)
    ]
