"""The monthly review report: self-contained HTML (inline SVG, no network) and Markdown.

Charts: override rate by reason code per period, escalation and clarification rates, drift
scores against their thresholds, and a grid of trigger status per window.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from tunegate.monitor._gap import Gap
from tunegate.monitor._run import MonitorResult
from tunegate.monitor._shadow import ShadowFigures

__all__ = ["line_chart_svg", "render_html", "render_markdown", "write_report"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
_REASONS = ("R1", "R2", "R3", "R4")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def line_chart_svg(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, list[float | None]],
    *,
    threshold: float | None = None,
    percent: bool = True,
    width: int = 640,
    height: int = 220,
) -> str:
    """An inline SVG line chart; ``None`` values leave a gap. Pure string, no scripts."""
    left, right, top, bottom = 56, 130, 28, 42
    pw, ph = width - left - right, height - top - bottom
    values = [v for s in series.values() for v in s if v is not None]
    if threshold is not None:
        values.append(threshold)
    y_max = max(values) * 1.15 if values and max(values) > 0 else 1.0
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph - ph * v / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}" font-family="sans-serif" '
        f'font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#999"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = y_max * frac
        label = f"{v:.0%}" if percent else f"{v:.3g}"
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{label}</text>')
    step = max(1, n // 8)
    for i, lab in enumerate(x_labels):
        if i % step == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{top + ph + 16}" text-anchor="middle">'
                f"{html.escape(lab)}</text>"
            )
    if threshold is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(threshold):.1f}" x2="{left + pw}" '
            f'y2="{y(threshold):.1f}" stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{left + pw + 4}" y="{y(threshold) + 4:.1f}">threshold</text>'
        )
    for k, (name, vals) in enumerate(series.items()):
        color = _COLORS[k % len(_COLORS)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, value in enumerate(vals):
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            v = value
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>')
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                f'points="{" ".join(seg)}"/>'
            )
        ly = top + 12 + 16 * k
        parts.append(
            f'<rect x="{left + pw + 8}" y="{ly - 8}" width="10" height="10" '
            f'fill="{color}"/><text x="{left + pw + 22}" y="{ly + 1}">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _charts(result: MonitorResult) -> list[str]:
    xs = [p.period for p in result.periods]
    reasons = {
        r: [
            p.figures.override_rate_by_reason.get(r, 0.0) if p.figures.n_decisions else None
            for p in result.periods
        ]
        for r in _REASONS
    }
    reasons = {r: v for r, v in reasons.items() if any(x for x in v)}
    charts = [
        line_chart_svg(
            "Override rate by reason code",
            xs,
            reasons or {"all": [p.figures.override_rate for p in result.periods]},
        ),
        line_chart_svg(
            "Escalation and clarification rates",
            xs,
            {
                "escalate": [p.figures.escalation_rate for p in result.periods],
                "clarify": [p.figures.clarify_rate for p in result.periods],
            },
        ),
    ]
    tests = sorted({d.test for ds in result.drift.values() for d in ds})
    for test in tests:
        row = []
        threshold = None
        for p in result.periods:
            match = [d for d in result.drift.get(p.period, []) if d.test == test]
            row.append(match[0].score if match else None)
            threshold = match[0].threshold if match else threshold
        charts.append(
            line_chart_svg(f"Drift: {test}", xs, {test: row}, threshold=threshold, percent=False)
        )
    return charts


def _trigger_grid(result: MonitorResult) -> tuple[list[str], list[list[str]]]:
    names = sorted({r.trigger for w in result.windows for r in w.results})
    rows = []
    for w in result.windows:
        by = {r.trigger: r for r in w.results}
        rows.append(
            [
                w.window,
                *(
                    ("FIRED" if by[n].fired else ("ok" if by[n].judged else "n/j"))
                    if n in by
                    else "-"
                    for n in names
                ),
            ]
        )
    return ["window", *names], rows


def _period_rows(result: MonitorResult) -> tuple[list[str], list[list[str]]]:
    head = [
        "period",
        "decisions",
        "override",
        "escalate",
        "clarify",
        "selective acc.",
        "calib. gap",
        "p50 ms",
        "p95 ms",
        *(f"FNR {c}" for c in (result.baseline.protected_fnr if result.baseline else {})),
    ]
    rows = []
    for p in result.periods:
        f = p.figures
        rows.append(
            [
                p.period,
                str(f.n_decisions),
                _pct(f.override_rate),
                _pct(f.escalation_rate),
                _pct(f.clarify_rate),
                _pct(f.selective_accuracy),
                _num(f.calibration_gap, "+.3f"),
                _num(f.latency_p50),
                _num(f.latency_p95),
                *(
                    _pct(f.protected_fnr.get(c))
                    for c in (result.baseline.protected_fnr if result.baseline else {})
                ),
            ]
        )
    return head, rows


def _gap_rows(gap: Gap) -> tuple[list[str], list[list[str]]]:
    return (["model label", "final label", "count"], [[a, b, str(n)] for a, b, n in gap.top_pairs])


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"fired" if c == "FIRED" else ""}">{html.escape(c)}</td>' for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _status_line(result: MonitorResult) -> str:
    fired = result.fired
    if fired:
        names = ", ".join(sorted({r.trigger for r in fired}))
        where = ", ".join(sorted({r.window for r in fired}))
        line = f"FIRED: {names} (in {where})"
        if result.alert and result.alert.rollback:
            line += (
                f"; rolled back {result.alert.rollback.get('from')} -> "
                f"{result.alert.rollback.get('to')}"
            )
        return line
    judged = sum(r.judged for w in result.windows for r in w.results)
    return f"no trigger fired ({judged} trigger checks judged over {len(result.windows)} windows)"


_CSS = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 8px;text-align:right}th{background:#f3f3f3}td.fired{background:#fdd;color:#900;
font-weight:bold}.status{padding:.6em;border-radius:4px;background:#eef}.bad{background:#fdd}
svg{display:block;margin:1em 0}"""


