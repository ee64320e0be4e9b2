"""The evaluation report: a single-run report and a baseline-vs-candidate report (HTML), and
the verdict summary (Markdown for a pull-request comment)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tunegate.evaluate import LATENCY_NOT_JUDGED, Comparison, confidence_label
from tunegate.metrics import Interval
from tunegate.records import EvalRun, EvalSuite, RuleResult, Verdict
from tunegate.report._html import Html, Section, badge, esc, page, table
from tunegate.report._markdown import md_table
from tunegate.report._svg import bar_chart, confusion_heatmap, reliability_diagram
from tunegate.report._words import change_phrase

__all__ = [
    "MAX_MATRIX_CLASSES",
    "comparison_html",
    "confusion_view",
    "fmt_interval",
    "robustness_rows",
    "run_html",
    "verdict_markdown",
    "verdict_section",
]

MAX_MATRIX_CLASSES = 30
"""Above this many classes a confusion matrix is unreadable (and megabytes of SVG): reports
show the top confusions as a table and the per-class charts keep the worst classes."""
_TOP_CONFUSIONS = 25
_TOP_CLASSES = 30

_SCALARS = (
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("expected_calibration_error", "ECE"),
    ("brier_score_loss", "Brier"),
    ("selective_accuracy", "selective acc."),
    ("coverage", "coverage"),
)


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _num(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def fmt_interval(d: Mapping[str, Any] | Interval | None) -> str:
    """``0.812 [0.790, 0.833]`` (or ``n/a``)."""
    if d is None:
        return "n/a"
    if isinstance(d, Interval):
        d = d.to_dict()
    est = d.get("estimate")
    if est is None:
        return "n/a"
    if d.get("low") is None:
        return _num(est)
    return f"{_num(est)} [{_num(d['low'])}, {_num(d['high'])}]"


def confusion_view(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], *, title: str = "Confusion matrix"
) -> Html:
    """The confusion matrix as a heatmap; above :data:`MAX_MATRIX_CLASSES` classes, the
    largest off-diagonal cells as a table (true, predicted, count, share of the true class)."""
    if len(labels) <= MAX_MATRIX_CLASSES:
        return confusion_heatmap(matrix, labels, title=title)
    cells: list[tuple[int, str, str, float]] = []
    for i, row in enumerate(matrix):
        total = sum(row)
        cells.extend(
            (count, labels[i], labels[j], count / total)
            for j, count in enumerate(row)
            if j != i and count
        )
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    errors = sum(c[0] for c in cells)
    shown = cells[:_TOP_CONFUSIONS]
    caption = (
        f"{title}: the {len(shown)} largest of {len(cells)} confused pairs "
        f"({sum(c[0] for c in shown)} of {errors} errors; {len(labels)} classes)"
    )
    return table(
        ["true", "predicted", "count", "share of true class"],
        [(t, pr, n, f"{share:.1%}") for n, t, pr, share in shown],
        caption=caption,
    )


def _worst_classes(labels: Sequence[str], values: Sequence[float]) -> tuple[list[int], str]:
    """Class indices for a per-class chart: all, or the worst :data:`_TOP_CLASSES` by
    ``values`` (nan last) when there are more than :data:`MAX_MATRIX_CLASSES` classes."""
    order = list(range(len(labels)))
    if len(labels) <= MAX_MATRIX_CLASSES:
        return order, ""
    order.sort(key=lambda i: (math.isnan(values[i]), 0.0 if math.isnan(values[i]) else -values[i]))
    return sorted(order[:_TOP_CLASSES]), f" - the {_TOP_CLASSES} worst of {len(labels)} classes"


def _change(r: RuleResult) -> str:
    """candidate - baseline in words. A rule's ``difference`` is the figure it tests (a harm:
    an accuracy *drop*, an FNR rise), so for a drop its sign is the opposite of the change."""
    if r.baseline is not None and r.candidate is not None:
        return change_phrase(r.candidate - r.baseline)
    return change_phrase(r.difference)


def _tested(r: RuleResult) -> str:
    """The rule's tested figure with its interval: ``+0.012 [-0.004, 0.031]``."""
    if r.difference is None:
        return "n/a"
    ci = "" if r.ci_low is None else f" [{_num(r.ci_low)}, {_num(r.ci_high)}]"
    return f"{r.difference:+.3f}{ci}"


