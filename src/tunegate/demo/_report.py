"""Write the demo's report: count the weekly corrections, then let :mod:`tunegate.report`
render ``report.html`` and ``summary.md``."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from tunegate.config import Workflow
from tunegate.demo._table import render_key_table
from tunegate.records import EvalRun, EvalSuite
from tunegate.report import demo_report_html, demo_summary_markdown
from tunegate.text import week_start

if TYPE_CHECKING:
    from tunegate.demo._pipeline import DemoResult
    from tunegate.evaluate import Comparison
    from tunegate.store import Store

__all__ = ["weekly_corrections", "write_demo_report"]


def weekly_corrections(store: Store) -> tuple[list[str], dict[str, list[float]]]:
    """Corrections per week (Monday, ISO date) by reason code, over every week with a
    non-shadow decision or a correction."""
    counts: dict[str, Counter[date]] = defaultdict(Counter)
    weeks: set[date] = set()
    for d in store.decisions(shadow=False):
        weeks.add(week_start(d.created_at))
    for o in store.overrides():
        if not o.is_correction:
            continue
        wk = week_start(o.created_at)
        weeks.add(wk)
        counts[o.reason_code.value][wk] += 1
    ordered = sorted(weeks)
    series = {code: [float(counts[code][w]) for w in ordered] for code in sorted(counts)}
    return [w.isoformat() for w in ordered], series


def write_demo_report(
    demo: DemoResult,
    *,
    workflow: Workflow,
    suite: EvalSuite,
    baseline: EvalRun,
    candidate: EvalRun | None,
    comparison: Comparison | None,
    seed_runs: Sequence[EvalRun],
    store: Store,
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained: inline CSS and SVG, no scripts, no network) and
    ``summary.md`` into ``demo.out_dir``. ``workflow`` is the demo's workflow (not needed to
    render; accepted for the pipeline's call)."""
    del workflow
    weeks, series = weekly_corrections(store)
    html = demo_report_html(
        demo,
        suite=suite,
        baseline=baseline,
        candidate=candidate,
        comparison=comparison,
        seed_runs=seed_runs,
        weeks=weeks,
        series=series,
    )
    out_html = demo.out_dir / "report.html"
    out_html.write_text(html, encoding="utf-8")
    table_md = render_key_table(demo.table) if demo.table else ""
    out_md = demo.out_dir / "summary.md"
    out_md.write_text(demo_summary_markdown(demo, table_md), encoding="utf-8")
    return out_html, out_md
