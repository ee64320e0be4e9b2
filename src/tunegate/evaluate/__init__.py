"""Run models on frozen suites, compare two runs, and gate on the regression policy.

* :func:`freeze_suite` / :func:`suite_from_examples` build a content-hashed three-slice suite
  (core / edge / preservation plus named slices) that never overlaps training data.
* :func:`run_eval` scores a classifier on a suite -> :class:`~tunegate.records.EvalRun`.
* :func:`compare` applies the workflow's regression policy -> :class:`~tunegate.records.Verdict`
  (exit code 0 pass / 1 fail / 2 inconclusive); :func:`compare_runs` also returns the evidence.
* the regression policy is a set of registered verdict rules (:func:`verdict_rule`,
  :func:`verdict_rules`), pure functions of the gathered :class:`VerdictEvidence`.
* :func:`preservation_probe` checks the encoder on BANKING77 (external capability).
"""

from __future__ import annotations

from collections.abc import Sequence

from tunegate.evaluate._compare import Comparison, compare, compare_runs
from tunegate.evaluate._probe import (
    ProbeComparison,
    ProbeResult,
    compare_probes,
    load_banking77,
    preservation_probe,
)
from tunegate.evaluate._run import run_eval, subset_masks
from tunegate.evaluate._suites import (
    LeakageCheckWarning,
    LeakageReport,
    SuiteSizeWarning,
    assign_slice,
    check_leakage,
    default_preservation_labels,
    freeze_suite,
    read_suite_examples,
    suite_from_examples,
    suite_size_warnings,
)
from tunegate.evaluate._verdict_rules import (
    VerdictEvidence,
    VerdictRule,
    confidence_label,
    harm_rule,
    verdict_outcome,
    verdict_rule,
    verdict_rules,
)
from tunegate.metrics import SeedSummary, seed_summary
from tunegate.records import EvalRun

__all__ = [
    "Comparison",
    "LeakageCheckWarning",
    "LeakageReport",
    "ProbeComparison",
    "ProbeResult",
    "SuiteSizeWarning",
    "VerdictEvidence",
    "VerdictRule",
    "assign_slice",
    "check_leakage",
    "compare",
    "compare_probes",
    "compare_runs",
    "confidence_label",
    "default_preservation_labels",
    "freeze_suite",
    "harm_rule",
    "load_banking77",
    "preservation_probe",
    "read_suite_examples",
    "run_eval",
    "seed_variance",
    "subset_masks",
    "suite_from_examples",
    "suite_size_warnings",
    "verdict_outcome",
    "verdict_rule",
    "verdict_rules",
]


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
