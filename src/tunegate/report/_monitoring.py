"""The monthly monitoring review: one self-contained HTML page (inline SVG, no network) and
Markdown, rendered from what :func:`tunegate.monitor.run_monitor` computed.

Charts: override rate by reason code per period, escalation and clarification rates, each drift
score against its threshold. Tables: figures per period, trigger status per window, the next
gap, shadow candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tunegate.report._html import Html, Section, esc, page, table
from tunegate.report._markdown import md_table
from tunegate.report._svg import line_chart
from tunegate.report._words import counts_phrase

if TYPE_CHECKING:
    from tunegate.monitor import Gap, MonitorResult, ShadowFigures

__all__ = ["monitor_review_html", "monitor_review_markdown", "write_monitor_review"]

_REASONS = ("R1", "R2", "R3", "R4")
_FIRED = "FIRED"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def _charts(result: MonitorResult) -> list[Html]:
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
        line_chart(
            xs,
            reasons or {"all": [p.figures.override_rate for p in result.periods]},
            title="Override rate by reason code",
            percent=True,
        ),
        line_chart(
            xs,
            {
                "escalate": [p.figures.escalation_rate for p in result.periods],
                "clarify": [p.figures.clarify_rate for p in result.periods],
            },
            title="Escalation and clarification rates",
            percent=True,
        ),
    ]
    tests = sorted({d.test for ds in result.drift.values() for d in ds})
    for test in tests:
        row: list[float | None] = []
        threshold = None
        for p in result.periods:
            match = [d for d in result.drift.get(p.period, []) if d.test == test]
            row.append(match[0].score if match else None)
            threshold = match[0].threshold if match else threshold
        charts.append(line_chart(xs, {test: row}, title=f"Drift: {test}", threshold=threshold))
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
                    (_FIRED if by[n].fired else ("ok" if by[n].judged else "n/j"))
                    if n in by
                    else "-"
                    for n in names
                ),
            ]
        )
    return ["window", *names], rows


def _period_rows(result: MonitorResult) -> tuple[list[str], list[list[str]]]:
    protected = list(result.baseline.protected_fnr) if result.baseline else []
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
        *(f"FNR {c}" for c in protected),
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
                *(_pct(f.protected_fnr.get(c)) for c in protected),
            ]
        )
    return head, rows


def _gap_pairs(gap: Gap) -> tuple[list[str], list[list[str]]]:
    return (["model label", "final label", "count"], [[a, b, str(n)] for a, b, n in gap.top_pairs])


def _gap_patterns(gap: Gap) -> tuple[list[str], list[list[str]]]:
    return (
        ["R2 n-gram", "R2 tickets", "correctly handled", "log-odds", "z"],
        [
            [
                p.ngram,
                str(p.overrides_with),
                str(p.reference_with),
                f"{p.log_odds:.2f}",
                f"{p.z:.1f}",
            ]
            for p in gap.r2_ngrams
        ],
    )


def _gap_text(gap: Gap) -> str:
    return (
        f"{gap.n_overridden} corrections remain over {gap.n_decisions} decisions. By reason: "
        f"{counts_phrase(gap.by_reason)}; by class: {counts_phrase(gap.by_class)}; by slice: "
        f"{counts_phrase(gap.by_slice)}."
    )


def _shadow_rows(shadow: Sequence[ShadowFigures]) -> tuple[list[str], list[list[str]]]:
    head = [
        "candidate",
        "tickets",
        "agreement",
        "candidate acc.",
        "champion acc.",
        "fixes",
        "breaks",
    ]
    rows = [
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
    ]
    return head, rows


def _status_line(result: MonitorResult) -> str:
    fired = result.fired
    if fired:
        names = ", ".join(sorted({r.trigger for r in fired}))
        where = ", ".join(sorted({r.window for r in fired}))
        line = f"{_FIRED}: {names} (in {where})"
        if result.alert and result.alert.rollback:
            line += (
                f"; rolled back {result.alert.rollback.get('from')} -> "
                f"{result.alert.rollback.get('to')}"
            )
        return line
    judged = sum(r.judged for w in result.windows for r in w.results)
    return f"no trigger fired ({judged} trigger checks judged over {len(result.windows)} windows)"


def _eval_pass_line(result: MonitorResult) -> str:
    assert result.eval_pass is not None
    return (
        f"Pass rate on evaluation cases added since the model was built: "
        f"{_pct(result.eval_pass.pass_rate)} of {result.eval_pass.n_cases}."
    )


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> Html:
    """A report table with fired triggers highlighted."""
    marked = [
        [Html(f'<span class="fired">{_FIRED}</span>') if c == _FIRED else c for c in r]
        for r in rows
    ]
    return table(head, marked)


def monitor_review_html(
    result: MonitorResult,
    *,
    gap: Gap | None = None,
    shadow: Sequence[ShadowFigures] = (),
    title: str | None = None,
) -> str:
    """The review as one self-contained HTML page (inline CSS and SVG, no external links)."""
    promoted = result.promoted_at.isoformat() if result.promoted_at else "never"
    status = (
        f'<p class="status{" bad" if result.fired else ""}">Trigger status: '
        f"{esc(_status_line(result))}</p>"
    )
    if result.eval_pass is not None:
        status += f"<p>{esc(_eval_pass_line(result))}</p>"
    sections = [
        Section("Status", Html(status), anchor="status"),
        Section("Trends", Html("".join(_charts(result))), anchor="trends"),
        Section("Figures per period", _html_table(*_period_rows(result)), anchor="periods"),
        Section(
            "Rollback triggers per window", _html_table(*_trigger_grid(result)), anchor="triggers"
        ),
    ]
    if gap is not None:
        body = f"<p>{esc(_gap_text(gap))}</p>" + _html_table(*_gap_pairs(gap))
        if gap.r2_ngrams:
            body += _html_table(*_gap_patterns(gap))
        sections.append(Section("The next gap", Html(body), anchor="gap"))
    if shadow:
        sections.append(
            Section("Shadow candidates", _html_table(*_shadow_rows(shadow)), anchor="shadow")
        )
    attacks = _attack_line(result)
    if attacks:
        sections.append(
            Section("Attack patterns", Html(f"<p>{esc(attacks)}</p>"), anchor="attacks")
        )
    if result.notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
        sections.append(Section("Notes", Html(f"<ul>{items}</ul>"), anchor="notes"))
    return page(
        title or f"tunegate monthly review: {result.workflow}",
        sections,
        subtitle=f"Champion {result.champion}, promoted {promoted}. "
        f"Drift reference: {result.reference_source}.",
    )


def _attack_line(result: MonitorResult) -> str | None:
    """Tickets matching an injected-instruction pattern, in one sentence (``None`` when no
    ticket was scanned)."""
    found = result.attack_patterns
    if found is None or not found.n_tickets:
        return None
    line = (
        f"{found.n_matched} of {found.n_tickets} tickets ({found.rate:.2%}) match an "
        f"injected-instruction pattern"
    )
    if found.by_period:
        line += " (" + ", ".join(f"{k}: {v}" for k, v in found.by_period.items()) + ")"
    if found.example_ids:
        line += "; read: " + ", ".join(found.example_ids)
    return line + "."


def monitor_review_markdown(
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
        out += [_eval_pass_line(result), ""]
    out += ["## Figures per period", "", md_table(*_period_rows(result)), ""]
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
        out += ["## Input drift", "", md_table(["period", *tests], rows), ""]
    out += ["## Rollback triggers per window", "", md_table(*_trigger_grid(result)), ""]
    if gap is not None:
        out += ["## The next gap", "", _gap_text(gap), "", md_table(*_gap_pairs(gap)), ""]
        if gap.r2_ngrams:
            out += [md_table(*_gap_patterns(gap)), ""]
    if shadow:
        out += ["## Shadow candidates", "", md_table(*_shadow_rows(shadow)), ""]
    attacks = _attack_line(result)
    if attacks:
        out += ["## Attack patterns", "", attacks, ""]
    if result.notes:
        out += ["## Notes", "", *(f"- {n}" for n in result.notes), ""]
    return "\n".join(out)


def write_monitor_review(
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
    html_path.write_text(monitor_review_html(result, gap=gap, shadow=shadow), encoding="utf-8")
    md_path.write_text(monitor_review_markdown(result, gap=gap, shadow=shadow), encoding="utf-8")
    return html_path, md_path
