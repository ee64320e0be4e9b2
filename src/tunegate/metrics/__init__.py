"""Metrics as pure functions over numpy arrays, named by direction.

``*_score`` is higher-is-better; ``*_error``, ``*_loss``, ``*_rate`` and ``*_ms`` are
lower-is-better. Labels are integer class ids ``0..k-1`` (a label's index in the workflow's
label order); probabilities are (n, k) arrays whose rows sum to 1. Inputs are validated once,
at the boundary; bad inputs raise :class:`~tunegate.errors.InputError`.

Uncertainty: :func:`paired_bootstrap` gives bias-corrected percentile intervals (each containing
its estimate) for every metric and for every difference between two models on the same
examples; :func:`paired_median_ratio` gives the interval of the median of paired ratios
(latency timed side by side); :func:`mcnemar_exact` tests an accuracy difference;
:func:`seed_summary` gives the spread over K seed runs;
:func:`one_sided_rate_increase_p` tests a rise of a rate between two windows;
:func:`fisher_rate_increase_p`, :func:`log_odds_ratio` and :func:`benjamini_hochberg` test,
size and FDR-control many rate contrasts (contrastive attribution);
:func:`mann_kendall` and :func:`sens_slope` test and size a trend in a series.

Generative workflows (answers with citations, tool calls): every metric is a ratio of
per-example sums (:class:`RatioTerms`, :func:`metric_terms`), and
:func:`paired_ratio_bootstrap` gives its paired interval; :func:`cohen_kappa_score` measures
a checker's agreement with human labels; :func:`style_similarity_score` how close rewritten
answers sound to a house voice (given embeddings).

This package is tunegate's one numeric core: softmax and temperature scaling
(:func:`softmax`, :func:`fit_temperature`, :func:`apply_temperature`, :func:`nll_loss`),
normalized entropy, selective risk, the risk-coverage curve and its area (AURC), the
fitting of routing thresholds (:func:`fit_route_threshold`), calibration error, macro-F1,
seed spread and the statistical tests above are computed here and nowhere else
(``tests/test_numeric_core.py`` checks it).
"""

from __future__ import annotations

from tunegate.metrics._agreement import cohen_kappa_score
from tunegate.metrics._bootstrap import (
    BootstrapResult,
    Interval,
    bias_corrected_interval,
    paired_bootstrap,
    paired_mean_difference,
    paired_median_ratio,
    percentile_interval,
)
from tunegate.metrics._calibration import (
    BinStrategy,
    ReliabilityCurve,
    assign_bins,
    bin_edges,
    brier_score_loss,
    confidence_calibration_error,
    confidence_reliability_curve,
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
from tunegate.metrics._frequencies import smoothed_frequencies
from tunegate.metrics._freshness import FreshnessLag, change_rate, source_freshness_lag
from tunegate.metrics._generative import (
    CitationCounts,
    RatioBootstrap,
    RatioTerms,
    abstention_precision_score,
    abstention_recall_score,
    answer_correctness_score,
    argument_validity_score,
    citation_counts,
    citation_precision_score,
    citation_recall_score,
    citation_score,
    escalation_rate,
    format_validity_score,
    metric_terms,
    paired_ratio_bootstrap,
    stale_claim_rate,
    tool_call_accuracy_score,
    tool_selection_accuracy_score,
    unsupported_claim_rate,
)
from tunegate.metrics._registry import MetricSpec, metric_registry, register_metric
from tunegate.metrics._robustness import (
    attack_success_rate,
    flip_rate,
    grouped_terms,
    paired_robustness,
    robust_accuracy_score,
)
from tunegate.metrics._selective import (
    OUT_OF_SCOPE,
    RiskCoverageCurve,
    RouteThresholdFit,
    aurc_rate,
    auto_route_mask,
    coverage_score,
    fit_route_threshold,
    latency_p50_ms,
    latency_p95_ms,
    normalized_entropy,
    oos_auto_rate,
    risk_coverage_curve,
    selective_accuracy_score,
    selective_risk_at_coverage,
    selective_risk_rate,
)
from tunegate.metrics._stats import (
    McNemarResult,
    SeedSummary,
    benjamini_hochberg,
    fisher_rate_increase_p,
    log_odds_ratio,
    mcnemar_exact,
    one_sided_rate_increase_p,
    seed_summary,
)
from tunegate.metrics._style import style_similarity_score
from tunegate.metrics._temperature import apply_temperature, fit_temperature, nll_loss, softmax
from tunegate.metrics._trend import EXACT_MAX_N, TrendResult, mann_kendall, sens_slope

__all__ = [
    "EXACT_MAX_N",
    "OUT_OF_SCOPE",
    "BinStrategy",
    "BootstrapResult",
    "CitationCounts",
    "FreshnessLag",
    "Interval",
    "McNemarResult",
    "MetricSpec",
    "PerClassReport",
    "RatioBootstrap",
    "RatioTerms",
    "ReliabilityCurve",
    "RiskCoverageCurve",
    "RouteThresholdFit",
    "SeedSummary",
    "TrendResult",
    "abstention_precision_score",
    "abstention_recall_score",
    "accuracy_score",
    "answer_correctness_score",
    "apply_temperature",
    "argument_validity_score",
    "assign_bins",
    "attack_success_rate",
    "aurc_rate",
    "auto_route_mask",
    "benjamini_hochberg",
    "bias_corrected_interval",
    "bin_edges",
    "brier_score_loss",
    "change_rate",
    "citation_counts",
    "citation_precision_score",
    "citation_recall_score",
    "citation_score",
    "cohen_kappa_score",
    "confidence_calibration_error",
    "confidence_reliability_curve",
    "confusion_matrix",
    "coverage_score",
    "escalation_rate",
    "expected_calibration_error",
    "f1_from_confusion",
    "false_negative_rate",
    "fisher_rate_increase_p",
    "fit_route_threshold",
    "fit_temperature",
    "flip_rate",
    "format_validity_score",
    "grouped_terms",
    "latency_p50_ms",
    "latency_p95_ms",
    "log_odds_ratio",
    "macro_f1_score",
    "mann_kendall",
    "mcnemar_exact",
    "metric_registry",
    "metric_terms",
    "nll_loss",
    "normalized_entropy",
    "one_sided_rate_increase_p",
    "oos_auto_rate",
    "paired_bootstrap",
    "paired_mean_difference",
    "paired_median_ratio",
    "paired_ratio_bootstrap",
    "paired_robustness",
    "per_class_report",
    "percentile_interval",
    "precision_per_class",
    "recall_per_class",
    "register_metric",
    "reliability_curve",
    "risk_coverage_curve",
    "robust_accuracy_score",
    "seed_summary",
    "selective_accuracy_score",
    "selective_risk_at_coverage",
    "selective_risk_rate",
    "sens_slope",
    "smoothed_frequencies",
    "softmax",
    "source_freshness_lag",
    "stale_claim_rate",
    "style_similarity_score",
    "tool_call_accuracy_score",
    "tool_selection_accuracy_score",
    "unsupported_claim_rate",
]
