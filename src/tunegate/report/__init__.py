"""Reports: self-contained HTML (inline CSS and SVG, no scripts, no network at view time),
Markdown and JSON. The only place in tunegate that produces HTML, SVG or Markdown.

The toolkit (:func:`page`, :class:`Section`, :func:`table`, :func:`badge`, :func:`esc` and the
SVG charts) is reusable by other modules' reports; the evaluation reports, the monitoring
review and the demo report are built from it.
"""

from __future__ import annotations

from tunegate.report._dashboard import StackedBar, StackedBarChart, stacked_bar_chart
from tunegate.report._demo import demo_report_html, demo_summary_markdown
from tunegate.report._evaluation import (
    MAX_MATRIX_CLASSES,
    comparison_html,
    confusion_view,
    fmt_interval,
    robustness_rows,
    run_html,
    verdict_markdown,
    verdict_section,
)
from tunegate.report._html import (
    REPORT_BUDGET_BYTES,
    Html,
    Section,
    badge,
    esc,
    fit_budget,
    page,
    table,
)
from tunegate.report._markdown import md_escape, md_table
from tunegate.report._monitoring import (
    monitor_review_html,
    monitor_review_markdown,
    write_monitor_review,
)
from tunegate.report._support import support_demo_html, support_demo_markdown
from tunegate.report._svg import (
    PALETTE,
    bar_chart,
    confusion_heatmap,
    line_chart,
    reliability_diagram,
)
from tunegate.report._words import change_phrase, counts_phrase

__all__ = [
    "MAX_MATRIX_CLASSES",
    "PALETTE",
    "REPORT_BUDGET_BYTES",
    "Html",
    "Section",
    "StackedBar",
    "StackedBarChart",
    "badge",
    "bar_chart",
    "change_phrase",
    "comparison_html",
    "confusion_heatmap",
    "confusion_view",
    "counts_phrase",
    "demo_report_html",
    "demo_summary_markdown",
    "esc",
    "fit_budget",
    "fmt_interval",
    "line_chart",
    "md_escape",
    "md_table",
    "monitor_review_html",
    "monitor_review_markdown",
    "page",
    "reliability_diagram",
    "robustness_rows",
    "run_html",
    "stacked_bar_chart",
    "support_demo_html",
    "support_demo_markdown",
    "table",
    "verdict_markdown",
    "verdict_section",
    "write_monitor_review",
]
