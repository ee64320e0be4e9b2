"""The support-answers demo's self-contained HTML report and Markdown summary, rendered from
the dict :meth:`tunegate.demo.SupportDemoResult.to_dict` gives (``result.json``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tunegate.report._html import Html, Section, badge, esc, page, table
from tunegate.report._markdown import md_table

__all__ = ["support_demo_html", "support_demo_markdown"]

_CSS = Html(
    "<style>.cite{background:#ddf4ff;border-radius:4px;padding:0 .25rem;font-weight:600}"
    ".cite.stale{background:#ffebe9;color:#cf222e}.ans{text-align:left;max-width:28rem}"
    ".better{color:#1a7f37;font-weight:600}.worse{color:#cf222e;font-weight:600}</style>"
)


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _is_latency(row: Mapping[str, Any]) -> bool:
    return row.get("name") == "latency_p50_ms"


def _value(row: Mapping[str, Any], x: Any) -> str:
    return _num(x, 0) if _is_latency(row) else _num(x)


def _change(row: Mapping[str, Any], cell: Mapping[str, Any] | None) -> str:
    """``+0.125 [+0.000, +0.250]``; latency as a relative change in percent."""
    if not cell or cell.get("change") is None:
        return "n/a"
    pct = bool(cell.get("relative"))

    def f(x: Any) -> str:
        if x is None:
            return "n/a"
        return f"{x * 100:+.0f}%" if pct else f"{x:+.3f}"

    return f"{f(cell['change'])} [{f(cell.get('ci_low'))}, {f(cell.get('ci_high'))}]"


def _direction_word(row: Mapping[str, Any], cell: Mapping[str, Any] | None) -> str:
    """``better`` / ``worse`` when the whole interval is on one side of 0, else ``""``."""
    if not cell or cell.get("ci_low") is None or cell.get("ci_high") is None:
        return ""
    lo, hi = float(cell["ci_low"]), float(cell["ci_high"])
    up = row.get("direction") == "higher"
    if lo > 0:
        return "better" if up else "worse"
    if hi < 0:
        return "worse" if up else "better"
    return ""


def _table_rows(result: Mapping[str, Any], html: bool) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for row in result.get("table", []):
        line: list[Any] = [
            row["metric"] + (" ↓" if row.get("direction") == "lower" else " ↑"),
            _value(row, row.get("baseline")),
        ]
        for side in ("finetune", "fix"):
            cell = row.get(side)
            value = _value(row, cell.get("value")) if cell else "n/a"
            change = _change(row, cell)
            word = _direction_word(row, cell)
            if html and word:
                line += [value, Html(f'<span class="{word}">{esc(change)}</span>')]
            else:
                line += [value, change + (f" ({word})" if word and not html else "")]
        rows.append(line)
    return rows


def _headers(result: Mapping[str, Any]) -> list[str]:
    fix = result.get("scenario", {}).get("table_fix") or "fix"
    return [
        "metric",
        "baseline",
        "fine-tune",
        "fine-tune − baseline [CI]",
        f"fix ({fix})",
        "fix − baseline [CI]",
    ]


def _verdict_rows(verdict: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [
            r["rule"],
            badge(r["outcome"]),
            _num(r.get("baseline")),
            _num(r.get("candidate")),
            "n/a"
            if r.get("difference") is None
            else f"{r['difference']:+.3f} [{_num(r.get('ci_low'))}, {_num(r.get('ci_high'))}]",
            r.get("message", ""),
        ]
        for r in verdict.get("rules", [])
    ]


_MARKER = re.compile(r"\[([A-Za-z0-9_.:/-]+)\]")


def _answer_html(answer: Mapping[str, Any] | None) -> Html:
    """The answer with its ``[doc id]`` markers highlighted, then its cited versions (a stale
    one in red)."""
    if not answer:
        return Html("n/a")
    stale = {c["id"] for c in answer.get("cited", []) if c.get("stale")}
    text = str(answer.get("text") or "")
    parts: list[str] = []
    last = 0
    for m in _MARKER.finditer(text):
        parts.append(esc(text[last : m.start()]))
        cls = "cite stale" if m.group(1) in stale else "cite"
        parts.append(f'<span class="{cls}">{esc(m.group(0))}</span>')
        last = m.end()
    parts.append(esc(text[last:]))
    cites = []
    for c in answer.get("cited", []):
        cls = "cite stale" if c.get("stale") else "cite"
        label = (
            f"{c['id']}@{c['version']}" if c.get("version") else f"{c['id']} (not a document shown)"
        )
        if c.get("stale"):
            label += f" (superseded by {c.get('current_version') or 'a newer version'})"
        cites.append(f'<span class="{cls}">{esc(label)}</span>')
    verdict = "correct" if answer.get("correct") else "wrong"
    facts = (
        f"{answer.get('n_unsupported', 0)} unsupported, {answer.get('n_stale', 0)} stale of "
        f"{answer.get('n_claims', 0)} claims"
    )
    tail = "abstained" if answer.get("abstained") else facts
    cited = " ".join(cites) if cites else "no citation"
    return Html(
        f'<div class="ans">{"".join(parts)}<br><small>cites: {cited} · {esc(verdict)} · '
        f"{esc(tail)}</small></div>"
    )


def _examples_html(examples: Sequence[Mapping[str, Any]]) -> Html:
    rows = []
    for e in examples:
        gold = ", ".join(f"{g['id']}@{g.get('version') or '?'}" for g in e.get("gold", []))
        question = esc(e["question"])
        ref = (
            esc(e.get("reference") or "")
            if e.get("answerable", True)
            else esc("(not in the knowledge base: abstain)")
        )
        q = Html(
            f'<div class="ans"><b>{question}</b><br><small>reference: {ref}'
            f"{'<br>gold: ' + esc(gold) if gold else ''}</small></div>"
        )
        rows.append(
            [
                q,
                _answer_html(e.get("baseline")),
                _answer_html(e.get("finetune")),
                _answer_html(e.get("fix")),
            ]
        )
    return table(["question", "baseline", "fine-tune", "fix"], rows)


def _decision(result: Mapping[str, Any]) -> tuple[str, str]:
    ft = result.get("verdicts", {}).get("finetune", {})
    promoted = result.get("promoted", {})
    failed = ", ".join(ft.get("failed_rules") or []) or "none failed"
    ft_line = (
        f"The fine-tune's verdict is {str(ft.get('outcome', 'n/a')).upper()} "
        f"(failed rules: {failed}); "
        + ("it was promoted." if ft.get("promoted") else "the registry refused its promotion.")
    )
    return ft_line, str(promoted.get("message", ""))


def support_demo_html(result: Mapping[str, Any]) -> str:
    """The report: decision, the before/after table, the fine-tune's verdict, the cheap fixes,
    triage, example answers with their citations, monitoring and step timings. Offline: inline
    CSS, no scripts."""
    scn = result.get("scenario", {})
    ft = result.get("verdicts", {}).get("finetune", {})
    fixes = result.get("verdicts", {}).get("fixes", [])
    promoted = result.get("promoted", {})
    ft_line, promo_line = _decision(result)
    outcome = "pass" if promoted.get("version") else "fail"
    decision = Html(
        f'{_CSS}<div class="banner {outcome}"><p class="headline">{badge(ft.get("outcome", "n/a"))}'
        f" {esc(ft_line)}</p><p>{esc(promo_line)}</p>"
        f"<p>Gate {'open' if ft.get('gate_open') else 'closed'} when the fine-tune was trained "
        "(trained anyway, recorded): "
        + esc(
            "; ".join(f"({c['number']}) {c['name']}" for c in ft.get("gate_closed_conditions", []))
        )
        + "</p></div>"
    )
    table_html = table(
        _headers(result),
        _table_rows(result, html=True),
        caption="Paired changes against the baseline on the same frozen suite, with their "
        "intervals (↓ lower is better, ↑ higher is better; latency: relative change of the "
        "median per-example ratio). Green/red: the whole interval on one side of 0.",
    )
    ft_html = Html(
        f"<p>LoRA on {esc(ft.get('training_examples'))} reviewed historical answers, "
        f"{esc(ft.get('epochs'))} epoch(s), loss {esc(_num(ft.get('loss_first')))} → "
        f"{esc(_num(ft.get('loss_last')))}, candidate <code>{esc(ft.get('candidate'))}</code>."
        f"</p>"
        + table(
            ["rule", "outcome", "baseline", "candidate", "tested [CI]", "message"],
            _verdict_rows(ft),
        )
        + (f"<p>Refusal: {esc(ft['refusal'])}</p>" if ft.get("refusal") else "")
    )
    fix_rows = [
        [
            f.get("name"),
            badge(str(f.get("outcome"))),
            ", ".join(f.get("failed_rules") or []) or "—",
            _num(f.get("fixed")),
            _num(f.get("broken")),
            "yes" if f.get("promoted") else "no",
            f.get("description", ""),
        ]
        for f in fixes
    ]
    fixes_html = table(
        ["fix", "verdict", "failed rules", "fixed", "broken", "promoted", "what it changes"],
        fix_rows,
        caption="Each fix is its own Attempt against the baseline, in the framework's order.",
    )
    fix_rules = "".join(
        f"<h3>{esc(f['name'])}</h3>"
        + table(
            ["rule", "outcome", "baseline", "candidate", "tested [CI]", "message"], _verdict_rows(f)
        )
        for f in fixes
        if f.get("rules")
    )
    tri = result.get("triage", {})
    rec = tri.get("recommendation", {})
    tri_html = Html(
        table(
            ["category", "failures", "share"],
            [
                [k, v, f"{tri.get('shares', {}).get(k, 0.0):.0%}"]
                for k, v in sorted(tri.get("counts", {}).items(), key=lambda kv: -kv[1])
            ],
            caption=f"{tri.get('total', 0)} failures of {tri.get('examples', 0)} examples "
            "(baseline run)",
        )
        + f"<p><b>Recommendation: {esc(rec.get('action', 'n/a'))}</b></p><ul>"
        + "".join(f"<li>{esc(r)}</li>" for r in rec.get("reasons", []))
        + "</ul>"
    )
    mon = result.get("monitoring", {})
    mon_html = Html(
        table(
            [
                "month",
                "outputs",
                "citation rate",
                "unsupported rate",
                "lagging citations",
                "escalation rate",
                "KB change rate",
            ],
            [
                [
                    m.get("month"),
                    m.get("n_outputs"),
                    _num(m.get("citation_rate")),
                    _num(m.get("unsupported_rate")),
                    _num(m.get("lagging_share")),
                    _num(m.get("escalation_rate")),
                    _num(m.get("kb_change_rate")),
                ]
                for m in mon.get("months", [])
            ],
        )
        + f"<p>Knowledge-base change rate: {esc(_num(mon.get('kb_change_rate')))} a month "
        f"(by construction {esc(_num(mon.get('true_change_rate')))}).</p>"
        f"<p><b>{esc(mon.get('recommendation', ''))}</b></p>"
        + (
            "<p>Triggers fired: "
            + esc(", ".join(f"{r.get('name')} ({r.get('window')})" for r in mon["fired"]))
            + "</p>"
            if mon.get("fired")
            else "<p>No rollback trigger fired.</p>"
        )
    )
    timings = result.get("timings", {})
    scn_html = table(
        ["what", "value"],
        [
            [
                "knowledge-base documents (versions)",
                f"{scn.get('document_ids')} ({scn.get('documents')})",
            ],
            ["months simulated", scn.get("months")],
            ["questions asked at", scn.get("eval_at")],
            ["suite", f"{scn.get('suite_name')} {scn.get('suite_slices')}"],
            ["historical reviewed answers", scn.get("history")],
            ["model", scn.get("model")],
            [
                "baseline retrieval",
                "every version (freshness off)"
                if not (scn.get("baseline_config") or {}).get("freshness", True)
                else "versions in force",
            ],
        ],
    )
    sections = [
        Section("Decision", decision, "decision"),
        Section("Before and after: the fine-tune and the fix", table_html, "table"),
        Section("The tempting fine-tune", ft_html, "finetune"),
        Section("The cheap fixes", Html(fixes_html + fix_rules), "fixes"),
        Section("Triage of the baseline's failures", tri_html, "triage"),
        Section(
            "Example answers, citations highlighted",
            _examples_html(result.get("examples", [])),
            "examples",
        ),
        Section("Monitoring the following months", mon_html, "monitoring"),
        Section("Scenario", scn_html, "scenario"),
        Section(
            "Step timings",
            table(["step", "seconds"], [[k, _num(v, 1)] for k, v in timings.items()]),
            "timings",
        ),
    ]
    return page(
        "tunegate demo: support answers",
        sections,
        subtitle="A fine-tune on historical answers sounds like the house and is worse; the "
        "cheap fixes are tried first. Every figure is measured on the local model.",
    )


def support_demo_markdown(result: Mapping[str, Any]) -> str:
    """The summary: the decision, the before/after table, the fixes and the timings."""
    ft = result.get("verdicts", {}).get("finetune", {})
    fixes = result.get("verdicts", {}).get("fixes", [])
    ft_line, promo_line = _decision(result)
    mon = result.get("monitoring", {})
    lines = [
        "# tunegate demo: support answers",
        "",
        f"**{ft_line}** {promo_line}",
        "",
        f"Gate {'open' if ft.get('gate_open') else 'closed'} when the fine-tune was trained "
        "(trained anyway, recorded).",
        "",
        md_table(_headers(result), _table_rows(result, html=False)),
        "",
        md_table(
            ["fix", "verdict", "failed rules", "promoted"],
            [
                [
                    f["name"],
                    f["outcome"],
                    ", ".join(f.get("failed_rules") or []) or "—",
                    "yes" if f.get("promoted") else "no",
                ]
                for f in fixes
            ],
        ),
        "",
        f"Monitoring: {mon.get('recommendation', '')}",
        "",
        "Timings: "
        + ", ".join(f"{k} {_num(v, 1)} s" for k, v in result.get("timings", {}).items()),
        "",
    ]
    return "\n".join(lines)