def render_html(
    result: MonitorResult,
    *,
    gap: Gap | None = None,
    shadow: Sequence[ShadowFigures] = (),
    title: str | None = None,
) -> str:
    """The review as one self-contained HTML page (inline CSS and SVG, no external links)."""
    title = title or f"tunegate monthly review: {result.workflow}"
    esc = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
        f"<p>Champion <b>{esc(str(result.champion))}</b>, promoted "
        f"{esc(result.promoted_at.isoformat() if result.promoted_at else 'never')}. "
        f"Drift reference: {esc(result.reference_source)}.</p>",
        f"<p class='status{' bad' if result.fired else ''}'>Trigger status: "
        f"{esc(_status_line(result))}</p>",
    ]
    if result.eval_pass is not None:
        parts.append(
            f"<p>Pass rate on evaluation cases added since the model was built: "
            f"{_pct(result.eval_pass.pass_rate)} of {result.eval_pass.n_cases}.</p>"
        )
    parts.append("<h2>Trends</h2>")
    parts += _charts(result)
    parts.append("<h2>Figures per period</h2>" + _html_table(*_period_rows(result)))
    parts.append("<h2>Rollback triggers per window</h2>" + _html_table(*_trigger_grid(result)))
    if gap is not None:
        parts.append(
            f"<h2>The next gap</h2><p>{gap.n_overridden} corrections remain over "
            f"{gap.n_decisions} decisions. By reason: {esc(str(gap.by_reason))}; by "
            f"class: {esc(str(gap.by_class))}; by slice: {esc(str(gap.by_slice))}.</p>"
        )
        parts.append(_html_table(*_gap_rows(gap)))
        if gap.r2_ngrams:
            parts.append(
                _html_table(
                    ["R2 n-gram", "R2 tickets", "other", "log-odds"],
                    [
                        [g.ngram, str(g.in_r2), str(g.in_rest), f"{g.log_odds:.2f}"]
                        for g in gap.r2_ngrams
                    ],
                )
            )
    if shadow:
        parts.append(
            "<h2>Shadow candidates</h2>"
            + _html_table(
                [
                    "candidate",
                    "tickets",
                    "agreement",
                    "candidate acc.",
                    "champion acc.",
                    "fixes",
                    "breaks",
                ],
                [
                    [
                        s.candidate,
                        str(s.n_tickets),
                        _pct(s.agreement),
                        _pct(s.candidate_accuracy),
                        _pct(s.champion_accuracy),
                        str(s.fixes),
                        str(s.breaks),
                    ]
                    for s in shadow
                ],
            )
        )
    if result.notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in result.notes) + "</ul>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(
    result: MonitorResult, *, gap: Gap | None = None, shadow: Sequence[ShadowFigures] = ()
) -> str:
    """The review as Markdown (tables; the charts live in the HTML version)."""
    out = [
        f"# tunegate monthly review: {result.workflow}",
        "",
        f"Champion **{result.champion}**, promoted "
        f"{result.promoted_at.isoformat() if result.promoted_at else 'never'}; drift "
        f"reference: {result.reference_source}.",
        "",
        f"**Trigger status:** {_status_line(result)}",
        "",
    ]
    if result.eval_pass is not None:
        out += [
            f"Pass rate on evaluation cases added since the model was built: "
            f"{_pct(result.eval_pass.pass_rate)} of {result.eval_pass.n_cases}.",
            "",
        ]
    out += ["## Figures per period", "", _md_table(*_period_rows(result)), ""]
    if result.drift:
        tests = sorted({d.test for ds in result.drift.values() for d in ds})
        rows = []
        for period, ds in result.drift.items():
            by = {d.test: d for d in ds}
            rows.append(
                [
                    period,
                    *(
                        f"{by[t].score:.3g}{' DRIFT' if by[t].drifted else ''}" if t in by else "-"
                        for t in tests
                    ),
                ]
            )
        out += ["## Input drift", "", _md_table(["period", *tests], rows), ""]
    out += ["## Rollback triggers per window", "", _md_table(*_trigger_grid(result)), ""]
    if gap is not None:
        out += [
            "## The next gap",
            "",
            f"{gap.n_overridden} corrections remain over "
            f"{gap.n_decisions} decisions. By reason: {gap.by_reason}; by class: "
            f"{gap.by_class}; by slice: {gap.by_slice}.",
            "",
            _md_table(*_gap_rows(gap)),
            "",
        ]
        if gap.r2_ngrams:
            out += [
                _md_table(
                    ["R2 n-gram", "R2 tickets", "other", "log-odds"],
                    [
                        [g.ngram, str(g.in_r2), str(g.in_rest), f"{g.log_odds:.2f}"]
                        for g in gap.r2_ngrams
                    ],
                ),
                "",
            ]
    if shadow:
        out += [
            "## Shadow candidates",
            "",
            _md_table(
                [
                    "candidate",
                    "tickets",
                    "agreement",
                    "candidate acc.",
                    "champion acc.",
                    "fixes",
                    "breaks",
                ],
                [
                    [
                        s.candidate,
                        str(s.n_tickets),
                        _pct(s.agreement),
                        _pct(s.candidate_accuracy),
                        _pct(s.champion_accuracy),
                        str(s.fixes),
                        str(s.breaks),
                    ]
                    for s in shadow
                ],
            ),
            "",
        ]
    if result.notes:
        out += ["## Notes", "", *(f"- {n}" for n in result.notes), ""]
    return "\n".join(out)


def write_report(
    result: MonitorResult,
    directory: str | Path,
    *,
    gap: Gap | None = None,
    shadow: Sequence[ShadowFigures] = (),
) -> tuple[Path, Path]:
    """Write ``review.html`` and ``review.md`` into ``directory``; returns both paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, md_path = folder / "review.html", folder / "review.md"
    html_path.write_text(render_html(result, gap=gap, shadow=shadow), encoding="utf-8")
    md_path.write_text(render_markdown(result, gap=gap, shadow=shadow), encoding="utf-8")
    return html_path, md_path