def _latency_judged(verdict: Verdict) -> bool:
    """Latency is judged only from a paired measurement, which gives a ``latency_p50`` rule."""
    return any(r.rule == "latency_p50" for r in verdict.rules)


def verdict_section(verdict: Verdict) -> Section:
    """The verdict badge and one row per rule with its figures."""
    rows = [
        (
            r.rule,
            badge(r.outcome.value),
            _num(r.baseline),
            _num(r.candidate),
            _change(r),
            _tested(r),
            _num(r.threshold),
            r.message,
        )
        for r in verdict.rules
    ]
    body = Html(
        f"<p>{badge(verdict.outcome.value)} baseline <code>{esc(verdict.baseline_run)}"
        f"</code> vs candidate <code>{esc(verdict.candidate_run)}</code> (exit code "
        f"{verdict.exit_code})</p>"
        + table(
            [
                "rule",
                "outcome",
                "baseline",
                "candidate",
                "candidate - baseline",
                "tested figure (CI)",
                "threshold",
                "reason",
            ],
            rows,
        )
        + ("" if _latency_judged(verdict) else f"<p><em>{esc(LATENCY_NOT_JUDGED)}</em></p>")
    )
    return Section("Verdict", body, anchor="verdict")


_ROBUSTNESS_FIGURES = {
    "flip_rate": "flip rate (lower is better)",
    "robust_accuracy": "robust accuracy",
    "attack_success": "attack success rate (lower is better)",
}


def _robustness_name(key: str) -> tuple[str, str]:
    """``"flip_rate:typos"`` -> ``("flip rate (lower is better)", "typos")``; the pooled
    label-preserving perturbations read ``"all label-preserving"``."""
    metric, _, subset = key.partition(":")
    which = "all label-preserving" if subset == "invariance" else subset.replace("_", " ")
    return _ROBUSTNESS_FIGURES.get(metric, metric), which


def robustness_rows(summary: Mapping[str, Mapping[str, Any]]) -> list[list[object]]:
    """One run's robustness figures (``EvalRun.metrics["robustness"]["summary"]``) as rows:
    figure, perturbation, suite examples perturbed, estimate [CI]."""
    return [
        [*_robustness_name(key), fig.get("sources", fig.get("n")), fmt_interval(fig)]
        for key, fig in summary.items()
    ]


def _robustness_section(run: EvalRun) -> list[Section]:
    rob = run.metrics.get("robustness")
    if not rob or not rob.get("summary"):
        return []
    return [
        Section(
            "Robustness slice (perturbed core examples; bootstrap by source example)",
            table(
                ["figure", "perturbation", "suite examples", "estimate [CI]"],
                robustness_rows(rob["summary"]),
                caption=f"slice {str(rob['slice_hash'])[:12]}, seed {rob['seed']}, "
                f"{rob['n']} perturbed examples",
            ),
        )
    ]


_ROBUSTNESS_HEADERS = [
    "figure",
    "perturbation",
    "suite examples",
    "baseline",
    "candidate",
    "candidate - baseline",
]
"""The columns of the robustness comparison, in HTML and Markdown alike."""


def _robustness_comparison_rows(comparison: Comparison) -> list[list[object]]:
    rob = comparison.robustness
    if rob is None:
        return []
    return [
        [
            *_robustness_name(key),
            rob.sizes[key],
            fmt_interval(res.a),
            fmt_interval(res.b),
            fmt_interval(res.diff),
        ]
        for key, res in rob.figures.items()
    ]


