"""Latency of two models measured in one sitting, so the machine's load cancels.

:func:`measure_paired_latency` runs the baseline and the candidate on the same batches, in the
same process, interleaved: in every round each batch is classified by both models back to back
in the order A B B A (B A A B on every other batch and round), so a load that comes or goes
mid-measurement, or a slow drift (thermal, caches), slows both sides of a pair alike. Each
side's faster timing of the two is kept: interference from other processes only ever adds
time. A round gives one pair: each side's wall time and process CPU time
(``time.process_time``: every thread of the process, so a backend's intra-op pool counts) per
example over all the batches of the round. (A pair per batch measured the batch mix instead:
two models' costs scale differently with text length, and 128 per-batch pairs of the same 8
batches gave a CPU-time interval of -19% to +28% on a quiet machine.)

The judged quantity is the **median of the paired ratios** (candidate / baseline, one per
round) of the CPU time per example, with a bootstrap interval over the pairs
(:func:`tunegate.metrics.paired_median_ratio`): the work each model does per example, which
another process on the machine barely changes, and what changes it (a shared core, a slower
clock) slows both sides of a pair alike. The wall-time ratio is reported beside it; on a busy
machine it adds the time the process waited for a core, which is noise in a pair (on a 2-core
machine at load 10 with two busy loops, two identical models gave wall-time intervals as wide
as 0.81-1.02 and 0.94-1.13, CPU-time intervals 0.97-1.01 and 0.99-1.01; docs/evaluation.md).
Both models should run on the same backend and thread count, as a champion and its candidate
do: CPU time does not see a model that parallelizes differently. Two runs recorded at different
times (EvalRun ``latency_ms``) compare two machine states, not two models: the verdict's
``latency_p50`` rule reads only this measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.metrics import Interval, paired_median_ratio
from tunegate.records import EvalSuite

__all__ = ["PairedLatency", "measure_latency_on_suite", "measure_paired_latency"]


@dataclass(frozen=True)
class PairedLatency:
    """Latency of a baseline and a candidate timed side by side (see the module docstring).

    Times are per example, in milliseconds: each side's median over the batch timings.
    """

    baseline_version: str
    candidate_version: str
    rounds: int
    """Passes over the batches (each batch timed twice per model per round)."""
    batch_size: int
    n_texts: int
    n_pairs: int
    """Paired timings: one per round (each side's time per example over all the batches)."""
    baseline_wall_ms: float
    candidate_wall_ms: float
    baseline_cpu_ms: float
    candidate_cpu_ms: float
    wall_ratio: Interval
    """Wall time per example, candidate / baseline: the median of the paired ratios, with its
    bootstrap interval."""
    cpu_ratio: Interval
    """The same for process CPU time per example: what the verdict judges."""
    confidence: float
    seed: int
    seconds: float
    """Wall time the measurement took (warm-up included)."""

    @property
    def rise(self) -> Interval:
        """The relative rise of the work per example (``cpu_ratio - 1``): the verdict's harm."""
        r = self.cpu_ratio
        return Interval(r.estimate - 1.0, r.low - 1.0, r.high - 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (intervals as ``{estimate, low, high}``)."""
        return {
            "baseline_version": self.baseline_version,
            "candidate_version": self.candidate_version,
            "rounds": self.rounds,
            "batch_size": self.batch_size,
            "n_texts": self.n_texts,
            "n_pairs": self.n_pairs,
            "baseline_wall_ms": self.baseline_wall_ms,
            "candidate_wall_ms": self.candidate_wall_ms,
            "baseline_cpu_ms": self.baseline_cpu_ms,
            "candidate_cpu_ms": self.candidate_cpu_ms,
            "wall_ratio": self.wall_ratio.to_dict(),
            "cpu_ratio": self.cpu_ratio.to_dict(),
            "confidence": self.confidence,
            "seed": self.seed,
            "seconds": self.seconds,
        }


def _timed(clf: Any, batch: list[str]) -> tuple[float, float]:
    """(wall ms, CPU ms) per example of one ``predict_proba`` call."""
    w0, c0 = time.perf_counter(), time.process_time()
    clf.predict_proba(batch)
    w1, c1 = time.perf_counter(), time.process_time()
    n = len(batch)
    return (w1 - w0) * 1000.0 / n, (c1 - c0) * 1000.0 / n


def measure_paired_latency(
    baseline_clf: Any,
    candidate_clf: Any,
    texts: Sequence[str],
    *,
    rounds: int = 5,
    batch_size: int = 16,
    warmup: int = 2,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    on_round: Callable[[int], None] | None = None,
    tolerance: float | None = None,
    max_rounds: int | None = None,
) -> PairedLatency:
    """Time ``baseline_clf`` and ``candidate_clf`` (anything with ``predict_proba(texts)``)
    interleaved on the same batches of ``texts`` -> :class:`PairedLatency`.

    ``rounds`` passes over the batches of ``batch_size`` texts (shuffled once by ``seed``);
    ``warmup`` untimed calls per model on the first batch first; ``on_round(i)`` is called
    before round ``i`` (a hook for tests and progress). The interval is a paired bootstrap
    (``n_resamples``, ``confidence``, ``seed``).

    With a ``tolerance`` (the verdict's ``max_latency_increase``), measuring goes on, one
    round at a time up to ``max_rounds`` (default ``4 * rounds``), while the rise's interval
    cannot decide the latency rule: neither within tolerance (``high <= tolerance``) nor
    beyond it (``estimate > tolerance`` and ``low > 0``). A load that arrives mid-run widens
    the interval; more pairs narrow it again, so the decision does not hang on when the load
    came. The rule is fixed before measuring; stopping when it is decided makes the stated
    confidence level approximate (optional stopping), which is documented.
    """
    if not texts:
        raise InputError("no texts to time; pass the suite's texts")
    limit = rounds if tolerance is None else (max_rounds or 4 * rounds)
    if limit < rounds:
        raise InputError(f"max_rounds ({max_rounds}) must be >= rounds ({rounds})")
    if rounds < 1 or batch_size < 1 or warmup < 0:
        raise InputError(
            f"rounds and batch_size must be >= 1 and warmup >= 0, got rounds={rounds}, "
            f"batch_size={batch_size}, warmup={warmup}"
        )
    start = time.perf_counter()
    order = np.random.default_rng(seed).permutation(len(texts))
    shuffled = [str(texts[i]) for i in order]
    batches = [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]
    for _ in range(warmup):
        for clf in (baseline_clf, candidate_clf):
            clf.predict_proba(batches[0])
    # one paired value per round: the side's time per example over ALL the batches of the
    # round (batches differ in length, and two models' costs scale differently with length:
    # a ratio per batch measures the batch mix, not the models)
    wall: dict[str, list[float]] = {"a": [], "b": []}
    cpu: dict[str, list[float]] = {"a": [], "b": []}
    models = {"a": baseline_clf, "b": candidate_clf}
    kw: dict[str, Any] = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    done = 0
    for r in range(limit):
        if r >= rounds and tolerance is not None:
            ratio = paired_median_ratio(cpu["a"], cpu["b"], **kw)
            low, mid, high = ratio.low - 1.0, ratio.estimate - 1.0, ratio.high - 1.0
            if high <= tolerance or (mid > tolerance and low > 0):
                break  # the latency rule can decide
        if on_round is not None:
            on_round(r)
        done += 1
        sums = {"wall_a": 0.0, "wall_b": 0.0, "cpu_a": 0.0, "cpu_b": 0.0}
        for j, batch in enumerate(batches):
            # A B B A (or B A A B): each model twice around the other, and its faster timing
            # kept - interference (another process taking the core) only ever adds time
            sides = ("a", "b", "b", "a") if (r + j) % 2 == 0 else ("b", "a", "a", "b")
            got: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
            for side in sides:
                got[side].append(_timed(models[side], batch))
            for side in ("a", "b"):
                sums[f"wall_{side}"] += min(w for w, _ in got[side]) * len(batch)
                sums[f"cpu_{side}"] += min(c for _, c in got[side]) * len(batch)
        for side in ("a", "b"):
            wall[side].append(sums[f"wall_{side}"] / len(shuffled))
            cpu[side].append(sums[f"cpu_{side}"] / len(shuffled))
    wall_ratio = paired_median_ratio(wall["a"], wall["b"], **kw)
    cpu_ratio = paired_median_ratio(cpu["a"], cpu["b"], **kw)
    return PairedLatency(
        baseline_version=str(getattr(baseline_clf, "version", "baseline")),
        candidate_version=str(getattr(candidate_clf, "version", "candidate")),
        rounds=done,
        batch_size=batch_size,
        n_texts=len(texts),
        n_pairs=len(wall["a"]),
        baseline_wall_ms=float(np.median(wall["a"])),
        candidate_wall_ms=float(np.median(wall["b"])),
        baseline_cpu_ms=float(np.median(cpu["a"])),
        candidate_cpu_ms=float(np.median(cpu["b"])),
        wall_ratio=wall_ratio,
        cpu_ratio=cpu_ratio,
        confidence=confidence,
        seed=seed,
        seconds=time.perf_counter() - start,
    )


def measure_latency_on_suite(
    baseline_clf: Any,
    candidate_clf: Any,
    suite: EvalSuite,
    workflow: Workflow,
    *,
    max_texts: int = 64,
    rounds: int = 8,
    batch_size: int = 8,
    max_rounds: int = 32,
) -> PairedLatency:
    """:func:`measure_paired_latency` on up to ``max_texts`` of ``suite``'s texts (a seeded
    sample), at the workflow's confidence level and seed (``regression``): what
    ``tunegate compare --measure-latency``, the cheap-fix attempts, the fine-tune and the demo
    run. The defaults give 8 paired rounds over 8 batches of 8 texts in about 10 s for two
    encoder-sized models on a quiet machine; while the interval cannot decide the rule at
    ``regression.max_latency_increase`` it goes on, up to ``max_rounds`` (32 rounds)."""
    if max_texts < 1:
        raise InputError(f"max_texts must be >= 1, got {max_texts}")
    policy = workflow.regression
    texts = [e.text for e in suite.examples]
    if len(texts) > max_texts:
        pick = np.random.default_rng(policy.seed).choice(len(texts), max_texts, replace=False)
        texts = [texts[i] for i in sorted(pick)]
    return measure_paired_latency(
        baseline_clf,
        candidate_clf,
        texts,
        rounds=rounds,
        batch_size=batch_size,
        confidence=policy.confidence,
        seed=policy.seed,
        tolerance=policy.max_latency_increase,
        max_rounds=max_rounds,
    )
