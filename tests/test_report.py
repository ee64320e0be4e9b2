"""The report toolkit and the evaluation reports: self-contained, escaped, well-formed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import markupsafe
import pytest

from test_evaluate import BASE_WRONG, NON_SEC_WRONG, _run, _suite
from tunegate.config import Workflow
from tunegate.evaluate import compare_runs
from tunegate.report import (
    Section,
    bar_chart,
    comparison_html,
    confusion_heatmap,
    esc,
    line_chart,
    page,
    reliability_diagram,
    table,
    verdict_markdown,
)
from tunegate.report import md_table as mdt

EVIL = '<script>alert("x")</script>&'


def _no_external(html: str) -> None:
    assert "<script" not in html.lower()
    urls = re.findall(r"(?:src|href)\s*=\s*\"([^\"]+)\"", html)
    assert urls == [] or all(u.startswith("#") for u in urls)
    # the only http(s) text allowed is the SVG namespace
    assert set(re.findall(r"https?://[^\s\"']+", html)) <= {"http://www.w3.org/2000/svg"}


def test_escaping_everywhere() -> None:
    html = page(EVIL, [Section(EVIL, table([EVIL], [[EVIL]]))], subtitle=EVIL)
    assert EVIL not in html and "&lt;script&gt;" in html
    _no_external(html)
    assert esc(esc("<")) == "&lt;"  # escaping is idempotent on trusted markup


def test_escaping_is_markupsafe() -> None:
    assert esc(EVIL) == markupsafe.escape(EVIL)
    assert esc('it\'s "x"') == "it&#39;s &#34;x&#34;"
    assert esc(markupsafe.Markup("<b>ok</b>")) == "<b>ok</b>"  # markupsafe's markup is trusted
    assert markupsafe.escape(table(["a"], [])) == table(["a"], [])  # and ours is trusted by it
    assert esc(3) == "3" and esc(None) == "None"


def test_line_chart_threshold_and_percent_axis() -> None:
    svg = line_chart(["w1", "w2"], {"rate": [0.1, 0.2]}, threshold=0.5, percent=True)
    assert 'stroke-dasharray="4 3"><title>threshold 0.5</title>' in svg
    assert ">50%</text>" in svg and ">10%</text>" in svg  # the range includes the threshold
    plain = line_chart(["w1", "w2"], {"rate": [0.1, 0.2]})
    assert "threshold" not in plain and ">0.2</text>" in plain


@pytest.mark.parametrize(
    "svg",
    [
        reliability_diagram({EVIL: ([0.1, None, 0.9], [0.2, None, 0.7], [5, 0, 10])}),
        bar_chart(
            ["a", EVIL], {"m": [0.5, None]}, errors={"m": [(0.4, 0.6), (None, None)]}, title=EVIL
        ),
        line_chart(["w1", "w2", "w3"], {EVIL: [1.0, None, 2.0]}, title=EVIL),
        line_chart(["w1", "w2"], {EVIL: [0.1, 0.2]}, title=EVIL, threshold=0.5, percent=True),
        confusion_heatmap([[3, 1], [0, 4]], ["a", EVIL]),
    ],
)
def test_svg_charts_are_well_formed(svg: str) -> None:
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert EVIL not in svg


def test_comparison_report_and_markdown(workflow: Workflow) -> None:
    suite = _suite(workflow)
    base = _run(suite, workflow, BASE_WRONG)
    cand = _run(
        suite,
        workflow,
        (BASE_WRONG - set(NON_SEC_WRONG[:10])) | {f"preservation{i}" for i in range(25)},
    )
    # the report reads the runs' metrics (reliability, confusion): compute them like run_eval
    import numpy as np

    from tunegate.evaluate._run import evaluation_metrics

    runs = []
    for r in (base, cand):
        m, _ = evaluation_metrics(
            np.array(r.y_true),
            np.array(r.proba),
            r.latency_ms,
            suite,
            r.example_ids,
            r.labels,
            workflow,
            seed=0,
        )
        runs.append(r.model_copy(update={"metrics": m}))
    cmp = compare_runs(runs[0], runs[1], suite, workflow)
    html = comparison_html(cmp, runs[0], runs[1], suite)
    _no_external(html)
    for needle in (
        "Verdict",
        "FAIL",
        "preservation",
        "Reliability",
        "Confusion",
        "False-negative rate per class",
        "McNemar",
        "within noise",
    ):
        assert needle.lower() in html.lower(), needle
    assert html.count("<svg") >= 4
    md = verdict_markdown(cmp.verdict, cmp)
    assert md.startswith("### ❌ tunegate verdict: **FAIL**")
    assert "| preservation | fail |" in md


def test_md_table_escapes_pipes() -> None:
    assert mdt(["a|b"], [["x\ny"]]) == "| a\\|b |\n|---|\n| x y |"


def test_demo_key_table_prints_the_configured_confidence_level() -> None:
    from tunegate.demo import KeyRow, render_key_table

    row = KeyRow("overall accuracy", 0.7, 0.9, 0.2, 0.1, 0.3, "higher", confidence=0.9)
    text = render_key_table([row])
    assert "difference (90% CI)" in text
    assert "95%" not in text


def test_reports_stay_readable_with_150_classes(workflow: Workflow) -> None:
    """Above 30 classes the confusion matrix becomes a top-confusions table and the FNR chart
    keeps the worst classes: at 150 classes the reports were 3.7 and 7.4 MB with a
    4,050 x 4,080 px matrix."""
    import numpy as np

    from tunegate.config import LabelSpec
    from tunegate.evaluate._run import evaluation_metrics
    from tunegate.records import EvalRun, EvalSuite, SuiteExample, SuiteSlice
    from tunegate.report import MAX_MATRIX_CLASSES, run_html

    names = [f"intent_{i:03d}" for i in range(150)]
    wf = workflow.model_copy(
        update={
            "labels": {n: LabelSpec(description=n.replace("_", " ")) for n in names},
            "routing": workflow.routing.model_copy(update={"escalate_classes": {}}),
            "regression": workflow.regression.model_copy(update={"n_bootstrap": 50}),
            "slices": {},
        }
    )
    slices = [SuiteSlice.CORE, SuiteSlice.EDGE, SuiteSlice.PRESERVATION]
    suite = EvalSuite(
        name="many",
        examples=[
            SuiteExample(id=f"e{i}", text=f"text {i}", label=names[i % 150], slice=slices[i % 3])
            for i in range(600)
        ],
    ).frozen()
    rng = np.random.default_rng(0)
    y = np.array([names.index(e.label) for e in suite.examples])
    runs = []
    for flip in (0.3, 0.2):
        pred = np.where(rng.random(len(y)) < flip, (y + rng.integers(1, 4, len(y))) % 150, y)
        proba = np.full((len(y), 150), 0.2 / 149)
        proba[np.arange(len(y)), pred] = 0.8
        ids = [e.id for e in suite.examples]
        metrics, _ = evaluation_metrics(y, proba, [1.0] * len(y), suite, ids, names, wf, seed=0)
        runs.append(
            EvalRun(
                model_version=f"m{flip}",
                suite_hash=suite.hash,
                labels=names,
                metrics=metrics,
                example_ids=ids,
                y_true=y.tolist(),
                proba=proba.tolist(),
            )
        )
    single = run_html(runs[0], suite)
    both = comparison_html(compare_runs(runs[0], runs[1], suite, wf), runs[0], runs[1], suite)
    for html in (single, both):
        assert len(html) < 600_000, len(html)
        assert "true \u2193 / predicted \u2192" not in html  # no heatmap
        assert "largest of" in html and "confused pairs" in html
        assert "the 30 worst of 150 classes" in html
    assert MAX_MATRIX_CLASSES == 30


def test_verdict_tables_show_a_preservation_gain_as_a_rise() -> None:
    """`compare` showed -0.170 under "difference" when preservation accuracy rose 0.670 ->
    0.840: the rule's tested figure is a drop. The change column is candidate - baseline."""
    from tunegate.records import RuleResult, Verdict, VerdictOutcome
    from tunegate.report import verdict_section

    rule = RuleResult(
        rule="preservation",
        outcome=VerdictOutcome.PASS,
        baseline=0.670,
        candidate=0.840,
        difference=-0.170,
        ci_low=-0.230,
        ci_high=-0.110,
        threshold=0.02,
        message="preservation accuracy rose",
    )
    verdict = Verdict(
        outcome=VerdictOutcome.PASS, baseline_run="a", candidate_run="b", rules=[rule]
    )
    html = str(verdict_section(verdict).body)
    md = verdict_markdown(verdict)
    for text in (html, md):
        assert "rose by 0.170" in text and "fell by" not in text
        assert "-0.170 [-0.230, -0.110]" in text  # the tested drop, labelled as such


def test_demo_report_shows_a_contrastive_finding_as_counts() -> None:
    from tunegate.report._demo import _attribution_html

    finding = {
        "label": "security_incident",
        "kind": "contrast",
        "confirmed": True,
        "n_overrides": 220,
        "n_reference": 479,
        "method": "contrast",
        "tokens": [
            {
                "term": "approve",
                "kind": "word",
                "overrides_with": 56,
                "reference_with": 6,
                "log_odds": 2.4,
                "q_value": 1e-12,
            },
            {
                "term": "approve + locked",
                "kind": "pair",
                "overrides_with": 34,
                "reference_with": 2,
                "log_odds": 3.1,
                "q_value": 3e-9,
            },
        ],
    }
    html = str(_attribution_html([finding], []))
    assert "in overridden tickets" in html and "attribution to analyst" not in html
    assert html.index("approve + locked") < html.index("<td>approve</td>")  # pairs first
    assert "<td>34</td><td>2</td>" in html and "3e-09" in html
