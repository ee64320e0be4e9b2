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
from tunegate.report._words import change_phrase, counts_phrase

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


_TOP = 10
"""Rows shown in the report's example tables (the full lists are in ``result.json``)."""


def _excerpt(text: object, n: int = 90) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= n else t[: n - 1].rstrip() + "…"


def _count_table(counts: Any, key: str, value: str = "examples") -> Html:
    if not isinstance(counts, dict) or not counts:
        return Html("")
    return table([key, value], [[k, v] for k, v in counts.items()])


def _target_slice(t: dict[str, Any]) -> str:
    if t.get("slice"):
        return str(t["slice"])
    return f"not {t['not_slice']}" if t.get("not_slice") else "any"


def _dataset_html(ds: dict[str, Any]) -> Html:
    """Size and make-up of the training set and its data targets, as tables."""
    m = ds.get("manifest", {}) or {}
    dropped = m.get("dropped", {}) or {}
    parts = [
        f"<p>Dataset <code>{esc(str(ds.get('hash', ''))[:16])}</code>: "
        f"<b>{esc(m.get('n_examples', 'n/a'))}</b> training examples "
        f"({esc(m.get('n_new', 'n/a'))} new, {esc(m.get('n_replay', 'n/a'))} replayed from a "
        f"pool of {esc(m.get('replay_pool', 'n/a'))} correctly handled historical tickets); "
        f"{esc(m.get('gathered', 'n/a'))} gathered, {esc(m.get('rejected', 'n/a'))} rejected "
        "in review"
        + (f"; dropped afterwards: {esc(counts_phrase(dropped))}" if dropped else "")
        + ".</p>"
    ]
    figs = [
        _count_table(m.get("per_class"), "class"),
        _count_table(m.get("per_source"), "source"),
        _count_table(m.get("per_slice"), "slice"),
    ]
    parts.append('<div class="figs">' + "".join(f for f in figs if f) + "</div>")
    targets = ds.get("targets", []) or []
    if targets:
        parts.append(
            table(
                ["data target", "class", "slice", "have", "need", "status"],
                [
                    [
                        t.get("name"),
                        t.get("label"),
                        _target_slice(t),
                        t.get("have"),
                        t.get("need"),
                        badge("pass") if t.get("ok") else badge("fail"),
                    ]
                    for t in targets
                ],
                caption="Reviewed examples against the workflow's data targets",
            )
        )
    return Html("".join(parts))


def _label_quality_html(issues: dict[str, Any]) -> Html:
    """Confident-learning flags: how many of how many, per given label, and the top flagged
    examples (given vs suggested label, self-confidence)."""
    if not issues:
        return Html("<p>No label-quality check ran.</p>")
    flagged_rows = issues.get("issues", []) or []
    n_flagged = issues.get("n_flagged", issues.get("flagged", len(flagged_rows)))
    n = issues.get("n_examples")
    share_text = (
        f" ({n_flagged / n:.1%})" if isinstance(n, int) and n and isinstance(n_flagged, int) else ""
    )
    parts = [
        f"<p><b>{esc(n_flagged)}</b> of {esc(n if n is not None else 'n/a')} training examples "
        f"flagged{esc(share_text)} by confident learning"
        + (
            f" on {esc(issues['n_folds'])}-fold out-of-fold probabilities "
            f"(out-of-fold accuracy {_fmt(issues.get('oof_accuracy'))})"
            if issues.get("n_folds")
            else ""
        )
        + "; flagged examples go to review and the demo's reviewer drops them from training."
        "</p>"
    ]
    per_label = issues.get("flagged_per_given_label") or {}
    if per_label:
        parts.append(table(["given label", "flagged"], [[k, v] for k, v in per_label.items()]))
    if flagged_rows:
        ranked = sorted(flagged_rows, key=lambda i: i.get("self_confidence", 1.0))[:_TOP]
        parts.append(
            table(
                ["id", "text", "given label", "suggested label", "self-confidence"],
                [
                    [
                        i.get("id"),
                        _excerpt(i.get("text")),
                        i.get("given_label"),
                        i.get("suggested_label"),
                        _fmt(i.get("self_confidence")),
                    ]
                    for i in ranked
                ],
                caption=(
                    f"The {len(ranked)} most suspicious of {len(flagged_rows)} flagged examples "
                    "(lowest out-of-fold probability of the given label first)"
                ),
            )
        )
    return Html("".join(parts))


