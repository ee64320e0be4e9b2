"""The demo report for people: the decision first, every section as tables and charts (never a
dict or list repr), readable week axes, changes said as rose/fell. Built from a synthetic
:class:`DemoResult` shaped like a real run's (no demo run needed); the browser test opens it
offline in Debian's chromium and screenshots it."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _browser import CHROMIUM_FLAGS
from test_evaluate import BASE_WRONG, NON_SEC_WRONG, _run, _suite
from tunegate.config import Workflow
from tunegate.demo import DemoResult, key_table
from tunegate.demo._result import StepTiming, console_summary, gap_headline
from tunegate.evaluate import compare_runs
from tunegate.evaluate._run import evaluation_metrics
from tunegate.records import EvalRun, EvalSuite
from tunegate.report import (
    change_phrase,
    counts_phrase,
    demo_report_html,
    demo_summary_markdown,
    line_chart,
)

DUMP = re.compile(r"\{'|\[\{|\{\"|': ")
"""What a Python dict or list-of-dicts repr looks like in text."""

N_WEEKS = 52
WEEKS = [(date(2025, 1, 6) + timedelta(weeks=i)).isoformat() for i in range(N_WEEKS)]


def _label_issues() -> dict[str, Any]:
    """Shaped like ``LabelIssueReport.summary()``."""
    issues = [
        {
            "id": f"ex_{i:04d}",
            "text": f"my authenticator app keeps asking for a code and now I am locked out {i}",
            "given_label": "password_reset",
            "suggested_label": "account_unlock",
            "self_confidence": round(0.02 + 0.01 * i, 4),
        }
        for i in range(14)
    ]
    return {
        "n_examples": 1631,
        "n_flagged": len(issues),
        "flagged_share": round(len(issues) / 1631, 4),
        "oof_accuracy": 0.8712,
        "n_folds": 3,
        "flagged_per_given_label": {"password_reset": 14},
        "issues": issues,
    }


def _dataset() -> dict[str, Any]:
    """Shaped like the pipeline's ``dataset_info`` (step 7a)."""
    leak = [
        {
            "example_id": f"ex_l{i}",
            "suite": "service-desk",
            "suite_example_id": f"core{i}",
            "kind": "near" if i % 2 else "exact",
            "similarity": 0.97,
            "text": "vpn drops every ten minutes since the update",
        }
        for i in range(4)
    ]
    return {
        "hash": "ab" * 32,
        "manifest": {
            "n_examples": 1631,
            "n_new": 412,
            "n_replay": 1219,
            "replay_pool": 3050,
            "gathered": 3700,
            "rejected": 31,
            "per_class": {"account_unlock": 300, "password_reset": 280, "vpn_issue": 251},
            "per_source": {"override": 412, "historical": 1219},
            "per_slice": {"mfa_related": 190},
            "near_duplicate_threshold": 0.95,
            "dropped": {"label_issue": 14},
        },
        "targets": [
            {
                "name": "mfa_unlock",
                "label": "account_unlock",
                "slice": "mfa_related",
                "not_slice": None,
                "have": 120,
                "need": 50,
                "missing": 0,
                "ok": True,
                "message": "ok",
            }
        ],
        "leakage": {
            "excluded": 4,
            "exact": 2,
            "near": 2,
            "per_suite": {"service-desk": 4},
            "examples": leak,
        },
        "dedup": {
            "exact_removed": 3,
            "near_removed": 1,
            "label_conflicts": 1,
            "exact": [
                {
                    "removed": "ex_d1",
                    "kept": "ex_d0",
                    "label": "vpn_issue",
                    "kept_label": "vpn_issue",
                    "conflict": False,
                    "text": "vpn is down",
                }
            ],
            "near": [
                {
                    "removed": "ex_d3",
                    "kept": "ex_d2",
                    "label": "hardware",
                    "kept_label": "software_install",
                    "similarity": 0.96,
                    "conflict": True,
                    "text": "laptop will not boot",
                }
            ],
        },
    }


def _monitor(n: int, *, fired: bool) -> dict[str, Any]:
    periods = [
        {
            "period": WEEKS[i],
            "override_rate": 0.1 + 0.001 * i,
            "escalation_rate": 0.05,
            "clarify_rate": 0.08,
            "selective_accuracy": 0.9,
        }
        for i in range(n)
    ]
    out: dict[str, Any] = {
        "champion": "mv_champ",
        "baseline_source": "the champion's first weeks",
        "periods": periods,
        "triggers": {p["period"]: [] for p in periods},
        "fired": [],
        "alert": None,
    }
    if fired:
        out["fired"] = [
            {
                "window": WEEKS[n - 1],
                "trigger": "override_rate",
                "baseline": 0.12,
                "current": 0.19,
                "threshold": 0.01,
                "message": "override rate rose from 12.0% to 19.0% (p=0.001)",
            }
        ]
        out["alert"] = {
            "summary": "1 rollback trigger(s) fired for service-desk champion mv_cand",
            "rollback": {"from": "mv_cand", "to": "mv_champ"},
        }
        out["champion_after"] = "mv_champ"
    return out


