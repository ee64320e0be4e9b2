"""Production monitoring: figures, input drift, rollback triggers, shadow mode, the next gap;
for ``answer`` / ``tool_call`` workflows, monthly figures of the production log and their
triggers (``_generative``); tickets matching a known attack pattern (``_attacks``).

See docs/monitoring.md. The pure functions take lists of records; the ``*_from_store`` and
``run_monitor`` helpers read them from a :class:`tunegate.store.Store`. The review report is
rendered by :func:`tunegate.report.write_monitor_review`.
"""

from __future__ import annotations

from tunegate.monitor._attacks import AttackPatternCounts, attack_pattern_counts
from tunegate.monitor._drift import (
    DEFAULT_EMBEDDING_TESTS,
    DEFAULT_VOCABULARY_TESTS,
    DriftResult,
    DriftTest,
    drift_tests,
    get_drift_test,
    new_vocabulary_share,
    psi_score,
    register_drift_test,
    tokenize,
)
from tunegate.monitor._figures import (
    Figures,
    Period,
    PeriodFigures,
    compute_figures,
    figures_by_period,
    live_overrides,
    match_overrides,
    period_bounds,
    period_key,
)
from tunegate.monitor._gap import (
    Gap,
    aggregate_attribution,
    next_gap,
    next_gap_from_store,
)
from tunegate.monitor._generative import (
    GenerativeMonitorResult,
    MonthFigures,
    WeekEscalation,
    generative_monthly_figures,
    generative_triggers,
    run_generative_monitor,
    weekly_escalation,
)
from tunegate.monitor._run import (
    EvalPassRate,
    MonitorResult,
    act_on,
    eval_pass_rate,
    promotion_of,
    reference_texts,
    run_monitor,
    set_reference,
)
from tunegate.monitor._shadow import (
    ShadowFigures,
    disagreements_to_review,
    reviewed_for,
    shadow_figures,
    shadow_figures_from_records,
    shadow_score,
)
from tunegate.monitor._triggers import (
    Alert,
    TriggerResult,
    WindowTriggers,
    check_triggers,
    escalation_rising_trigger,
    evaluate_windows,
    one_sided_rate_increase_p,
    post_webhook,
    render_alert,
)
from tunegate.monitor._weekly import WeekFigures, weekly_figures

__all__ = [
    "DEFAULT_EMBEDDING_TESTS",
    "DEFAULT_VOCABULARY_TESTS",
    "Alert",
    "AttackPatternCounts",
    "DriftResult",
    "DriftTest",
    "EvalPassRate",
    "Figures",
    "Gap",
    "GenerativeMonitorResult",
    "MonitorResult",
    "MonthFigures",
    "Period",
    "PeriodFigures",
    "ShadowFigures",
    "TriggerResult",
    "WeekEscalation",
    "WeekFigures",
    "WindowTriggers",
    "act_on",
    "aggregate_attribution",
    "attack_pattern_counts",
    "check_triggers",
    "compute_figures",
    "disagreements_to_review",
    "drift_tests",
    "escalation_rising_trigger",
    "eval_pass_rate",
    "evaluate_windows",
    "figures_by_period",
    "generative_monthly_figures",
    "generative_triggers",
    "get_drift_test",
    "live_overrides",
    "match_overrides",
    "new_vocabulary_share",
    "next_gap",
    "next_gap_from_store",
    "one_sided_rate_increase_p",
    "period_bounds",
    "period_key",
    "post_webhook",
    "promotion_of",
    "psi_score",
    "reference_texts",
    "register_drift_test",
    "render_alert",
    "reviewed_for",
    "run_generative_monitor",
    "run_monitor",
    "set_reference",
    "shadow_figures",
    "shadow_figures_from_records",
    "shadow_score",
    "tokenize",
    "weekly_escalation",
    "weekly_figures",
]