def _leakage_html(ds: dict[str, Any]) -> Html:
    """Training examples excluded for overlapping a frozen suite, and duplicates removed."""
    leak = ds.get("leakage", {}) or {}
    dedup = ds.get("dedup", {}) or {}
    threshold = (ds.get("manifest", {}) or {}).get("near_duplicate_threshold")
    by = f" (cosine similarity ≥ {threshold})" if threshold is not None else ""
    parts = [
        f"<p><b>{esc(leak.get('excluded', 0))}</b> training examples excluded for overlapping "
        f"a frozen evaluation suite: {esc(leak.get('exact', 0))} exact copies (normalized "
        f"text) and {esc(leak.get('near', 0))} near-duplicates{esc(by)}"
        + (
            f"; per suite: {esc(counts_phrase(leak.get('per_suite')))}"
            if leak.get("per_suite")
            else ""
        )
        + ".</p>",
        f"<p>Duplicates within the training data: <b>{esc(dedup.get('exact_removed', 0))}</b> "
        f"exact and <b>{esc(dedup.get('near_removed', 0))}</b> near-duplicates{esc(by)} removed "
        f"(one copy of each kept); {esc(dedup.get('label_conflicts', 0))} of them carried a "
        "different label from the copy kept.</p>",
    ]
    leak_rows = leak.get("examples", []) or []
    if leak_rows:
        parts.append(
            table(
                ["training example", "suite", "suite example", "match", "similarity", "text"],
                [
                    [
                        r.get("example_id"),
                        r.get("suite"),
                        r.get("suite_example_id"),
                        r.get("kind"),
                        _fmt(r.get("similarity")),
                        _excerpt(r.get("text")),
                    ]
                    for r in leak_rows[:_TOP]
                ],
                caption=f"Excluded for leakage (first {min(_TOP, len(leak_rows))} of "
                f"{len(leak_rows)})",
            )
        )
    dups = [{**r, "match": "exact"} for r in dedup.get("exact", []) or []] + [
        {**r, "match": "near"} for r in dedup.get("near", []) or []
    ]
    if dups:
        parts.append(
            table(
                ["removed", "kept", "match", "label", "kept label", "text"],
                [
                    [
                        r.get("removed"),
                        r.get("kept"),
                        str(r["match"])
                        + (f" {_fmt(r['similarity'])}" if r.get("similarity") is not None else ""),
                        r.get("label"),
                        r.get("kept_label"),
                        _excerpt(r.get("text")),
                    ]
                    for r in dups[:_TOP]
                ],
                caption=f"Duplicates removed (first {min(_TOP, len(dups))} of {len(dups)})",
            )
        )
    return Html("".join(parts))


