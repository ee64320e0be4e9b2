"""Diagnosis: is this a fine-tuning problem at all, and is there enough evidence to start?

* override analytics — weekly counts and rates, the trend test, recurring missed signals
  (:mod:`._overrides`, :mod:`._trend`);
* error triage — failures (:mod:`._failures`), suggested categories by registered rules
  (:mod:`._triage`), the confirm round trip (:mod:`._triage_review`), recommendations
  (:mod:`._recommend`);
* attribution — what separates missed overrides from correctly handled tickets of the same
  predicted class: words, phrases and co-occurring pairs with counts and FDR-controlled tests
  (:mod:`._contrastive`); per-ticket word highlights by occlusion or integrated gradients
  (:mod:`._attribution`);
* the cheap fixes — instructions, rules, retrieval, a prompted LLM's system prompt, each
  evaluated and stored (:mod:`._attempts`); a fine-tune held to the best of them and what to
  promote (:func:`versus_best_cheap_fix`, :func:`choose_promotion`; :mod:`._promotion`);
* the five-condition fine-tuning gate (:mod:`._gate`), one registered condition each
  (:mod:`._gate_conditions`);
* generative workflows (``answer`` / ``tool_call``): triage from the run's evidence and the
  recommendation (:mod:`._generative`), the cheap fixes as Attempts (:mod:`._generative_fixes`)
  and the generative gate (:mod:`._generative_gate`).

See docs/diagnosis.md.
"""

from __future__ import annotations

from tunegate.diagnose._attempts import (
    CHEAP_FIX_KINDS,
    RulesFirstClassifier,
    champion_classifier,
    missed_signal_fix,
    parse_rules,
    recent_missed_signal_overrides,
    try_instructions,
    try_prompt,
    try_retrieval,
    try_rules,
)
from tunegate.diagnose._attribution import (
    LogitScorer,
    Scorer,
    TermWeight,
    TextAttribution,
    ZeroShotScorer,
    attribute_overrides,
    attribute_texts,
    confirm_finding,
    scorer_for,
    underweighted_terms,
    word_lists,
)
from tunegate.diagnose._contrastive import (
    contrast_overrides,
    contrast_terms,
    finding_phrases,
    readable_term,
    slice_term,
)
from tunegate.diagnose._failures import (
    FailureCase,
    failures_from_eval_run,
    failures_from_overrides,
    failures_from_store,
)
from tunegate.diagnose._gate import (
    GateCondition,
    GateEvidence,
    GateReport,
    collect_evidence,
    data_shortfalls,
    decide_gate,
    evaluate_gate,
    require_open_gate,
    reviewed_examples,
)
from tunegate.diagnose._gate_conditions import (
    ConditionFinding,
    GateConditionSpec,
    gate_condition,
    gate_conditions,
    instructions_fixed,
)
from tunegate.diagnose._generative import (
    CHANGE_RATE_THRESHOLD,
    GenerativeCase,
    GenerativeFailure,
    GenerativeRecommendation,
    GenerativeTriage,
    GenerativeTriageRule,
    declared_rule_broken,
    generative_triage_rule,
    generative_triage_rules,
    is_failure,
    recommend_generative,
    triage_generative,
)
from tunegate.diagnose._generative_fixes import (
    CHEAP_FIXES,
    FIXES_FOR_ACTION,
    CheapFix,
    apply_change,
    change_kind,
    latest_generative_run,
    try_generative_fix,
    try_style_stage,
)
from tunegate.diagnose._generative_gate import (
    GENERATIVE_FIX_KINDS,
    GenerativeGateEvidence,
    collect_generative_evidence,
    decide_generative_gate,
    generative_gate,
    generative_gate_condition,
    generative_gate_conditions,
    kb_change_rate,
)
from tunegate.diagnose._overrides import (
    GroupBy,
    MissedSignalPattern,
    OverrideTrend,
    WeeklyCount,
    log_odds_dirichlet,
    missed_signal_patterns,
    override_trend,
    override_trend_from_store,
    patterns_from_store,
    weekly_override_counts,
    weekly_series,
)
from tunegate.diagnose._promotion import (
    CheapFixComparison,
    PromotionChoice,
    best_cheap_fix,
    choose_promotion,
    register_cheap_fix,
    versus_best_cheap_fix,
)
from tunegate.diagnose._recommend import Recommendation, recommend, recommend_from_store
from tunegate.diagnose._trend import (
    TrendDecision,
    TrendResult,
    mann_kendall,
    sens_slope,
    stable_or_increasing,
)
from tunegate.diagnose._triage import (
    TriageCategory,
    TriageContext,
    TriageRule,
    TriageSuggestion,
    registered_rules,
    suggest,
    triage_context_from_store,
    triage_rule,
)
from tunegate.diagnose._triage_review import (
    TriageImportReport,
    confirm_triage,
    confirmed_triage,
    export_triage,
    import_triage,
)

