"""Run a classifier on a frozen suite: an :class:`EvalRun` with metrics overall, per slice,
per named slice and per class (each with a bootstrap interval), per-example probabilities and
per-example latency.

Routing metrics use the version's own threshold: ``run_eval``'s ``clarify_threshold``, else
the classifier's ``clarify_threshold`` attribute (set by
:func:`tunegate.models.load_model_version` from ``ModelVersion.clarify_threshold``), else the
workflow's ``routing.clarify_threshold``; the run records it in
``metrics["routing"]["clarify_threshold"]``, and :func:`~tunegate.evaluate.compare_runs` routes
each run with the threshold it recorded. Out-of-scope suite examples get the true class id
``-1`` (:data:`~tunegate.metrics.OUT_OF_SCOPE`).

A classifier that reports answer outcomes (``predict_outcomes``: the ``llm`` backend) adds
``metrics["invalid_answer"]`` (texts whose answers named no label, by kind; each is scored as
an error: its row keeps no mass on the true class) and ``metrics["llm_usage"]`` (requests,
tokens, cost, latency, how many came from the response cache)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate._progress import track
from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.execute import Executor, predict_proba
from tunegate.metrics import (
    OUT_OF_SCOPE,
    BinStrategy,
    BootstrapResult,
    Interval,
    SeedSummary,
    confusion_matrix,
    paired_bootstrap,
    reliability_curve,
    seed_summary,
)
from tunegate.records import OUT_OF_SCOPE_LABEL, EvalRun, EvalSuite, SuiteSlice

__all__ = [
    "SCALAR_KEYS",
    "escalate_ids",
    "run_clarify_threshold",
    "run_eval",
    "seed_variance",
    "subset_masks",
    "summarize_table",
]

SCALAR_KEYS = (
    "accuracy",
    "macro_f1",
    "expected_calibration_error",
    "brier_score_loss",
    "selective_accuracy",
    "coverage",
    "selective_risk",
    "aurc",
    "oos_auto_rate",
)


def subset_masks(suite: EvalSuite, example_ids: Sequence[str]) -> dict[str, npt.NDArray[np.bool_]]:
    """Boolean row masks (in ``example_ids`` order): ``slice:<core|edge|preservation>`` and
    ``tag:<named slice>`` for every named slice present in the suite."""
    by_id = {e.id: e for e in suite.examples}
    rows = [by_id[i] for i in example_ids]
    masks = {
        f"slice:{s.value}": np.array([e.slice == s for e in rows], dtype=np.bool_)
        for s in SuiteSlice
    }
    for tag in sorted({t for e in rows for t in e.tags}):
        masks[f"tag:{tag}"] = np.array([tag in e.tags for e in rows], dtype=np.bool_)
    return masks


def escalate_ids(workflow: Workflow, labels: Sequence[str]) -> dict[int, float]:
    """The routing policy's escalate-classes as class id -> threshold."""
    return {
        labels.index(name): thr
        for name, thr in workflow.routing.escalate_classes.items()
        if name in labels
    }


def run_clarify_threshold(run: EvalRun, workflow: Workflow) -> float:
    """The threshold ``run`` was routed with (recorded by :func:`run_eval`; runs made before
    it was recorded, or without it: the workflow's ``routing.clarify_threshold``)."""
    recorded = (run.metrics.get("routing") or {}).get("clarify_threshold")
    return workflow.routing.clarify_threshold if recorded is None else float(recorded)