def _curve(run: EvalRun) -> tuple[list[float | None], list[float | None], list[int]]:
    c = run.metrics["reliability"]["uniform"]
    return c["confidence"], c["accuracy"], c["count"]


def _slice_rows(run: EvalRun) -> list[list[object]]:
    m = run.metrics
    subsets = [("overall", m["overall"])]
    subsets += [(name, m["slices"][name]) for name in ("core", "edge", "preservation")]
    subsets += [(f"#{name}", tbl) for name, tbl in m["named_slices"].items()]
    return [
        [name, tbl["n"], *(fmt_interval(tbl.get(key)) for key, _ in _SCALARS)]
        for name, tbl in subsets
    ]


def run_html(run: EvalRun, suite: EvalSuite) -> str:
    """A standalone report of one EvalRun."""
    labels = run.labels
    per_class = run.metrics["overall"]["per_class"]
    fnr_all = [_nan(per_class[name]["fnr"]["estimate"]) for name in labels]
    keep, which = _worst_classes(labels, fnr_all)
    fnr = [fnr_all[i] for i in keep]
    err = [(per_class[labels[i]]["fnr"]["low"], per_class[labels[i]]["fnr"]["high"]) for i in keep]
    level = confidence_label(run.metrics.get("bootstrap", {}).get("confidence", 0.95))
    sections = [
        Section(
            f"Metrics by slice ({level} bootstrap CI)",
            table(["slice", "n", *(h for _, h in _SCALARS)], _slice_rows(run)),
        ),
        Section(
            "Calibration and errors",
            Html(
                '<div class="figs">'
                + reliability_diagram({run.model_version: _curve(run)})
                + confusion_view(run.metrics["confusion_matrix"], labels)
                + "</div>"
            ),
        ),
        Section(
            f"False-negative rate per class{which}",
            bar_chart(
                [labels[i] for i in keep],
                {run.model_version: fnr},
                errors={run.model_version: err},
                title="FNR (lower is better)",
                max_value=1.0,
            ),
        ),
        *_robustness_section(run),
    ]
    return page(
        f"Evaluation: {run.model_version} on {suite.name}",
        sections,
        subtitle=f"run {run.id} - suite {suite.hash[:12]} - {len(run.example_ids)} "
        f"examples - seed {run.seed}",
    )


