"""Compare a candidate EvalRun with a baseline EvalRun on the same suite -> a Verdict.

:func:`compare_runs` checks that both runs were made on the suite, aligns them and gathers the
evidence once (a paired bootstrap: the same resampled examples for both models, and McNemar's
exact test per subset); the registered verdict rules of :mod:`._verdict_rules` each turn it
into findings, in order:

``core_improvement`` (core accuracy difference: pass when its interval is above 0, fail when
below 0, inconclusive - "within noise" - when it contains 0), ``preservation`` (accuracy drop
on the preservation slice, tolerance ``regression.preservation_tolerance``, CI-aware; also
``preservation:<dataset>`` for an external probe when given), ``protected_fnr:<label>`` (FNR
rise of every protected class over the whole suite, ``protected_fnr_tolerance``), ``ece`` (a
point rise of ECE within ``max_ece_increase`` passes; above it, fail when the interval excludes
0, else inconclusive), ``latency_p50`` (relative rise of the CPU time per example,
``max_latency_increase``, CI-aware - judged only from ``latency=``, a
:class:`~tunegate.evaluate.PairedLatency` of both models timed side by side in one sitting;
without it latency is not judged, :attr:`Comparison.latency_judged` is false and reports say
so: two runs recorded at different times measure the machine's load, not the models), then
the selective-prediction rules of :mod:`._selective_rules`: ``selective_risk`` (AURC and the
selective risk at the baseline's coverage must not rise beyond
``max_selective_risk_increase``, CI-aware) and, for suites with an ``out_of_scope`` slice,
``oos_auto_rate`` (the share of out-of-scope examples routed ``auto`` must not rise beyond
``max_oos_auto_increase``, nor exceed ``max_oos_auto_rate`` when set), and, when both runs
were scored on the suite's robustness slice (:mod:`._robustness`), ``robustness:flip_rate``
and ``robustness:attack_success:<perturbation>`` (``max_flip_rate_increase``,
``max_attack_success_increase``). Each run is routed with
the threshold it recorded (its version's fitted threshold, or ``routing.clarify_threshold``).
The verdict is ``fail`` if any rule fails (a core gain never buys a preservation loss), else
``inconclusive`` if any rule is, else ``pass``. Intervals are at ``regression.confidence``, and
the messages say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.evaluate._latency import PairedLatency
from tunegate.evaluate._probe import ProbeComparison
from tunegate.evaluate._robustness import RobustnessComparison, compare_robustness
from tunegate.evaluate._run import escalate_ids, run_clarify_threshold, subset_masks
from tunegate.evaluate._verdict_rules import VerdictEvidence, verdict_outcome, verdict_rules
from tunegate.metrics import BootstrapResult, McNemarResult, mcnemar_exact, paired_bootstrap
from tunegate.records import EvalRun, EvalSuite, Verdict

__all__ = ["LATENCY_NOT_JUDGED", "Comparison", "compare", "compare_runs"]

LATENCY_NOT_JUDGED = "latency not judged: measure it in one sitting with --measure-latency"
"""What reports and the CLI say when a verdict had no paired latency measurement."""


@dataclass(frozen=True)
class Comparison:
    """A verdict with the evidence behind it (for reports)."""

    verdict: Verdict
    bootstrap: BootstrapResult
    """``a`` = baseline, ``b`` = candidate, ``diff`` = candidate - baseline."""
    mcnemar: dict[str, McNemarResult]
    """McNemar's exact test per subset (``overall``, ``slice:core``, ...)."""
    subset_sizes: dict[str, int]
    labels: list[str]
    latency: PairedLatency | None = None
    """Both models timed side by side (what ``latency_p50`` judged), when measured."""
    robustness: RobustnessComparison | None = None
    """Both runs on the suite's robustness slice, paired (what ``robustness`` judged)."""

    @property
    def confidence(self) -> float:
        """The confidence level of every interval (``regression.confidence``)."""
        return self.bootstrap.confidence

    @property
    def latency_judged(self) -> bool:
        """Whether the verdict judged latency (only from a paired measurement)."""
        return self.latency is not None

    @property
    def latency_note(self) -> str | None:
        """:data:`LATENCY_NOT_JUDGED` when latency was not judged, else ``None``."""
        return None if self.latency_judged else LATENCY_NOT_JUDGED