def _runs(workflow: Workflow) -> tuple[EvalSuite, list[EvalRun]]:
    suite = _suite(workflow)
    runs = []
    for wrong in (BASE_WRONG, BASE_WRONG - set(NON_SEC_WRONG[:20])):
        r = _run(suite, workflow, wrong)
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
    return suite, runs


def demo_fixture(
    workflow: Workflow, out: Path, *, promoted: bool = True
) -> tuple[DemoResult, dict[str, Any]]:
    """A DemoResult as a real run fills it, and the keyword arguments of the renderer."""
    suite, (base, cand) = _runs(workflow)
    cmp = compare_runs(base, cand, suite, workflow)
    verdict = cmp.verdict.model_dump(mode="json")
    if not promoted:  # the same run, judged FAIL by one rule
        verdict["outcome"] = "fail"
        verdict["rules"][0] = {
            **verdict["rules"][0],
            "outcome": "fail",
            "message": "median latency rose by 31%",
        }
    demo = DemoResult(
        out_dir=out,
        champion_version="mv_champ",
        candidate_version="mv_cand",
        suite_hash=suite.hash,
        baseline_run=base.id,
        candidate_run=cand.id,
        trend={
            "counts": [2, 3, 3, 5, 8, 9, 12],
            "decision": {
                "weeks": 6,
                "passed": True,
                "test": {"p_decrease": 0.998, "slope": 1.5},
                "rise": {"p_increase": 0.002},
                "reasons": ["R2 overrides are stable or increasing"],
            },
        },
        recommendation={
            "action": "fine-tune",
            "reasons": ["missed signal dominates"],
            "shares": {"missed_signal": 0.62, "ambiguous": 0.2, "label_noise": 0.18},
            "total": 45,
        },
        findings=[
            {
                "label": "account_unlock",
                "confirmed": True,
                "n_overrides": 40,
                "n_reference": 400,
                "method": "occlusion",
                "tokens": [
                    {"term": "authenticator", "z": 4.2, "attr_analyst": 0.3, "attr_predicted": -0.1}
                ],
            }
        ],
        highlights=[],
        attempts=[
            {
                "id": "att_1",
                "kind": "instructions",
                "description": "mention MFA in the instructions",
                "outcome": "fail",
                "details": {"fixed_share": 0.12},
            }
        ],
        gate={
            "open": True,
            "message": "the gate is open: every condition holds",
            "conditions": [
                {"number": 1, "name": "trend", "passed": True, "summary": "rising", "next_step": ""}
            ],
        },
        dataset=_dataset(),
        label_issues=_label_issues(),
        sweep={},
        verdict=verdict,
        promoted=promoted,
        monitor=_monitor(N_WEEKS - 2, fired=False),
        shift=_monitor(N_WEEKS, fired=promoted),
        next_gap={
            "headline": "12 of 400 decisions still corrected",
            "n_decisions": 400,
            "n_overridden": 12,
            "by_reason": {"R2": 9, "R1": 3},
            "top_pairs": [{"model_label": "vpn_issue", "final_label": "hardware", "count": 5}],
        },
        table=key_table(cmp, workflow),
        timings=[StepTiming("1. champion", 1.2)],
    )
    kwargs = {
        "suite": suite,
        "baseline": base,
        "candidate": cand,
        "comparison": cmp,
        "seed_runs": [cand],
        "weeks": WEEKS,
        "series": {"R2": [float(i % 7) for i in range(N_WEEKS)], "R1": [1.0] * N_WEEKS},
    }
    return demo, kwargs


def _sections(html: str) -> list[tuple[str, str]]:
    """(heading, visible text) of each section of a report."""
    out = []
    for m in re.finditer(r"<section[^>]*><h2>(.*?)</h2>(.*?)</section>", html, re.S):
        body = re.sub(r"<title>.*?</title>", "", m.group(2), flags=re.S)
        text = re.sub(r"<[^>]+>", " ", body)
        out.append((m.group(1), text.replace("&#39;", "'").replace("&#34;", '"')))
    return out


def test_no_section_dumps_a_dict_and_the_decision_comes_first(
    workflow: Workflow, tmp_path: Path
) -> None:
    demo, kwargs = demo_fixture(workflow, tmp_path)
    html = demo_report_html(demo, **kwargs)
    sections = _sections(html)
    for heading, text in sections:
        assert not DUMP.search(text), (heading, DUMP.search(text))
    assert sections[0][0] == "Decision: PASS, promoted"
    assert "mv_cand" in sections[0][1]
    by = dict(sections)
    # label quality: flagged of total, and the top flagged examples with given vs suggested
    lq = by["Label quality"]
    assert "14 of 1631 training examples flagged" in " ".join(lq.split())
    assert "account_unlock" in lq and "ex_0000" in lq and "ex_0013" not in lq  # top 10 only
    # leakage as counts
    leak = " ".join(by["Leakage and duplicates"].split())
    assert "4 training examples excluded" in leak and "2 exact copies" in leak
    assert "2 near-duplicates" in leak
    # changes in words, by sign
    assert "rose by" in by["Before and after"]
    assert "rose by 1.50 a week" in by["1. Override trend"]


