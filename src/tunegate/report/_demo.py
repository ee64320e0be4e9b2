"""The demo's single self-contained HTML report and its Markdown summary, rendered from the
:class:`~tunegate.demo.DemoResult` that :func:`tunegate.demo.run_demo` computed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tunegate.evaluate import confidence_label
from tunegate.records import EvalRun, EvalSuite
from tunegate.report._evaluation import verdict_section
from tunegate.report._html import Html, Section, badge, esc, page, table
from tunegate.report._markdown import md_table
from tunegate.report._svg import bar_chart, line_chart, reliability_diagram

if TYPE_CHECKING:
    from tunegate.demo import DemoResult, KeyRow
    from tunegate.evaluate import Comparison

__all__ = ["demo_report_html", "demo_summary_markdown"]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _key_table_html(rows: Sequence[KeyRow]) -> Html:
    body = []
    for r in rows:
        ci = (
            ""
            if r.ci_low is None or r.ci_high is None
            else f" ({r.ci_low:+.3f} to {r.ci_high:+.3f})"
        )
        noise = " — within noise" if r.within_noise else ""
        diff = "n/a" if r.difference is None else f"{r.difference:+.3f}"
        body.append([r.metric, _fmt(r.before), _fmt(r.after), f"{diff}{ci}{noise}", r.note])
    level = confidence_label(next((r.confidence for r in rows if r.ci_low is not None), 0.95))
    return table(["metric", "before", "after", f"difference ({level} CI)", "note"], body)


def _attribution_html(
    findings: Sequence[dict[str, Any]], highlights: Sequence[dict[str, Any]]
) -> Html:
    parts: list[str] = []
    for f in findings[:2]:
        tokens = f.get("tokens", [])[:10]
        state = "confirmed" if f.get("confirmed") else "not confirmed"
        parts.append(
            f"<p><b>{esc(f.get('label', ''))}</b> ({state}; {esc(f.get('n_overrides'))} R2 "
            f"overrides vs {esc(f.get('n_reference'))} correctly handled tickets, "
            f"{esc(f.get('method'))})</p>"
        )
        if tokens:
            parts.append(
                table(
                    [
                        "term",
                        "log-odds z",
                        "attribution to analyst's class",
                        "attribution to model's class",
                        "cue",
                    ],
                    [
                        [
                            t.get("term"),
                            _fmt(t.get("z"), 2),
                            _fmt(t.get("attr_analyst")),
                            _fmt(t.get("attr_predicted")),
                            t.get("cue"),
                        ]
                        for t in tokens
                    ],
                )
            )
    if highlights:
        parts.append(
            "<p>Example tickets: words pushing toward the analyst's class in red, "
            "toward the model's (wrong) class in blue.</p>"
        )
    for ex in highlights:
        words = ex.get("words", [])
        toward = ex.get("scores", {})
        good = toward.get(ex.get("final_label", ""), [0.0] * len(words))
        bad = toward.get(ex.get("model_label", ""), [0.0] * len(words))
        margin = [g - b for g, b in zip(good, bad, strict=False)]
        top = max((abs(m) for m in margin), default=0.0) or 1.0
        spans = []
        for w, m in zip(words, margin, strict=False):
            alpha = min(1.0, abs(m) / top)
            color = f"rgba(220,80,40,{alpha:.2f})" if m > 0 else f"rgba(40,110,220,{alpha:.2f})"
            spans.append(f'<span style="background:{color};padding:0 2px">{esc(w)}</span>')
        parts.append(
            f"<p><small>model: {esc(ex.get('model_label', ''))} &rarr; analyst: "
            f"{esc(ex.get('final_label', ''))}</small><br>{' '.join(spans)}</p>"
        )
    return Html("\n".join(parts) or "<p>No attribution findings.</p>")


def _slice_bars(comparison: Comparison) -> Html:
    boot = comparison.bootstrap
    assert boot.b is not None
    subsets = [s for s in boot.a if s == "overall" or s.startswith(("slice:", "tag:"))]
    before = [boot.a[s]["accuracy"].estimate for s in subsets]
    after = [boot.b[s]["accuracy"].estimate for s in subsets]
    errors = {
        "champion": [(boot.a[s]["accuracy"].low, boot.a[s]["accuracy"].high) for s in subsets],
        "candidate": [(boot.b[s]["accuracy"].low, boot.b[s]["accuracy"].high) for s in subsets],
    }
    return bar_chart(
        subsets,
        {"champion": before, "candidate": after},
        errors=errors,
        max_value=1.0,
        title=f"Accuracy per slice ({confidence_label(comparison.confidence)} CI)",
    )


def _curve(run: EvalRun) -> tuple[list[float | None], list[float | None], list[int]]:
    c = run.metrics["reliability"]["uniform"]
    return c["confidence"], c["accuracy"], c["count"]


def _monitor_html(monitor: dict[str, Any], shift: dict[str, Any]) -> Html:
    source = shift if shift.get("periods") else monitor
    periods = source.get("periods", [])
    if not periods:
        return Html("<p>No monitoring periods.</p>")
    x = [str(p.get("period")) for p in periods]

    def col(name: str) -> list[float | None]:
        return [float(p[name]) if isinstance(p.get(name), int | float) else None for p in periods]

    chart = line_chart(
        x,
        {
            "override rate": col("override_rate"),
            "escalation rate": col("escalation_rate"),
            "clarify rate": col("clarify_rate"),
            "selective accuracy": col("selective_accuracy"),
        },
        title="Production figures per week (all weeks in the store)",
    )
    parts: list[str] = [chart]
    for title, res in (
        ("Quiet weeks after the deployment", monitor),
        ("After the new VPN client rolls out", shift),
    ):
        if not res:
            continue
        fired = res.get("fired", [])
        parts.append(
            f"<h3>{esc(title)}</h3><p>champion {esc(res.get('champion'))}; "
            f"baseline from {esc(res.get('baseline_source', 'n/a'))}; "
            f"{len(res.get('triggers', {}))} weekly windows judged; "
            f"{len(fired)} trigger(s) fired.</p>"
        )
        if fired:
            parts.append(
                table(
                    ["window", "trigger", "baseline", "current", "threshold", "why"],
                    [
                        [
                            f.get("window"),
                            f.get("trigger"),
                            _fmt(f.get("baseline")),
                            _fmt(f.get("current")),
                            _fmt(f.get("threshold")),
                            f.get("message"),
                        ]
                        for f in fired
                    ],
                )
            )
        alert = res.get("alert")
        if alert:
            parts.append(f"<p><b>Alert:</b> {esc(alert.get('summary', alert))}</p>")
        if res.get("champion_after"):
            parts.append(
                f"<p>Champion after monitoring: <code>{esc(res['champion_after'])}</code></p>"
            )
    return Html("".join(parts))


def demo_report_html(
    demo: DemoResult,
    *,
    suite: EvalSuite,
    baseline: EvalRun,
    candidate: EvalRun | None,
    comparison: Comparison | None,
    seed_runs: Sequence[EvalRun],
    weeks: Sequence[str],
    series: dict[str, list[float]],
) -> str:
    """The demo report: one self-contained page (inline CSS and SVG, no scripts, no network).

    ``weeks`` and ``series`` are the weekly correction counts by reason code (the trend chart).
    """
    sections: list[Section] = []
    if demo.table:
        sections.append(Section("Before and after", _key_table_html(demo.table), "table"))
    trend_chart = line_chart(weeks, series, title="Overrides per week by reason code")
    trend = demo.trend
    decision = trend.get("decision", {})
    test = decision.get("test", {})
    rise = decision.get("rise") or {}
    trend_text = (
        f"R2 (missed signal) overrides per complete week: {trend.get('counts')}. Stable or "
        f"increasing over the last {decision.get('weeks')} weeks: "
        f"{decision.get('passed')} (Mann-Kendall one-sided p(decrease) = "
        f"{_fmt(test.get('p_decrease'))}, Sen's slope {_fmt(test.get('slope'), 2)} per week"
        + (f"; rise over the whole series p = {_fmt(rise.get('p_increase'))}" if rise else "")
        + "). "
        + "; ".join(str(r) for r in decision.get("reasons", []))
    )
    sections.append(
        Section("1. Override trend", Html(trend_chart + f"<p>{esc(trend_text)}</p>"), "trend")
    )
    rec = demo.recommendation
    shares = rec.get("shares", {}) or {}
    triage_chart = (
        bar_chart(
            list(shares),
            {"share": [float(v) for v in shares.values()]},
            max_value=1.0,
            title="Confirmed triage categories (share)",
        )
        if shares
        else Html("")
    )
    sections.append(
        Section(
            "2. Error triage",
            Html(
                triage_chart + f"<p><b>Recommendation:</b> {esc(rec.get('action', ''))} — "
                f"{esc('; '.join(rec.get('reasons', [])))} ({esc(rec.get('total'))} confirmed "
                f"triaged failures)</p>"
            ),
            "triage",
        )
    )
    sections.append(
        Section(
            "3. Attribution: the missed signal",
            _attribution_html(demo.findings, demo.highlights),
            "attribution",
        )
    )
    sections.append(
        Section(
            "4. Cheap fixes first",
            table(
                ["kind", "description", "verdict", "missed-signal overrides fixed"],
                [
                    [
                        a["kind"],
                        a["description"],
                        badge(a["outcome"] or "n/a"),
                        _fmt(a["details"].get("fixed_share")),
                    ]
                    for a in demo.attempts
                ],
            ),
            "fixes",
        )
    )
    gate = demo.gate
    sections.append(
        Section(
            "5. The fine-tuning gate",
            Html(
                f"<p>{badge('pass' if gate['open'] else 'fail')} {esc(gate['message'])}</p>"
                + table(
                    ["#", "condition", "result", "evidence", "next step"],
                    [
                        [
                            c.get("number"),
                            c.get("name"),
                            badge("pass" if c.get("passed") else "fail"),
                            c.get("summary"),
                            c.get("next_step", ""),
                        ]
                        for c in gate["conditions"]
                    ],
                )
            ),
            "gate",
        )
    )
    if demo.dataset:
        ds = demo.dataset
        sections.append(
            Section(
                "6. Dataset",
                Html(
                    f"<p>hash <code>{esc(ds['hash'][:16])}</code>; "
                    f"{esc(ds['manifest'].get('n_examples', ''))} examples; per class "
                    f"{esc(ds['manifest'].get('per_class', ''))}</p>"
                    + table(
                        ["target", "have", "need", "ok"],
                        [
                            [t.get("name"), t.get("have"), t.get("need"), t.get("ok")]
                            for t in ds.get("targets", [])
                        ],
                    )
                    + f"<p>Leakage report: {esc(ds.get('leakage'))}</p>"
                    + f"<p>Label quality: {esc(demo.label_issues)}</p>"
                ),
                "dataset",
            )
        )
    if comparison is not None and candidate is not None:
        verdict = comparison.verdict
        rel = reliability_diagram({"champion": _curve(baseline), "candidate": _curve(candidate)})
        sections.append(verdict_section(verdict))
        sections.append(
            Section("7. Calibration and slices", Html(rel + _slice_bars(comparison)), "slices")
        )
        if seed_runs:
            sections.append(
                Section(
                    "Seeds",
                    table(
                        ["seed", "accuracy", "ECE"],
                        [
                            [
                                r.seed,
                                _fmt(r.metrics["overall"]["accuracy"]["estimate"]),
                                _fmt(
                                    r.metrics["overall"]["expected_calibration_error"]["estimate"]
                                ),
                            ]
                            for r in seed_runs
                        ],
                    ),
                    "seeds",
                )
            )
    sections.append(
        Section(
            "8. After deployment: monitoring", _monitor_html(demo.monitor, demo.shift), "monitor"
        )
    )
    gap = demo.next_gap
    sections.append(
        Section(
            "9. The next gap",
            Html(
                f"<p>{esc(gap.get('headline', ''))}</p>"
                + table(
                    ["model label", "analyst label", "count"],
                    [
                        [p.get("model_label"), p.get("final_label"), p.get("count")]
                        for p in gap.get("top_pairs", [])[:10]
                    ],
                )
            ),
            "gap",
        )
    )
    timings = table(["step", "seconds"], [[t.name, f"{t.seconds:.1f}"] for t in demo.timings])
    sections.append(Section("Run", timings, "run"))
    html = page(
        "tunegate demo: the service desk after the MFA rollout",
        sections,
        subtitle=f"suite {suite.hash[:12]} · champion {demo.champion_version} · "
        f"candidate {demo.candidate_version or 'none'}",
    )
    return html


def demo_summary_markdown(demo: DemoResult, key_table_markdown: str = "") -> str:
    """The demo's Markdown summary (``key_table_markdown``: the before/after table)."""
    gate = demo.gate
    gap = demo.next_gap
    md = ["# tunegate demo summary", ""]
    if demo.table:
        md += ["## Before and after", "", key_table_markdown, ""]
    md += [
        "## Gate",
        "",
        f"**{'open' if gate['open'] else 'closed'}** — {gate['message']}",
        "",
        md_table(
            ["#", "condition", "passed", "evidence"],
            [
                [c.get("number"), c.get("name"), c.get("passed"), c.get("summary")]
                for c in gate["conditions"]
            ],
        ),
        "",
    ]
    md += [
        "## Cheap fixes",
        "",
        md_table(["kind", "verdict"], [[a["kind"], a["outcome"]] for a in demo.attempts]),
        "",
    ]
    if demo.verdict:
        md += ["## Verdict", "", f"**{demo.verdict['outcome']}**; promoted: {demo.promoted}", ""]
    md += [
        "## Monitoring",
        "",
        f"- quiet weeks after the deployment: "
        f"{len(demo.monitor.get('fired', []))} trigger(s) fired",
        f"- after the VPN-client shift: {len(demo.shift.get('fired', []))} trigger(s) fired; "
        f"champion afterwards: {demo.shift.get('champion_after')}",
        "",
    ]
    md += ["## Next gap", "", str(gap.get("headline", "")), ""]
    return "\n".join(md)