def _aligned(
    run: EvalRun, ids: list[str], labels: list[str]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    if run.labels != labels:
        raise InputError(
            f"run {run.id} has labels {run.labels}, expected {labels}; "
            f"both runs must use the workflow's label order"
        )
    pos = {i: n for n, i in enumerate(run.example_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise InputError(
            f"run {run.id} lacks {len(missing)} suite examples (first "
            f"{missing[:5]}); re-run `tunegate eval` on this suite"
        )
    order = np.array([pos[i] for i in ids], dtype=np.intp)
    y = np.asarray(run.y_true, dtype=np.intp)[order]
    proba = np.asarray(run.proba, dtype=np.float64)[order]
    lat = None
    if len(run.latency_ms) == len(run.example_ids):
        lat = np.asarray(run.latency_ms, dtype=np.float64)[order]
    return y, proba, lat


def compare_runs(
    baseline: EvalRun,
    candidate: EvalRun,
    suite: EvalSuite,
    workflow: Workflow,
    *,
    probe: ProbeComparison | None = None,
    latency: PairedLatency | None = None,
) -> Comparison:
    """:func:`compare`, also returning the bootstrap evidence (see the module docstring).

    ``probe``: an optional :class:`~tunegate.evaluate.ProbeComparison` of the encoder on an
    external task; its accuracy drop is one more preservation rule. ``latency``: both models
    timed side by side (:func:`~tunegate.evaluate.measure_paired_latency`); the only latency
    the verdict judges.
    """
    suite_hash = suite.hash or suite.compute_hash()
    for run in (baseline, candidate):
        if run.suite_hash != suite_hash:
            raise InputError(
                f"run {run.id} was made on suite {run.suite_hash[:12]}, not on "
                f"{suite.name!r} ({suite_hash[:12]}); compare runs on one suite"
            )
    labels = workflow.label_names
    ids = [e.id for e in suite.examples]
    y_a, p_a, lat_a = _aligned(baseline, ids, labels)
    y_b, p_b, lat_b = _aligned(candidate, ids, labels)
    if not np.array_equal(y_a, y_b):
        raise InputError("the two runs disagree on the true labels of the suite examples")
    policy = workflow.regression
    masks = subset_masks(suite, ids)
    with_latency = lat_a is not None and lat_b is not None
    boot = paired_bootstrap(
        y_a,
        p_a,
        p_b,
        subsets=masks,
        latency_a=lat_a if with_latency else None,
        latency_b=lat_b if with_latency else None,
        clarify_threshold=run_clarify_threshold(baseline, workflow),
        clarify_threshold_b=run_clarify_threshold(candidate, workflow),
        escalate=escalate_ids(workflow, labels),
        n_resamples=policy.n_bootstrap,
        confidence=policy.confidence,
        seed=policy.seed,
    )
    assert boot.b is not None and boot.diff is not None
    # out-of-scope rows (y = -1) are wrong for both models: concordant, so McNemar ignores them
    correct_a = p_a.argmax(axis=1) == y_a
    correct_b = p_b.argmax(axis=1) == y_b
    all_masks = {"overall": np.ones(len(ids), dtype=np.bool_), **masks}
    mcnemar = {
        name: mcnemar_exact(correct_a[m], correct_b[m]) for name, m in all_masks.items() if m.any()
    }
    sizes = {name: int(m.sum()) for name, m in all_masks.items()}
    evidence = VerdictEvidence(
        bootstrap=boot,
        mcnemar=mcnemar,
        subset_sizes=sizes,
        labels=labels,
        protected_labels=list(workflow.protected_labels),
        policy=policy,
        with_latency=with_latency,
        probe=probe,
        latency=latency,
        robustness=compare_robustness(baseline, candidate, workflow),
    )
    rules = [finding for rule in verdict_rules() for finding in rule.fn(evidence)]
    verdict = Verdict(
        outcome=verdict_outcome(rules),
        baseline_run=baseline.id,
        candidate_run=candidate.id,
        rules=rules,
    )
    return Comparison(
        verdict=verdict,
        bootstrap=boot,
        mcnemar=mcnemar,
        subset_sizes=sizes,
        labels=labels,
        latency=latency,
        robustness=evidence.robustness,
    )


def compare(
    baseline: EvalRun,
    candidate: EvalRun,
    suite: EvalSuite,
    workflow: Workflow,
    *,
    probe: ProbeComparison | None = None,
    latency: PairedLatency | None = None,
) -> Verdict:
    """Apply the workflow's regression policy to two runs on one suite -> :class:`Verdict`.

    Exit codes (``Verdict.exit_code``): 0 pass, 1 fail, 2 inconclusive.
    """
    return compare_runs(baseline, candidate, suite, workflow, probe=probe, latency=latency).verdict