def comparison_html(
    comparison: Comparison, baseline: EvalRun, candidate: EvalRun, suite: EvalSuite
) -> str:
    """A standalone baseline-vs-candidate report: verdict, per-slice table with CIs,
    reliability diagrams of both models, confusion matrices, per-class FNR bars."""
    boot = comparison.bootstrap
    assert boot.b is not None and boot.diff is not None
    labels = comparison.labels
    rows = []
    for subset, size in comparison.subset_sizes.items():
        if size == 0:
            continue
        for key, name in _SCALARS[:4]:
            d = boot.diff[subset][key]
            rows.append(
                [
                    subset.replace("slice:", "").replace("tag:", "#"),
                    size,
                    name,
                    fmt_interval(boot.a[subset][key]),
                    fmt_interval(boot.b[subset][key]),
                    fmt_interval(d),
                    "within noise" if d.within_noise else "beyond noise",
                ]
            )
    # many classes: the classes whose FNR rose most (the ones a reviewer must look at)
    rise = [_nan(boot.diff["overall"][f"fnr:{c}"].estimate) for c in range(len(labels))]
    keep, which = _worst_classes(labels, rise)
    fnr_a = [boot.a["overall"][f"fnr:{c}"] for c in keep]
    fnr_b = [boot.b["overall"][f"fnr:{c}"] for c in keep]
    level = confidence_label(comparison.confidence)
    mc_rows = [
        [name, r.only_a, r.only_b, f"{r.p_value:.3g}"] for name, r in comparison.mcnemar.items()
    ]
    sections = [
        verdict_section(comparison.verdict),
        Section(
            f"Metrics by slice: baseline, candidate, difference ({level} paired bootstrap CI)",
            table(
                ["slice", "n", "metric", "baseline", "candidate", "candidate - baseline", ""], rows
            ),
        ),
        *(
            [
                Section(
                    f"Robustness slice: baseline, candidate, difference ({level} paired "
                    f"bootstrap CI, resampling source examples)",
                    table(_ROBUSTNESS_HEADERS, _robustness_comparison_rows(comparison)),
                )
            ]
            if comparison.robustness is not None
            else []
        ),
        Section(
            "McNemar exact test (accuracy)",
            table(["subset", "only baseline right", "only candidate right", "p"], mc_rows),
        ),
        Section(
            "Calibration",
            reliability_diagram(
                {
                    f"baseline {baseline.model_version}": _curve(baseline),
                    f"candidate {candidate.model_version}": _curve(candidate),
                }
            ),
        ),
        Section(
            "Confusion matrices",
            Html(
                '<div class="figs">'
                + confusion_view(
                    baseline.metrics["confusion_matrix"],
                    labels,
                    title=f"baseline {baseline.model_version}",
                )
                + confusion_view(
                    candidate.metrics["confusion_matrix"],
                    labels,
                    title=f"candidate {candidate.model_version}",
                )
                + "</div>"
            ),
        ),
        Section(
            f"False-negative rate per class{which}",
            bar_chart(
                [labels[c] for c in keep],
                {"baseline": [i.estimate for i in fnr_a], "candidate": [i.estimate for i in fnr_b]},
                errors={
                    "baseline": [(i.low, i.high) for i in fnr_a],
                    "candidate": [(i.low, i.high) for i in fnr_b],
                },
                title=f"FNR with {level} CI (lower is better)",
                max_value=1.0,
            ),
        ),
    ]
    return page(
        f"Verdict: {comparison.verdict.outcome.value}",
        sections,
        subtitle=f"suite {suite.name} ({suite.hash[:12]}), {len(suite.examples)} "
        f"examples, {boot.n_resamples} paired bootstrap resamples",
    )


def verdict_markdown(verdict: Verdict, comparison: Comparison | None = None) -> str:
    """A Markdown summary for a pull-request comment."""
    icon = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}[verdict.outcome.value]
    lines = [
        f"### {icon} tunegate verdict: **{verdict.outcome.value.upper()}**",
        "",
        f"baseline `{verdict.baseline_run}` vs candidate `{verdict.candidate_run}` "
        f"(exit code {verdict.exit_code})",
        "",
        md_table(
            [
                "rule",
                "outcome",
                "baseline",
                "candidate",
                "candidate - baseline",
                "tested figure (CI)",
                "reason",
            ],
            [
                [
                    r.rule,
                    r.outcome.value,
                    _num(r.baseline),
                    _num(r.candidate),
                    _change(r),
                    _tested(r),
                    r.message,
                ]
                for r in verdict.rules
            ],
        ),
    ]
    if not _latency_judged(verdict):
        lines += ["", f"_{LATENCY_NOT_JUDGED}_"]
    if comparison is not None:
        boot = comparison.bootstrap
        assert boot.diff is not None
        rows = [
            [
                s.replace("slice:", "").replace("tag:", "#"),
                n,
                fmt_interval(boot.diff[s]["accuracy"]),
                "within noise" if boot.diff[s]["accuracy"].within_noise else "beyond noise",
            ]
            for s, n in comparison.subset_sizes.items()
            if n
        ]
        lines += [
            "",
            "<details><summary>accuracy difference by slice</summary>",
            "",
            md_table(
                [
                    "slice",
                    "n",
                    f"candidate - baseline [{confidence_label(comparison.confidence)} CI]",
                    "",
                ],
                rows,
            ),
            "",
            "</details>",
        ]
        if comparison.robustness is not None:
            lines += [
                "",
                "<details><summary>robustness slice</summary>",
                "",
                md_table(_ROBUSTNESS_HEADERS, _robustness_comparison_rows(comparison)),
                "",
                "</details>",
            ]
    return "\n".join(lines) + "\n"