def _decision_section(demo: DemoResult) -> Section:
    """The banner at the top: the verdict, whether the candidate was promoted and why."""
    outcome = demo.outcome
    cls = outcome if outcome in ("pass", "fail", "inconclusive") else "none"
    lines = demo.decision_lines()
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    state = "promoted" if demo.promoted else "not promoted"
    body = Html(
        f'<div class="banner {cls}"><p class="headline">{badge(outcome)} '
        f"<b>{esc(state.capitalize())}</b></p><ul>{items}</ul></div>"
    )
    verdict = "no verdict" if outcome == "none" else outcome.upper()
    return Section(f"Decision: {verdict}, {state}", body, "decision")


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
        latency = r.metric.startswith("median latency")
        change = change_phrase(
            r.difference,
            better=r.better,
            percent="accuracy" in r.metric,
            digits=2 if latency else 3,
            unit="ms" if latency else "",
        )
        body.append([r.metric, _fmt(r.before), _fmt(r.after), change, f"{diff}{ci}{noise}", r.note])
    level = confidence_label(next((r.confidence for r in rows if r.ci_low is not None), 0.95))
    return table(["metric", "before", "after", "change", f"difference ({level} CI)", "note"], body)


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
        if tokens and f.get("kind") == "contrast":
            # pairs first: the co-occurrence is the finding
            ordered = [t for t in tokens if t.get("kind") == "pair"] + [
                t for t in tokens if t.get("kind") != "pair"
            ]
            parts.append(
                table(
                    [
                        "term",
                        "kind",
                        "in overridden tickets",
                        "in correctly handled tickets",
                        "log-odds ratio",
                        "q (BH)",
                    ],
                    [
                        [
                            t.get("term"),
                            t.get("kind", "word"),
                            t.get("overrides_with"),
                            t.get("reference_with"),
                            _fmt(t.get("log_odds"), 2),
                            "n/a" if t.get("q_value") is None else f"{t['q_value']:.2g}",
                        ]
                        for t in ordered
                    ],
                )
            )
        elif tokens:
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


def _change(before: Any, after: Any) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return "n/a"
    return change_phrase(float(after) - float(before))


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
                    ["window", "trigger", "baseline", "current", "change", "threshold", "why"],
                    [
                        [
                            f.get("window"),
                            f.get("trigger"),
                            _fmt(f.get("baseline")),
                            _fmt(f.get("current")),
                            _change(f.get("baseline"), f.get("current")),
                            _fmt(f.get("threshold")),
                            f.get("message"),
                        ]
                        for f in fired
                    ],
                )
            )
        alert = res.get("alert")
        if alert:
            rollback = alert.get("rollback") or {}
            parts.append(
                f"<p><b>Alert:</b> {esc(alert.get('summary') or 'raised')}"
                + (
                    f"; rolled back {esc(rollback.get('from'))} &rarr; {esc(rollback.get('to'))}"
                    if rollback
                    else ""
                )
                + "</p>"
            )
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
    sections: list[Section] = [_decision_section(demo)]
    if demo.table:
        sections.append(Section("Before and after", _key_table_html(demo.table), "table"))
    trend_chart = line_chart(weeks, series, title="Overrides per week by reason code")
    trend = demo.trend
    decision = trend.get("decision", {})
    test = decision.get("test", {})
    rise = decision.get("rise") or {}
    counts = trend.get("counts") or []
    slope = test.get("slope")
    slope_text = (
        "n/a"
        if not isinstance(slope, int | float)
        else change_phrase(float(slope), digits=2).replace("unchanged", "stayed flat") + " a week"
    )
    trend_text = (
        "R2 (missed signal) overrides per complete week: "
        f"{', '.join(str(c) for c in counts) or 'none'}. Over the last "
        f"{decision.get('weeks')} weeks they "
        f"{slope_text} (Sen's slope; Mann-Kendall one-sided p(decrease) = "
        f"{_fmt(test.get('p_decrease'))}"
        + (f"; rise over the whole series p = {_fmt(rise.get('p_increase'))}" if rise else "")
        + "). Stable or increasing: "
        + ("yes" if decision.get("passed") else "no")
        + ". "
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
        sections.append(Section("6. Dataset", _dataset_html(ds), "dataset"))
        sections.append(
            Section("Label quality", _label_quality_html(demo.label_issues), "label-quality")
        )
        sections.append(Section("Leakage and duplicates", _leakage_html(ds), "leakage"))
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
                + _count_table(gap.get("by_reason"), "reason code", "corrections")
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
    md = ["# tunegate demo summary", "", "## Decision", ""]
    md += [f"- {line}" for line in demo.decision_lines()] + [""]
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