def test_decision_names_a_failed_rule_and_the_promotion_refused(
    workflow: Workflow, tmp_path: Path
) -> None:
    demo, kwargs = demo_fixture(workflow, tmp_path, promoted=False)
    html = demo_report_html(demo, **kwargs)
    heading, text = _sections(html)[0]
    assert heading == "Decision: FAIL, not promoted"
    assert "median latency rose by 31%" in text and "only a passing verdict promotes" in text
    md = demo_summary_markdown(demo)
    md_lines = md.split("\n")
    assert md_lines[2] == "## Decision"
    assert re.match(
        r"- Verdict: FAIL for mv_cand against mv_champ: 1 of \d+ rules did not pass", md_lines[4]
    )
    assert md_lines[5].startswith("- Promotion: not promoted")
    assert next(iter(demo.to_dict())) == "decision"
    lines = console_summary(demo)
    first = [line for line in lines if line.strip()]
    assert first[0] == "[bold]Decision[/bold]"
    assert first[1].strip().startswith("Verdict: FAIL")
    assert first[2].strip().startswith("Promotion: not promoted")
    assert lines.index(first[1]) < next(i for i, x in enumerate(lines) if x.startswith("| metric"))


def test_no_verdict_when_the_gate_stays_closed(workflow: Workflow, tmp_path: Path) -> None:
    demo, kwargs = demo_fixture(workflow, tmp_path)
    demo.verdict, demo.promoted, demo.dataset, demo.label_issues = None, False, {}, {}
    demo.gate = {**demo.gate, "open": False, "message": "condition 2 failed"}
    html = demo_report_html(demo, **{**kwargs, "comparison": None, "candidate": None})
    heading, text = _sections(html)[0]
    assert heading == "Decision: no verdict, not promoted"
    assert "condition 2 failed" in text


def test_week_axis_labels_are_thinned_and_keep_the_ends() -> None:
    svg = line_chart(WEEKS, {"R2": [float(i) for i in range(N_WEEKS)]})
    ticks = re.findall(r'<text class="xtick"[^>]*>([^<]*)</text>', svg)
    assert 2 <= len(ticks) <= 8
    assert ticks[0] == WEEKS[0] and ticks[-1] == WEEKS[-1]
    # the drawn (centred) labels do not overlap: centres further apart than a label is wide
    assert svg.count('text-anchor="middle"') >= len(ticks)
    xs = [float(x) for x in re.findall(r'<text class="xtick" x="([\d.]+)"', svg)]
    assert min(b - a for a, b in itertools.pairwise(xs)) > len(WEEKS[0]) * 7
    assert xs[0] - len(WEEKS[0]) * 3.5 >= 0 and xs[-1] + len(WEEKS[0]) * 3.5 <= 640
    ET.fromstring(svg)
    # a short series keeps every label
    few = line_chart(WEEKS[:5], {"R2": [1.0] * 5})
    assert few.count('class="xtick"') == 5


def test_change_and_counts_phrases() -> None:
    assert change_phrase(0.1078, better="higher") == "rose by 0.108 (better)"
    assert change_phrase(-0.1078) == "fell by 0.108"
    assert change_phrase(-0.021, percent=True, better="lower") == "fell by 2.1 pp (better)"
    assert change_phrase(0.00001) == "unchanged"
    assert change_phrase(None) == "n/a"
    assert counts_phrase({"R1": 3, "R2": 9}) == "R2 9, R1 3"
    assert counts_phrase({}) == "none"
    assert "{" not in gap_headline({"n_decisions": 10, "n_overridden": 2, "by_reason": {"R2": 2}})


@pytest.mark.browser
def test_demo_report_in_headless_chromium(
    workflow: Workflow, tmp_path: Path, chromium_path: str
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    demo, kwargs = demo_fixture(workflow, tmp_path)
    report = tmp_path / "report.html"
    report.write_text(demo_report_html(demo, **kwargs), encoding="utf-8")
    shot = tmp_path / "demo_report.png"
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        sections = page.locator("section")
        texts = sections.all_inner_texts()
        assert texts, "no sections"
        assert sections.first.get_attribute("id") == "decision"
        assert texts[0].startswith("Decision: PASS, promoted")
        assert sections.first.locator(".badge").inner_text() == "PASS"
        for text in texts:
            assert "{'" not in text and "[{" not in text, text[:300]
        # the banner is above everything else on the page
        first_box = sections.first.bounding_box()
        second_box = sections.nth(1).bounding_box()
        assert first_box is not None and second_box is not None
        assert first_box["y"] < second_box["y"]
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1000 and height > 2000  # the full page, not an empty viewport
    assert all(u.startswith("file://") for u in requests), requests
