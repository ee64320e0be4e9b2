"""Run models on frozen suites, compare two runs, and gate on the regression policy.

* :func:`freeze_suite` / :func:`suite_from_examples` build a content-hashed three-slice suite
  (core / edge / preservation plus named slices) that never overlaps training data.
* :func:`run_eval` scores a classifier on a suite -> :class:`~tunegate.records.EvalRun`.
* :func:`compare` applies the workflow's regression policy -> :class:`~tunegate.records.Verdict`
  (exit code 0 pass / 1 fail / 2 inconclusive); :func:`compare_runs` also returns the evidence.
* :func:`measure_paired_latency` times two models side by side in one sitting
  (:class:`PairedLatency`; :func:`measure_latency_on_suite` on a suite's texts): the only latency
  the verdict judges (``compare_runs(latency=)``).
* the regression policy is a set of registered verdict rules (:func:`verdict_rule`,
  :func:`verdict_rules`), pure functions of the gathered :class:`VerdictEvidence`.
* :func:`run_summaries` lists stored runs (``tunegate runs``).
* :mod:`._selective_rules` adds ``selective_risk`` (AURC, risk at matched coverage) and
  ``oos_auto_rate`` (out-of-scope examples routed ``auto``), registered after the others.
* :func:`preservation_probe` checks the encoder on BANKING77 (external capability).
"""

from __future__ import annotations

# after _verdict_rules: the selective-prediction rules run after the regression rules
from tunegate.evaluate import _selective_rules  # noqa: F401
from tunegate.evaluate._compare import LATENCY_NOT_JUDGED, Comparison, compare, compare_runs
from tunegate.evaluate._generative import (
    compare_generative,
    generative_metrics,
    generative_terms,
    load_generative_run,
    run_generative_eval,
)
from tunegate.evaluate._latency import (
    PairedLatency,
    measure_latency_on_suite,
    measure_paired_latency,
)
from tunegate.evaluate._listing import RunSummary, run_summaries
from tunegate.evaluate._probe import (
    ProbeComparison,
    ProbeResult,
    compare_probes,
    load_banking77,
    preservation_probe,
    probe_encoder_folder,
)
from tunegate.evaluate._run import run_eval, seed_variance, subset_masks
from tunegate.evaluate._suites import (
    LeakageCheckWarning,
    LeakageReport,
    SuiteSizeWarning,
    assign_slice,
    check_leakage,
    default_preservation_labels,
    freeze_generative_suite,
    freeze_suite,
    generative_suites,
    get_generative_suite,
    read_suite_examples,
    save_generative_suite,
    suite_from_examples,
    suite_size_warnings,
)
from tunegate.evaluate._verdict_rules import (
    VerdictEvidence,
    VerdictRule,
    confidence_label,
    harm_beyond_tolerance,
    harm_rule,
    rise_rule,
    verdict_outcome,
    verdict_rule,
    verdict_rules,
)

__all__ = [
    "LATENCY_NOT_JUDGED",
    "Comparison",
    "LeakageCheckWarning",
    "LeakageReport",
    "PairedLatency",
    "ProbeComparison",
    "ProbeResult",
    "RunSummary",
    "SuiteSizeWarning",
    "VerdictEvidence",
    "VerdictRule",
    "assign_slice",
    "check_leakage",
    "compare",
    "compare_generative",
    "compare_probes",
    "compare_runs",
    "confidence_label",
    "default_preservation_labels",
    "freeze_generative_suite",
    "freeze_suite",
    "generative_metrics",
    "generative_suites",
    "generative_terms",
    "get_generative_suite",
    "harm_beyond_tolerance",
    "harm_rule",
    "load_banking77",
    "load_generative_run",
    "measure_latency_on_suite",
    "measure_paired_latency",
    "preservation_probe",
    "probe_encoder_folder",
    "read_suite_examples",
    "rise_rule",
    "run_eval",
    "run_generative_eval",
    "run_summaries",
    "save_generative_suite",
    "seed_variance",
    "subset_masks",
    "suite_from_examples",
    "suite_size_warnings",
    "verdict_outcome",
    "verdict_rule",
    "verdict_rules",
]
