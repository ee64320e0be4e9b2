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
* :func:`freeze_robustness_slice` perturbs a suite's core examples (typos, templates, length,
  mixed language, keyword stuffing from confirmed findings, injected instructions) into a
  frozen robustness slice; :func:`attach_robustness` scores it into a run and the verdict's
  ``robustness`` rule judges the flip rate and attack success rates (:mod:`._robustness`).
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
from tunegate.evaluate._robustness import (
    DEFAULT_PERTURBATIONS,
    INJECTION_PATTERNS,
    Perturbation,
    PerturbationContext,
    Perturbed,
    RobustnessComparison,
    RobustnessWarning,
    attach_robustness,
    compare_robustness,
    freeze_robustness_slice,
    get_robustness_slice,
    inject_into_passages,
    match_attack_patterns,
    perturb,
    perturbation,
    perturbations,
    save_robustness_slice,
    slice_literals,
    stuffing_terms_from_findings,
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
    "DEFAULT_PERTURBATIONS",
    "INJECTION_PATTERNS",
    "LATENCY_NOT_JUDGED",
    "Comparison",
    "LeakageCheckWarning",
    "LeakageReport",
    "PairedLatency",
    "Perturbation",
    "PerturbationContext",
    "Perturbed",
    "ProbeComparison",
    "ProbeResult",
    "RobustnessComparison",
    "RobustnessWarning",
    "RunSummary",
    "SuiteSizeWarning",
    "VerdictEvidence",
    "VerdictRule",
    "assign_slice",
    "attach_robustness",
    "check_leakage",
    "compare",
    "compare_generative",
    "compare_probes",
    "compare_robustness",
    "compare_runs",
    "confidence_label",
    "default_preservation_labels",
    "freeze_generative_suite",
    "freeze_robustness_slice",
    "freeze_suite",
    "generative_metrics",
    "generative_suites",
    "generative_terms",
    "get_generative_suite",
    "get_robustness_slice",
    "harm_beyond_tolerance",
    "harm_rule",
    "inject_into_passages",
    "load_banking77",
    "load_generative_run",
    "match_attack_patterns",
    "measure_latency_on_suite",
    "measure_paired_latency",
    "perturb",
    "perturbation",
    "perturbations",
    "preservation_probe",
    "probe_encoder_folder",
    "read_suite_examples",
    "rise_rule",
    "run_eval",
    "run_generative_eval",
    "run_summaries",
    "save_generative_suite",
    "save_robustness_slice",
    "seed_variance",
    "slice_literals",
    "stuffing_terms_from_findings",
    "subset_masks",
    "suite_from_examples",
    "suite_size_warnings",
    "verdict_outcome",
    "verdict_rule",
    "verdict_rules",
]