def _jsonable(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def summarize_table(table: Mapping[str, Interval], labels: Sequence[str], n: int) -> dict[str, Any]:
    """One subset's bootstrap intervals as a JSON-friendly mapping:
    ``{"n", <scalar metric>: {estimate, low, high}, "per_class": {label: {...}}}``."""
    out: dict[str, Any] = {"n": int(n)}
    for key in (*SCALAR_KEYS, "latency_p50_ms", "latency_p95_ms"):
        if key in table:
            out[key] = table[key].to_dict()
    out["per_class"] = {
        label: {m: table[f"{m}:{c}"].to_dict() for m in ("precision", "recall", "fnr")}
        for c, label in enumerate(labels)
    }
    return out


def evaluation_metrics(
    y_true: npt.NDArray[np.intp],
    proba: npt.NDArray[np.float64],
    latency_ms: Sequence[float],
    suite: EvalSuite,
    example_ids: Sequence[str],
    labels: Sequence[str],
    workflow: Workflow,
    *,
    seed: int,
    clarify_threshold: float | None = None,
) -> tuple[dict[str, Any], BootstrapResult]:
    """The ``EvalRun.metrics`` mapping for one model, and the bootstrap it came from
    (``clarify_threshold``: the model's own, default the workflow's)."""
    masks = subset_masks(suite, example_ids)
    policy = workflow.regression
    threshold = (
        workflow.routing.clarify_threshold if clarify_threshold is None else clarify_threshold
    )
    boot = paired_bootstrap(
        y_true,
        proba,
        subsets=masks,
        latency_a=list(latency_ms) if len(latency_ms) else None,
        clarify_threshold=threshold,
        escalate=escalate_ids(workflow, labels),
        n_resamples=policy.n_bootstrap,
        confidence=policy.confidence,
        seed=seed,
    )
    sizes = {name: int(m.sum()) for name, m in masks.items()}
    k = len(labels)
    inscope = y_true != OUT_OF_SCOPE
    y_in, p_in = y_true[inscope], proba[inscope]
    support = np.bincount(y_in, minlength=k)
    curves = {}
    strategies: tuple[BinStrategy, ...] = ("uniform", "quantile")
    for strategy in strategies:
        if not inscope.any():
            break
        curve = reliability_curve(y_in, p_in, n_bins=15, strategy=strategy)
        curves[strategy] = {
            "edges": [float(x) for x in curve.edges],
            "confidence": [_jsonable(x) for x in curve.confidence],
            "accuracy": [_jsonable(x) for x in curve.accuracy],
            "count": [int(x) for x in curve.count],
        }
    metrics: dict[str, Any] = {
        "overall": summarize_table(boot.a["overall"], labels, int(inscope.sum())),
        "slices": {
            s.value: summarize_table(boot.a[f"slice:{s.value}"], labels, sizes[f"slice:{s.value}"])
            for s in SuiteSlice
        },
        "named_slices": {
            name[4:]: summarize_table(boot.a[name], labels, sizes[name])
            for name in masks
            if name.startswith("tag:")
        },
        "support": {label: int(support[c]) for c, label in enumerate(labels)},
        "n_out_of_scope": int((~inscope).sum()),
        "confusion_matrix": (
            confusion_matrix(y_in, p_in.argmax(axis=1), n_classes=k).tolist()
            if inscope.any()
            else [[0] * k for _ in range(k)]
        ),
        "reliability": curves,
        "bootstrap": {
            "n_resamples": boot.n_resamples,
            "confidence": boot.confidence,
            "seed": boot.seed,
            "method": "paired percentile",
        },
        "routing": {
            "clarify_threshold": threshold,
            "escalate_classes": dict(workflow.routing.escalate_classes),
        },
    }
    return metrics, boot


def _aligned_proba(
    classifier: Any,
    texts: list[str],
    metadata: list[dict[str, Any]],
    labels: list[str],
    answers: list[Any] | None = None,
) -> npt.NDArray[np.float64]:
    # A classifier with ``predict_outcomes`` (the llm backend) also says, per text, whether any
    # answer named a label (``outcomes[i].answered``) and what the requests cost.
    scorer = getattr(classifier, "predict_outcomes", None)
    if answers is not None and callable(scorer):
        prediction = scorer(texts, metadata)
        answers.append(prediction)
        proba = np.asarray(prediction.proba, dtype=np.float64)
    else:
        proba = np.asarray(classifier.predict_proba(texts, metadata), dtype=np.float64)
    return _align_columns(proba, classifier, len(texts), labels)


def _align_columns(
    proba: npt.NDArray[np.float64], classifier: Any, n: int, labels: list[str]
) -> npt.NDArray[np.float64]:
    """``proba`` (n, k) in the classifier's label order, reordered to ``labels``."""
    clf_labels = list(classifier.labels)
    if proba.shape != (n, len(clf_labels)):
        raise ModelError(
            f"classifier returned shape {proba.shape}, expected {(n, len(clf_labels))}"
        )
    if clf_labels == labels:
        return proba
    missing = sorted(set(labels) - set(clf_labels))
    extra = sorted(set(clf_labels) - set(labels))
    if missing or extra:
        raise InputError(
            f"classifier labels differ from the workflow's: missing {missing}, "
            f"extra {extra}; evaluate a model built for this workflow"
        )
    order = [clf_labels.index(name) for name in labels]
    return proba[:, order]


def run_eval(
    classifier: Any,
    suite: EvalSuite,
    workflow: Workflow,
    *,
    seed: int | None = None,
    batch_size: int | None = None,
    clarify_threshold: float | None = None,
    executor: Executor | None = None,
) -> EvalRun:
    """Score every suite example with ``classifier`` and compute its metrics.

    Latency per example is the wall time of its batch divided by the batch size (ms).
    ``seed`` seeds the bootstrap (default ``workflow.regression.seed``) and is recorded.
    ``clarify_threshold``: the routing threshold of this model (default: the classifier's
    ``clarify_threshold`` attribute when set, else ``workflow.routing.clarify_threshold``);
    recorded in ``metrics["routing"]``. ``executor`` (default: this process) scores the
    batches, e.g. on Ray workers (:mod:`tunegate.execute`): the same batches, the same
    probabilities; latency is then the batch time measured in the worker. A classifier that
    reports answer outcomes (the ``llm`` backend) is always scored here.
    """
    labels = workflow.label_names
    if clarify_threshold is None:
        clarify_threshold = getattr(classifier, "clarify_threshold", None)
    unknown = sorted({e.label for e in suite.examples} - {*labels, OUT_OF_SCOPE_LABEL})
    if unknown:
        raise InputError(f"suite {suite.name!r} has labels {unknown} that the workflow lacks")
    if not suite.examples:
        raise InputError(f"suite {suite.name!r} is empty")
    size = batch_size or workflow.model.batch_size
    examples = list(suite.examples)
    chunks = [examples[i : i + size] for i in range(0, len(examples), size)]
    probas: list[npt.NDArray[np.float64]] = []
    latency: list[float] = []
    answers: list[Any] = []
    remote = (
        executor is not None
        and executor.name != "local"
        and not callable(getattr(classifier, "predict_outcomes", None))
    )
    if remote:
        assert executor is not None
        scored = predict_proba(
            executor,
            classifier,
            [e.text for e in examples],
            [dict(e.metadata) for e in examples],
            batch_size=size,
        )
        probas.append(_align_columns(scored.proba, classifier, len(examples), labels))
        latency = scored.latency_per_example()
        chunks = []
    for chunk in track(chunks, description=f"eval {suite.name}"):
        texts = [e.text for e in chunk]
        start = time.perf_counter()
        probas.append(
            _aligned_proba(classifier, texts, [dict(e.metadata) for e in chunk], labels, answers)
        )
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        latency.extend([elapsed_ms / len(chunk)] * len(chunk))
    proba = np.concatenate(probas, axis=0)
    y_true = np.array(
        [
            OUT_OF_SCOPE
            if e.slice is SuiteSlice.OUT_OF_SCOPE or e.label == OUT_OF_SCOPE_LABEL
            else labels.index(e.label)
            for e in examples
        ],
        dtype=np.intp,
    )
    ids = [e.id for e in examples]
    invalid = _invalid_answers(answers, proba, y_true, ids)
    if invalid is not None:
        # the llm backend: an example's latency is its requests' recorded latency (k samples
        # summed), so a rerun answered from the response cache reports the same figures
        latency = [float(u.latency_ms) for prediction in answers for u in prediction.usage]
    used_seed = workflow.regression.seed if seed is None else seed
    metrics, _ = evaluation_metrics(
        y_true,
        proba,
        latency,
        suite,
        ids,
        labels,
        workflow,
        seed=used_seed,
        clarify_threshold=clarify_threshold,
    )
    if invalid is not None:
        metrics["invalid_answer"], metrics["llm_usage"] = invalid
    return EvalRun(
        model_version=str(getattr(classifier, "version", "unknown")),
        suite_hash=suite.hash or suite.compute_hash(),
        labels=labels,
        metrics=metrics,
        example_ids=ids,
        y_true=[int(v) for v in y_true],
        proba=proba.tolist(),
        latency_ms=latency,
        seed=used_seed,
    )


def _invalid_answers(
    answers: list[Any],
    proba: npt.NDArray[np.float64],
    y_true: npt.NDArray[np.intp],
    ids: list[str],
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """For a classifier that reports answer outcomes (the llm backend): count the texts
    without a valid answer and score each as an error, in place: its row keeps no mass on the
    true class (spread evenly over the others), so no metric can count it as correct.
    Returns ``metrics["invalid_answer"]`` and ``metrics["llm_usage"]``; ``None`` otherwise."""
    if not answers:
        return None
    outcomes = [o for prediction in answers for o in prediction.outcomes]
    usage = [u for prediction in answers for u in prediction.usage]
    k = proba.shape[1]
    rows = [i for i, o in enumerate(outcomes) if not o.answered]
    for i in rows:
        if y_true[i] != OUT_OF_SCOPE and k > 1:
            proba[i] = 1.0 / (k - 1)
            proba[i, y_true[i]] = 0.0
    kinds = ("not_a_label", "invalid_json", "refusal")
    n = len(outcomes)
    invalid = {
        "count": len(rows),
        "rate": len(rows) / n if n else 0.0,
        "example_ids": [ids[i] for i in rows],
        "answers": {kind: int(sum(getattr(o, kind) for o in outcomes)) for kind in kinds}
        | {"valid": int(sum(o.valid for o in outcomes))},
        "scored_as": "error",
    }
    totals = {
        key: float(sum(getattr(u, key) for u in usage))
        for key in ("requests", "prompt_tokens", "completion_tokens", "cost", "latency_ms")
    }
    totals["requests_sent"] = float(sum(p.requested for p in answers))
    totals["requests_cached"] = float(sum(p.cached for p in answers))
    return invalid, totals


def seed_variance(
    runs: Sequence[EvalRun], *, metric: str = "accuracy", subset: str = "overall"
) -> SeedSummary:
    """Mean and standard deviation of one metric over K runs of the same suite that differ
    only in seed (``subset``: ``overall``, ``core``/``edge``/``preservation`` or a named slice)."""
    values = []
    for run in runs:
        m = run.metrics
        table = (
            m["overall"]
            if subset == "overall"
            else m["slices"].get(subset) or m["named_slices"].get(subset)
        )
        if table is None or metric not in table:
            raise KeyError(f"run {run.id} has no {metric!r} for subset {subset!r}")
        values.append(table[metric]["estimate"])
    return seed_summary([float("nan") if v is None else v for v in values])