__all__ = [
    "CHANGE_RATE_THRESHOLD",
    "CHEAP_FIXES",
    "CHEAP_FIX_KINDS",
    "FIXES_FOR_ACTION",
    "GENERATIVE_FIX_KINDS",
    "CheapFix",
    "CheapFixComparison",
    "ConditionFinding",
    "FailureCase",
    "GateCondition",
    "GateConditionSpec",
    "GateEvidence",
    "GateReport",
    "GenerativeCase",
    "GenerativeFailure",
    "GenerativeGateEvidence",
    "GenerativeRecommendation",
    "GenerativeTriage",
    "GenerativeTriageRule",
    "GroupBy",
    "LogitScorer",
    "MissedSignalPattern",
    "OverrideTrend",
    "PromotionChoice",
    "Recommendation",
    "RulesFirstClassifier",
    "Scorer",
    "TermWeight",
    "TextAttribution",
    "TrendDecision",
    "TrendResult",
    "TriageCategory",
    "TriageContext",
    "TriageImportReport",
    "TriageRule",
    "TriageSuggestion",
    "WeeklyCount",
    "ZeroShotScorer",
    "apply_change",
    "attribute_overrides",
    "attribute_texts",
    "best_cheap_fix",
    "champion_classifier",
    "change_kind",
    "choose_promotion",
    "collect_evidence",
    "collect_generative_evidence",
    "confirm_finding",
    "confirm_triage",
    "confirmed_triage",
    "contrast_overrides",
    "contrast_terms",
    "data_shortfalls",
    "decide_gate",
    "decide_generative_gate",
    "declared_rule_broken",
    "evaluate_gate",
    "export_triage",
    "failures_from_eval_run",
    "failures_from_overrides",
    "failures_from_store",
    "finding_phrases",
    "gate_condition",
    "gate_conditions",
    "generative_gate",
    "generative_gate_condition",
    "generative_gate_conditions",
    "generative_triage_rule",
    "generative_triage_rules",
    "import_triage",
    "instructions_fixed",
    "is_failure",
    "kb_change_rate",
    "latest_generative_run",
    "log_odds_dirichlet",
    "mann_kendall",
    "missed_signal_fix",
    "missed_signal_patterns",
    "override_trend",
    "override_trend_from_store",
    "parse_rules",
    "patterns_from_store",
    "readable_term",
    "recent_missed_signal_overrides",
    "recommend",
    "recommend_from_store",
    "recommend_generative",
    "register_cheap_fix",
    "registered_rules",
    "require_open_gate",
    "reviewed_examples",
    "scorer_for",
    "sens_slope",
    "slice_term",
    "stable_or_increasing",
    "suggest",
    "triage_context_from_store",
    "triage_generative",
    "triage_rule",
    "try_generative_fix",
    "try_instructions",
    "try_prompt",
    "try_retrieval",
    "try_rules",
    "try_style_stage",
    "underweighted_terms",
    "versus_best_cheap_fix",
    "weekly_override_counts",
    "weekly_series",
    "word_lists",
]
