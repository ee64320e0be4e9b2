"""Metrics as pure functions over numpy arrays, named by direction.

``*_score`` is higher-is-better; ``*_error``, ``*_loss``, ``*_rate`` and ``*_ms`` are
lower-is-better. Labels are integer class ids ``0..k-1`` (a label's index in the workflow's
label order); probabilities are (n, k) arrays whose rows sum to 1. Inputs are validated once,
at the boundary; bad inputs raise :class:`~tunegate.errors.InputError`.

Uncertainty: :func:`paired_bootstrap` gives percentile intervals for every metric and for
every difference between two models on the same examples; :func:`mcnemar_exact` tests an
accuracy difference; :func:`seed_summary` gives the spread over K seed runs.
"""

from __future__ import annotations

from tunegate.metrics._bootstrap import (
    BootstrapResult,
    Interval,
    paired_bootstrap,
    paired_mean_difference,
    percentile_interval,
)
from tunegate.metrics._calibration import (
    BinStrategy,
    ReliabilityCurve,
    bin_edges,
    brier_score_loss,
    expected_calibration_error,
    reliability_curve,
)
from tunegate.metrics._classification import (
    PerClassReport,
    accuracy_score,
    confusion_matrix,
    f1_from_confusion,
    false_negative_rate,
    macro_f1_score,
    per_class_report,
    precision_per_class,
    recall_per_class,
)
from tunegate.metrics._registry import MetricSpec, metric_registry, register_metric
from tunegate.metrics._selective import (
    auto_route_mask,
    coverage_score,
    latency_p50_ms,
    latency_p95_ms,
    normalized_entropy,
    selective_accuracy_score,
)
from tunegate.metrics._stats import McNemarResult, SeedSummary, mcnemar_exact, seed_summary

__all__ = [
    "BinStrategy",
    "BootstrapResult",
    "Interval",
    "McNemarResult",
    "MetricSpec",
    "PerClassReport",
    "ReliabilityCurve",
    "SeedSummary",
    "accuracy_score",
    "auto_route_mask",
    "bin_edges",
    "brier_score_loss",
    "confusion_matrix",
    "coverage_score",
    "expected_calibration_error",
    "f1_from_confusion",
    "false_negative_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "macro_f1_score",
    "mcnemar_exact",
    "metric_registry",
    "normalized_entropy",
    "paired_bootstrap",
    "paired_mean_difference",
    "per_class_report",
    "percentile_interval",
    "precision_per_class",
    "recall_per_class",
    "register_metric",
    "reliability_curve",
    "seed_summary",
    "selective_accuracy_score",
]
